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

namespace ternq {

/// `f` and its two partial derivatives at one point.
template <class S>
struct soft_step {
  S value = 0;    ///< f(z; s, Delta)
  S d_z = 0;      ///< df/dz
  S d_delta = 0;  ///< df/dDelta
};

/// The hard ternarization of ALGORITHMS.md §4: `sign(z) [|z| > Delta]` (strict).
template <class S>
constexpr std::int8_t hard_ternarize(S z, S delta) noexcept {
  return static_cast<std::int8_t>(static_cast<int>(z > delta) - static_cast<int>(z < -delta));
}

namespace detail {

/// Switch point of the series branch, on `u = s * max(1, |z|, |Delta|)`.
///
/// Why: the closed form `[tanh(s(z - D)) + tanh(s(z + D))] / (2 tanh s)`
/// has an absolute rounding error of a few `eps * max(1, |z|, |D|)` for
/// every normal `s` (each tanh has a small relative error and the quotient
/// by `2 tanh s ~ 2 s` keeps it), but it is `0 / 0` at `s = 0` and loses
/// digits once `s (z -+ D)` is subnormal. The series
/// `f = z + s^2 (z/3 - z^3/3 - D^2 z)` (and its derivatives, below) is
/// exact at `s = 0`; its truncation error is the `s^4` term, whose
/// coefficients sum to at most 2.6 (f), 6 (df/dz) and 6 (df/dD) in units of
/// `u^4 max(1, |z|, |D|)`. At `u = eps^(1/4) / 2` that term is below
/// `6 eps / 16 < eps`, so both branches agree to about one rounding error
/// at the switch (tested for continuity): 6.1e-5 in double, 9.3e-3 in float.
template <class S>
inline constexpr S soft_series_limit = std::is_same_v<S, float> ? S(9.3e-3) : S(6.1e-5);

/// The per-sharpness constants of the closed form.
template <class S>
struct sharpness_terms {
  S s = 0;
  S inv_d = 0;     ///< 1 / (2 tanh s); 0 at s = 0 (the series branch is taken there)
  S s_over_d = 0;  ///< s / (2 tanh s), which tends to 1/2 as s -> 0
  bool infinite = false;

  explicit sharpness_terms(S sharpness) : s(sharpness) {
    if (std::isinf(s)) {
      infinite = true;
      return;
    }
    if (s < soft_series_limit<S>) {
      // s / tanh s = 1 + s^2/3 - s^4/45 + ...; the s^4 term is below eps here.
      s_over_d = S(0.5) * (S(1) + s * s / S(3));
      inv_d = s > 0 ? S(1) / (S(2) * std::tanh(s)) : S(0);
    } else {
      const S d = S(2) * std::tanh(s);
      inv_d = S(1) / d;
      s_over_d = s / d;
    }
  }
};

/// `f`, `df/dz`, `df/dD` from `ta = tanh(s (z - D))` and `tb = tanh(s (z + D))`.
/// sech^2 x is written `(1 - tanh x)(1 + tanh x)`: bounded (no cosh to
/// overflow), 0 once tanh rounds to +-1, and without the cancellation of
/// `1 - tanh^2 x` near +-1. `sech^2 b - sech^2 a = (ta - tb)(ta + tb)`.
template <class S>
inline void soft_step_from_tanh(S z, S delta, S ta, S tb, const sharpness_terms<S>& k, S& f, S& f_z, S& f_d) noexcept {
  const S u = k.s * std::max({S(1), std::abs(z), std::abs(delta)});
  if (u < soft_series_limit<S>) {
    const S s2 = k.s * k.s;
    const S d2 = delta * delta;
    f = z + s2 * (z * (S(1) - z * z) / S(3) - d2 * z);
    f_z = S(1) + s2 * (S(1) / S(3) - z * z - d2);
    f_d = S(-2) * s2 * z * delta;
  } else {
    f = (ta + tb) * k.inv_d;
    f_z = k.s_over_d * ((S(1) - ta) * (S(1) + ta) + (S(1) - tb) * (S(1) + tb));
    f_d = k.s_over_d * (ta - tb) * (ta + tb);
  }
}

template <class S>
void check_soft_sharpness(S s, const char* context) {
  if (!(s >= S(0))) fail(errc::invalid_argument, context, ": sharpness s must be >= 0 (got ", s, ")");
}

}  // namespace detail

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
