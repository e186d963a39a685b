// SPDX-License-Identifier: MIT
// CAT-Q's modulation arithmetic shared by the CPU and the CUDA kernels: the sigmoid parameterizations of the
// logits and the grid of one (row, group) they give (ALGORITHMS.md §4). Standard library only.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ternq/config.hpp"
#include "ternq/core/host_device_math.hpp"
#include "ternq/quant/catq/soft_step.hpp"

namespace ternq {

/// `sigmoid(b) = 1 / (1 + e^-b)`; exact limits 0 and 1, no NaN.
template <class S>
TERNQ_HOST_DEVICE S sigmoid(S b) noexcept {
  return S(1) / (S(1) + detail::exponential(-b));
}
/// `delta_mu = 2 sigmoid(b) - 1`, written `tanh(b / 2)` (the same function, without cancellation near 0).
template <class S>
TERNQ_HOST_DEVICE S modulation_offset(S b) noexcept {
  return detail::hyperbolic_tangent(b / S(2));
}
/// `delta_alpha = delta_Delta = 2 sigmoid(b)`, in (0, 2), 1 at b = 0.
template <class S>
TERNQ_HOST_DEVICE S modulation_factor(S b) noexcept {
  return S(2) * sigmoid(b);
}
/// `d/db` of both parameterizations: `2 sigmoid(b) (1 - sigmoid(b))`.
template <class S>
TERNQ_HOST_DEVICE S modulation_slope(S b) noexcept {
  const S sg = sigmoid(b);
  return S(2) * sg * (S(1) - sg);
}

/// The grid of one (row, group) at the current logits:
/// `mu = mu0 + delta_mu alpha0`, `alpha = delta_alpha alpha0`, `Delta = delta_Delta Delta0`.
template <class S>
struct catq_grid {
  S mu = 0;
  S alpha = 1;
  S delta = 0;
  S inv_alpha = 1;

  /// The redistribution proxy `z = (w - mu) / alpha` (as `(w - mu) * (1 / alpha)`,
  /// the one expression every CAT-Q routine uses, so hard codes agree everywhere).
  [[nodiscard]] TERNQ_HOST_DEVICE S proxy(S w) const noexcept { return (w - mu) * inv_alpha; }
  /// The hard code `sign(z) [|z| > Delta]`.
  [[nodiscard]] TERNQ_HOST_DEVICE std::int8_t code(S w) const noexcept { return hard_ternarize(proxy(w), delta); }
};

/// The grid of priors `mu0`, `alpha0`, `Delta0` under logits `b_mu`, `b_alpha`, `b_Delta`.
template <class S>
TERNQ_HOST_DEVICE catq_grid<S> catq_grid_of(S mu0, S alpha0, S delta0, S b_mu, S b_alpha, S b_delta) noexcept {
  // alpha stays a positive normal number even for absurd logits, so 1 / alpha is finite.
  constexpr S smallest_normal = std::is_same_v<S, float> ? S(FLT_MIN) : S(DBL_MIN);  // numeric_limits is host-only
  catq_grid<S> out;
  out.mu = mu0 + modulation_offset(b_mu) * alpha0;
  const S alpha = modulation_factor(b_alpha) * alpha0;
  out.alpha = alpha < smallest_normal ? smallest_normal : alpha;
  out.delta = modulation_factor(b_delta) * delta0;
  out.inv_alpha = S(1) / out.alpha;
  return out;
}

}  // namespace ternq
