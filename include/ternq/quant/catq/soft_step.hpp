// SPDX-License-Identifier: MIT
// The arithmetic of CAT-Q's soft step shared by the CPU and the CUDA kernels: f and its partials from the two tanh
// values, the hard step, and the per-sharpness constants (ALGORITHMS.md §4). Standard library only.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/host_device_math.hpp"

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
TERNQ_HOST_DEVICE constexpr std::int8_t hard_ternarize(S z, S delta) noexcept {
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
/// (A constexpr scalar, so device code reads it too.)
template <class S>
inline constexpr S soft_series_limit = std::is_same_v<S, float> ? S(9.3e-3) : S(6.1e-5);

/// The per-sharpness constants of the closed form (computed once per step, on the host).
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
TERNQ_HOST_DEVICE inline void soft_step_from_tanh(S z, S delta, S ta, S tb, const sharpness_terms<S>& k, S& f, S& f_z,
                                                  S& f_d) noexcept {
  // max(1, |z|, |D|) as std::max of a list takes it: the first largest, a NaN never replacing a number.
  S largest = S(1);
  if (largest < magnitude(z)) largest = magnitude(z);
  if (largest < magnitude(delta)) largest = magnitude(delta);
  const S u = k.s * largest;
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

}  // namespace ternq
