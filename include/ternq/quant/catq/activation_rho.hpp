// SPDX-License-Identifier: MIT
// CAT-Q's losses on raw activations, elementwise: the options, `rho` of an output residual and its derivative, in
// host and device code, so the CPU's `activation_loss` and the device's calibration run the same arithmetic.
#pragma once

#include "ternq/config.hpp"
#include "ternq/core/host_device_math.hpp"

namespace ternq {

/// The losses on raw activations.
enum class activation_loss_kind {
  mean_squared,  ///< `mean r^2`
  huber,         ///< `mean rho(r)`, `rho = r^2 / 2` for `|r| <= delta`, else `delta (|r| - delta / 2)`
};

/// Options of `activation_loss`.
struct activation_loss_options {
  activation_loss_kind kind = activation_loss_kind::huber;
  double huber_delta = 1.0;  ///< the Huber transition (as PyTorch's `HuberLoss(delta=1.0)`)
};

namespace detail {

/// `rho(r)` of one output residual, in double.
TERNQ_HOST_DEVICE inline double activation_rho(activation_loss_kind kind, double delta, double r) noexcept {
  if (kind == activation_loss_kind::mean_squared) return r * r;
  const double a = magnitude(r);
  return a <= delta ? 0.5 * r * r : delta * (a - 0.5 * delta);
}

/// `rho'(r)` in the compute type `S`: `2 r`, or `r` clamped to `[-delta, delta]` (`delta` already in `S`).
template <class S>
TERNQ_HOST_DEVICE inline S activation_rho_derivative(activation_loss_kind kind, S delta, S r) noexcept {
  if (kind == activation_loss_kind::mean_squared) return r * S(2);
  return r < -delta ? -delta : (r > delta ? delta : r);
}

}  // namespace detail
}  // namespace ternq
