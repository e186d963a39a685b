// SPDX-License-Identifier: MIT
// The exact symmetric optimum's objective over sorted magnitudes: the best prefix so far, the exact scaling, the
// scan over run ends, and the codes of the chosen cut. Shared by the portable search and the AVX-512 one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/config.hpp"
#include "ternq/quant/detail/select.hpp"
#include "ternq/quant/detail/threshold.hpp"

namespace ternq::detail {

/// Best `(f, k)` so far of the objective `f(k) = S_k^2 / k`, with the
/// magnitude `tau` of the k-th largest |w|. Ties in `f` go to the smaller
/// `k`. Candidates are compared by cross-multiplication (`S^2 k' > S'^2 k`),
/// which keeps divisions out of the hot loops.
struct prefix_optimum {
  double s2 = 0.0;  ///< S_k^2 of the best k (scaled, see objective_scale)
  std::size_t k = 0;
  double tau = 0.0;

  /// True when `s^2 / k_new` is at least `margin` times below the best.
  [[nodiscard]] TERNQ_HOST_DEVICE bool beats_or_ties(double s, std::size_t k_new, double margin = 1.0) const noexcept {
    return s * s * static_cast<double>(k) * margin >= s2 * static_cast<double>(k_new);
  }

  TERNQ_HOST_DEVICE void offer(double s, std::size_t k_new, double tau_new) noexcept {
    const double lhs = s * s * static_cast<double>(k);
    const double rhs = s2 * static_cast<double>(k_new);
    if (k == 0 || lhs > rhs || (lhs == rhs && k_new < k)) {
      s2 = s * s;
      k = k_new;
      tau = tau_new;
    }
  }
};

/// A power of two `f` with `top * f` in [1, 2). The objective is evaluated
/// on magnitudes times `f`: exact (a power-of-two scaling does not change
/// rounding), and `S^2` neither overflows nor underflows whatever the range
/// of the data.
/// The shift is clamped to the normal exponent range so that `f` itself is
/// finite (for denormal `top`, `top * f` is then below 1, still far from
/// underflow when squared).
TERNQ_HOST_DEVICE inline double objective_scale(double top) noexcept {
#if defined(__CUDA_ARCH__)
  const int shift = -ilogb(top);
  return ldexp(1.0, shift < -1022 ? -1022 : (shift > 1022 ? 1022 : shift));
#else
  return std::ldexp(1.0, std::clamp(-std::ilogb(top), -1022, 1022));
#endif
}

/// Scans the prefixes of `sorted` (descending magnitudes) that end a run of
/// equal values, starting from `k0` elements of (scaled) sum `s0` already
/// taken. Within a run of equal values `f` is convex in the count, so the
/// optimum never splits a run: only run ends are candidates, and
/// `|w| >= tau` then selects exactly `k` elements.
/// The scan of the `n` magnitudes at `sorted`, shared with the CUDA kernel of the exact optimum. Each term is a
/// magnitude times a power of two, an exact product, so a fused multiply-add (which nvcc forms by default) gives
/// the same sums as the CPU's separate multiply and add.
template <class T>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE void scan_run_ends(const T* sorted, std::size_t n, std::size_t k0, double s0,
                                                         double scale, prefix_optimum& best) noexcept {
  double s = s0;
  for (std::size_t t = 0; t < n; ++t) {
    s += static_cast<double>(sorted[t]) * scale;
    if (t + 1 < n && sorted[t + 1] == sorted[t]) continue;
    best.offer(s, k0 + t + 1, static_cast<double>(sorted[t]));
  }
}

/// `scan_run_ends` over a span.
template <class T>
TERNQ_ALWAYS_INLINE void scan_sorted_prefixes(std::span<const T> sorted, std::size_t k0, double s0, double scale,
                                              prefix_optimum& best) noexcept {
  scan_run_ends(sorted.data(), sorted.size(), k0, s0, scale, best);
}

/// Codes `sign(w) [|w| >= tau]` and their least-squares scale; `tau > 0` is a data magnitude.
template <class T>
TERNQ_ALWAYS_INLINE float ternarize_at_least(std::span<const T> w, std::span<std::int8_t> codes,
                                             const prefix_optimum& best) {
  if (best.k == 0) {
    std::fill(codes.begin(), codes.end(), std::int8_t{0});
    return 0.0F;
  }
  // |x| >= tau  <=>  |x| > (the T value just below tau), tau being a T value.
  const T tau = static_cast<T>(best.tau);
  return ternarize_above(w, codes, next_down(tau));
}

}  // namespace ternq::detail
