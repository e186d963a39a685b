// SPDX-License-Identifier: MIT
// The exact symmetric optimum of one float group of 17 to 128 weights with AVX-512: a bitonic sorting network over
// the magnitudes in registers, then the prefix sums and the objective at every run end eight doubles at a time.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>

#include "ternq/config.hpp"
#include "ternq/quant/detail/lane_masks.hpp"
#include "ternq/quant/detail/prefix_optimum.hpp"
#include "ternq/quant/detail/reduce.hpp"

#if TERNQ_HAS_AVX512_VARIANT
#include <immintrin.h>
#endif

namespace ternq::detail {

/// The most weights a group may have for the AVX-512 search (eight registers of sixteen floats).
inline constexpr std::size_t optimal_avx512_max_group = 128;

#if TERNQ_HAS_AVX512_VARIANT
TERNQ_AVX512_WARNINGS_BEGIN  // GCC bug 105593, see config.hpp
    namespace optimal_avx512 {
  /// Lanes `i ^ J` of a sixteen-lane register (J = 1, 2, 4, 8), by the cheapest shuffle for each distance.
  template <unsigned J>
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512 partner(__m512 x) {
    if constexpr (J == 1)
      return _mm512_permute_ps(x, 0xB1);  // swap neighbours
    else if constexpr (J == 2)
      return _mm512_permute_ps(x, 0x4E);  // swap pairs
    else if constexpr (J == 4)
      return _mm512_shuffle_f32x4(x, x, 0xB1);  // swap 128-bit quarters
    else
      return _mm512_shuffle_f32x4(x, x, 0x4E);  // swap 256-bit halves
  }

  /// The lanes of register `r` that keep the larger value when lanes `i` and `i ^ j` (j < 16) are compared in the
  /// stage that builds sorted runs of `size`: element `e = 16 r + i` with bit `j` clear keeps the larger one when its
  /// run of `size` is descending (bit `size` of `e` clear), the smaller one when it is ascending.
  constexpr __mmask16 keeps_larger(unsigned r, unsigned size, unsigned j) noexcept {
    unsigned m = 0;
    for (unsigned i = 0; i < 16; ++i) {
      const unsigned e = 16 * r + i;
      if (((e & j) == 0) == ((e & size) == 0)) m |= 1U << i;
    }
    return static_cast<__mmask16>(m);
  }

  /// One compare-exchange of the bitonic network on register `R`: elements `e` and `e ^ J` of runs of `Size`.
  template <unsigned Regs, unsigned Size, unsigned J, unsigned R>
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void exchange(__m512(&v)[Regs]) {
    if constexpr (J >= 16) {
      constexpr unsigned other = R ^ (J / 16);
      if constexpr (R < other) {
        const __m512 larger = _mm512_max_ps(v[R], v[other]);
        const __m512 smaller = _mm512_min_ps(v[R], v[other]);
        constexpr bool descending = ((16 * R) & Size) == 0;
        v[R] = descending ? larger : smaller;
        v[other] = descending ? smaller : larger;
      }
    } else {
      const __m512 p = partner<J>(v[R]);
      v[R] = _mm512_mask_blend_ps(keeps_larger(R, Size, J), _mm512_min_ps(v[R], p), _mm512_max_ps(v[R], p));
    }
  }

  template <unsigned Regs, unsigned Size, unsigned J, std::size_t... R>
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void exchange_all(__m512(&v)[Regs], std::index_sequence<R...>) {
    (exchange<Regs, Size, J, static_cast<unsigned>(R)>(v), ...);
  }

  /// The merge of runs of `Size`: distances Size/2 down to 1.
  template <unsigned Regs, unsigned Size, unsigned J>
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void merge(__m512(&v)[Regs]) {
    exchange_all<Regs, Size, J>(v, std::make_index_sequence<Regs>{});
    if constexpr (J > 1) merge<Regs, Size, J / 2>(v);
  }

  /// Sorts the `16 Regs` floats of `v` into descending order (register 0 lane 0 the largest): bitonic sort, runs of
  /// 2, 4, ..., 16 Regs. Exact (it only moves values); non-negative finite inputs here.
  template <unsigned Regs, unsigned Size = 16 * Regs>
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void sort_descending(__m512(&v)[Regs]) {
    if constexpr (Size > 2) sort_descending<Regs, Size / 2>(v);
    merge<Regs, Size, Size / 2>(v);
  }

  /// 1 / k for k = 1 .. 128, each correctly rounded.
  inline constexpr std::array<double, optimal_avx512_max_group> reciprocals = [] {
    std::array<double, optimal_avx512_max_group> r{};
    for (std::size_t k = 0; k < r.size(); ++k) r[k] = 1.0 / static_cast<double>(k + 1);
    return r;
  }();

  /// The inclusive prefix sum of eight doubles.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512d prefix_sum(__m512d x) {
    const __m512i zero = _mm512_setzero_si512();
    x = _mm512_add_pd(x, _mm512_castsi512_pd(_mm512_alignr_epi64(_mm512_castpd_si512(x), zero, 7)));
    x = _mm512_add_pd(x, _mm512_castsi512_pd(_mm512_alignr_epi64(_mm512_castpd_si512(x), zero, 6)));
    x = _mm512_add_pd(x, _mm512_castsi512_pd(_mm512_alignr_epi64(_mm512_castpd_si512(x), zero, 4)));
    return x;
  }

  /// `ternarize_above(w, codes, cut)` sixteen weights at a time, bit for bit: the same codes, and the scale summed in
  /// the order `blocked_lane_sum` fixes (eight float lanes over whole blocks of 128, then double lanes for the rest).
  TERNQ_TARGET_AVX512 inline float ternarize_above(std::span<const float> w, std::span<std::int8_t> codes, float cut) {
    const std::size_t n = w.size();
    const __m512 up = _mm512_set1_ps(cut);
    const __m512 down = _mm512_set1_ps(-cut);
    const __m128i plus = _mm_set1_epi8(1);
    const __m128i minus = _mm_set1_epi8(-1);
    std::size_t count = 0;
    for (std::size_t j = 0; j < n; j += 16) {
      const __mmask16 valid = lanes_below<__mmask16>(n, j);
      const __m512 x = _mm512_maskz_loadu_ps(valid, w.data() + j);
      const __mmask16 pos = _mm512_cmp_ps_mask(x, up, _CMP_GT_OQ);
      const __mmask16 neg = _mm512_cmp_ps_mask(x, down, _CMP_LT_OQ);
      _mm_mask_storeu_epi8(codes.data() + j, valid, _mm_mask_mov_epi8(_mm_maskz_mov_epi8(pos, plus), neg, minus));
      count += static_cast<std::size_t>(std::popcount(static_cast<unsigned>(pos | neg)));
    }
    if (count == 0) return 0.0F;
    // blocked_lane_sum of |x| [|x| > cut]: lane l adds elements l, l + 8, ... of each block of 128 in float.
    constexpr std::size_t block = reduce_lanes * reduce_block_per_lane;
    static_assert(reduce_lanes == 8);
    __m512d total = _mm512_setzero_pd();
    std::size_t i = 0;
    for (; i + block <= n; i += block) {
      __m256 lane = _mm256_setzero_ps();
      for (std::size_t b = 0; b < block; b += 8) {
        const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0F), _mm256_loadu_ps(w.data() + i + b));
        lane = _mm256_add_ps(lane, _mm256_maskz_mov_ps(_mm256_cmp_ps_mask(a, _mm256_set1_ps(cut), _CMP_GT_OQ), a));
      }
      total = _mm512_add_pd(total, _mm512_cvtps_pd(lane));
    }
    for (; i < n; i += 8) {
      const auto valid = static_cast<__mmask8>(n - i >= 8 ? 0xFFU : (1U << (n - i)) - 1U);
      const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0F), _mm256_maskz_loadu_ps(valid, w.data() + i));
      const __m256 kept = _mm256_maskz_mov_ps(_mm256_cmp_ps_mask(a, _mm256_set1_ps(cut), _CMP_GT_OQ), a);
      total = _mm512_add_pd(total, _mm512_cvtps_pd(kept));
    }
    alignas(64) double lanes[8];
    _mm512_store_pd(lanes, total);
    double s = 0.0;
    for (const double x : lanes) s += x;
    return static_cast<float>(s / static_cast<double>(count));
  }

  /// The exact optimum of a float group of 16 Regs or fewer weights (see `fit_group`).
  template <unsigned Regs>
  TERNQ_TARGET_AVX512 float fit_group_with(std::span<const float> w, std::span<std::int8_t> codes) {
    constexpr std::size_t capacity = 16 * Regs;
    const std::size_t n = w.size();
    __m512 v[Regs];
    for (std::size_t r = 0; r < Regs; ++r) {
      const std::size_t begin = 16 * r;
      const __mmask16 valid = lanes_below<__mmask16>(n, begin);
      v[r] = _mm512_abs_ps(_mm512_maskz_loadu_ps(valid, w.data() + (valid != 0 ? begin : 0)));
    }
    sort_descending<Regs>(v);
    // The sorted magnitudes: the group's own, then the zeros that padded it (the first n are exactly the sorted |w|).
    alignas(64) float sorted[capacity + 16];
    for (std::size_t r = 0; r < Regs; ++r) _mm512_store_ps(sorted + 16 * r, v[r]);
    _mm512_store_ps(sorted + capacity, _mm512_set1_ps(-1.0F));

    prefix_optimum best;
    const float top = sorted[0];
    if (top == 0.0F) return ternarize_at_least(w, codes, best);  // all zero: no non-zero code
    if (!(top >= std::numeric_limits<float>::min())) {
      // Denormal magnitudes only: the reference scan, with the scaling it needs.
      scan_sorted_prefixes<float>(std::span<const float>(sorted, n), 0, 0.0, objective_scale(top), best);
      return ternarize_at_least(w, codes, best);
    }
    const double scale = objective_scale(static_cast<double>(top));

    // f(k) = S_k^2 / k at every run end (the last of a run of equal magnitudes), eight k at a time; other lanes 0.
    alignas(64) double objective[capacity];
    const __m512d scale_v = _mm512_set1_pd(scale);
    __m512d carry = _mm512_setzero_pd();
    __m512d largest = _mm512_setzero_pd();
    const std::size_t blocks = (n + 7) / 8;
    for (std::size_t b = 0; b < blocks; ++b) {
      const __m256 here = _mm256_load_ps(sorted + 8 * b);
      const __m256 next = _mm256_loadu_ps(sorted + 8 * b + 1);
      __mmask8 run_end = _mm256_cmp_ps_mask(here, next, _CMP_NEQ_UQ);
      run_end &= lanes_below<__mmask8>(n, 8 * b);
      if (8 * b + 8 >= n) run_end |= static_cast<__mmask8>(1U << (n - 1 - 8 * b));  // t = n - 1 ends the last run
      const __m512d s = _mm512_add_pd(prefix_sum(_mm512_mul_pd(_mm512_cvtps_pd(here), scale_v)), carry);
      carry = _mm512_permutexvar_pd(_mm512_set1_epi64(7), s);
      const __m512d f = _mm512_maskz_mul_pd(run_end, _mm512_mul_pd(s, s), _mm512_loadu_pd(reciprocals.data() + 8 * b));
      _mm512_store_pd(objective + 8 * b, f);
      largest = _mm512_max_pd(largest, f);
    }
    // The run ends within a relative 1e-9 of the largest objective. The sums above are added in another order than
    // the reference's sequential scan, and the objective is rounded differently, but both stay within 1e-13 of the
    // exact value: one candidate is therefore the reference's choice. Several (ties, or near-ties) take the reference
    // scan itself, so that its tie rule decides.
    const __m512d bar = _mm512_set1_pd(_mm512_reduce_max_pd(largest) * (1.0 - 1e-9));
    std::size_t candidates = 0;
    std::size_t chosen = 0;
    for (std::size_t b = 0; b < blocks; ++b) {
      const unsigned m = _mm512_cmp_pd_mask(_mm512_load_pd(objective + 8 * b), bar, _CMP_GE_OQ);
      if (m != 0 && candidates == 0) chosen = 8 * b + static_cast<std::size_t>(std::countr_zero(m));
      candidates += static_cast<std::size_t>(std::popcount(m));
    }
    float tau = sorted[chosen];
    if (candidates != 1) {
      scan_sorted_prefixes<float>(std::span<const float>(sorted, n), 0, 0.0, scale, best);
      tau = static_cast<float>(best.tau);
    }
    // |x| >= tau  <=>  |x| > (the float just below tau), as ternarize_at_least decides.
    return ternarize_above(w, codes, next_down(tau));
  }

}  // namespace optimal_avx512

/// The exact symmetric optimum of a float group of 17 to `optimal_avx512_max_group` weights, as
/// `optimal_symmetric_fit_group_sorted` gives it bit for bit (tested), for processors with the AVX-512 variant.
TERNQ_TARGET_AVX512 inline float optimal_symmetric_fit_group_avx512(std::span<const float> w,
                                                                    std::span<std::int8_t> codes) {
  if (w.size() <= 32) return optimal_avx512::fit_group_with<2>(w, codes);
  if (w.size() <= 64) return optimal_avx512::fit_group_with<4>(w, codes);
  return optimal_avx512::fit_group_with<8>(w, codes);
}
TERNQ_AVX512_WARNINGS_END
#endif

}  // namespace ternq::detail
