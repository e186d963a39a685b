// SPDX-License-Identifier: MIT
// CAT-Q's softened ternarization f(z; s, Delta) and its partial derivatives, safe for every s (ALGORITHMS.md §4).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>

#include <Eigen/Core>

#include "ternq/core/error.hpp"
#include "ternq/quant/catq/soft_step.hpp"

namespace ternq {

/// `f(z; s, Delta) = [tanh(s (z - Delta)) + tanh(s (z + Delta))] / (2 tanh s)`
/// with its partial derivatives (ALGORITHMS.md §4, softened ternarization):
///
///     df/dz     = s (sech^2 a + sech^2 b) / (2 tanh s)
///     df/dDelta = s (sech^2 b - sech^2 a) / (2 tanh s)
///     a = s (z - Delta),  b = s (z + Delta)
///
/// Defined for every `s >= 0`: `f = z` at `s = 0` (the series branch is
/// used near it, see `detail::soft_series_limit`), and at `s = +inf` the
/// hard step `sign(z) [|z| > Delta]` with zero derivatives. Never overflows
/// and never returns NaN for finite `z` and `Delta`. Throws
/// `invalid_argument` for a negative or NaN `s`.
///
/// tanh is Eigen's (`Eigen::numext::tanh`), the function the span version
/// vectorizes, so both agree: bit for bit with GCC 12 and Clang 14 on
/// x86-64; the tests allow a few ulp for builds that contract to FMA.
template <class S>
soft_step<S> soft_ternarize_grad(S z, S s, S delta) {
  static_assert(std::is_floating_point_v<S>);
  detail::check_soft_sharpness(s, "soft_ternarize_grad");
  const detail::sharpness_terms<S> k(s);
  soft_step<S> out;
  if (k.infinite) {
    out.value = static_cast<S>(hard_ternarize(z, delta));
    return out;
  }
  const S ta = Eigen::numext::tanh(s * (z - delta));
  const S tb = Eigen::numext::tanh(s * (z + delta));
  detail::soft_step_from_tanh(z, delta, ta, tb, k, out.value, out.d_z, out.d_delta);
  return out;
}

/// `f(z; s, Delta)` alone (see `soft_ternarize_grad`).
template <class S>
S soft_ternarize(S z, S s, S delta) {
  return soft_ternarize_grad(z, s, delta).value;
}

/// The span form: `f`, `df/dz` and `df/dDelta` of every `z[j]` at one `(s, Delta)`,
/// with the tanh evaluations vectorized by Eigen. Outputs must have `z.size()`
/// elements and must not overlap `z` (they may be the calibrator's block rows).
/// Gives the values of `soft_ternarize_grad` element by element.
template <class S>
void soft_ternarize_grad(std::span<const S> z, S s, S delta, std::span<S> f, std::span<S> d_z, std::span<S> d_delta) {
  static_assert(std::is_floating_point_v<S>);
  if (f.size() != z.size() || d_z.size() != z.size() || d_delta.size() != z.size()) {
    fail(errc::shape_mismatch, "soft_ternarize_grad: outputs of ", f.size(), ", ", d_z.size(), " and ", d_delta.size(),
         " elements for ", z.size(), " inputs");
  }
  detail::check_soft_sharpness(s, "soft_ternarize_grad");
  const detail::sharpness_terms<S> k(s);
  const std::size_t n = z.size();
  if (k.infinite) {
    for (std::size_t j = 0; j < n; ++j) {
      f[j] = static_cast<S>(hard_ternarize(z[j], delta));
      d_z[j] = 0;
      d_delta[j] = 0;
    }
    return;
  }
  using array = Eigen::Array<S, Eigen::Dynamic, 1>;
  const auto idx = static_cast<Eigen::Index>(n);
  const Eigen::Map<const array> zm(z.data(), idx);
  // tanh(a) and tanh(b) go to the derivative outputs first and are consumed element by element.
  Eigen::Map<array>(d_z.data(), idx) = (s * (zm - delta)).tanh();
  Eigen::Map<array>(d_delta.data(), idx) = (s * (zm + delta)).tanh();
  for (std::size_t j = 0; j < n; ++j) {
    const S ta = d_z[j];
    const S tb = d_delta[j];
    detail::soft_step_from_tanh(z[j], delta, ta, tb, k, f[j], d_z[j], d_delta[j]);
  }
}

}  // namespace ternq
