// SPDX-License-Identifier: MIT
// ITF's passes over a float group with AVX-512, bit for bit the portable ones: the eight double lanes of
// `detail::lane_sum` are the eight lanes of a register, and every code decision is the same double comparison.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "ternq/config.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/detail/lane_masks.hpp"

#if TERNQ_HAS_AVX512_VARIANT
#include <immintrin.h>
#endif

namespace ternq::detail {

#if TERNQ_HAS_AVX512_VARIANT
TERNQ_AVX512_WARNINGS_BEGIN  // GCC bug 105593, see config.hpp
    namespace itf_avx512 {
  static_assert(itf_lanes == 8, "the lanes of lane_sum are the lanes of one register of doubles");

  /// The lanes of elements `j .. j + 7` that exist.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __mmask8 valid_lanes(std::size_t n, std::size_t j) {
    return lanes_below<__mmask8>(n, j);
  }

  /// Eight weights from `j`, widened to double (absent ones read as 0).
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512d load(std::span<const float> w, std::size_t j, __mmask8 valid) {
    return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(valid, w.data() + j));
  }

  /// The final combination of `lane_sum`: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE double combine(__m512d lanes) {
    alignas(64) double l[8];
    _mm512_store_pd(l, lanes);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }

  /// Codes from the masks of +1 and -1 (disjoint), eight in the low bytes.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m128i codes_of(__mmask8 plus, __mmask8 minus) {
    return _mm_mask_mov_epi8(_mm_maskz_mov_epi8(plus, _mm_set1_epi8(1)), minus, _mm_set1_epi8(-1));
  }

  /// `exact_sum(w)`.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE double sum(std::span<const float> w) {
    __m512d acc = _mm512_setzero_pd();
    for (std::size_t j = 0; j < w.size(); j += 8) {
      const __mmask8 valid = valid_lanes(w.size(), j);
      acc = _mm512_mask_add_pd(acc, valid, acc, load(w, j, valid));
    }
    return combine(acc);
  }

  /// `t x` for codes given as disjoint masks of +1 and -1: `x`, `-x` or +0. Added to a lane, +0 changes nothing (a
  /// lane is never -0: it starts at +0, and a sum of non-zero terms that cancels is +0), so adding these terms gives
  /// the bits of `lane_sum`'s `t * x`.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512d signed_terms(__mmask8 plus, __mmask8 minus, __m512d x) {
    const __m512d zero = _mm512_setzero_pd();
    return _mm512_mask_sub_pd(_mm512_maskz_mov_pd(plus, x), minus, zero, x);
  }

  /// `sum t`, `sum t^2` (as per-lane counts of +1 and -1 codes) and the lanes of `sum w t`.
  struct code_sums {
    __m512i plus;
    __m512i minus;
    __m512d wt;
  };

  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void begin_code_sums(code_sums & c) {
    c.plus = _mm512_setzero_si512();
    c.minus = _mm512_setzero_si512();
    c.wt = _mm512_setzero_pd();
  }

  /// Adds the codes of eight weights `x`.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void add_codes(code_sums & c, __mmask8 plus, __mmask8 minus, __m512d x) {
    const __m512i one = _mm512_set1_epi64(1);
    c.plus = _mm512_mask_add_epi64(c.plus, plus, c.plus, one);
    c.minus = _mm512_mask_add_epi64(c.minus, minus, c.minus, one);
    c.wt = _mm512_add_pd(c.wt, signed_terms(plus, minus, x));
  }

  /// Stores the sums into `s` (`n` and `sum w` are the caller's); returns the number of non-zero codes.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE long long store_code_sums(const code_sums& c, itf_sums& s) {
    const long long plus = _mm512_reduce_add_epi64(c.plus);
    const long long minus = _mm512_reduce_add_epi64(c.minus);
    s.t = static_cast<double>(plus - minus);
    s.tt = static_cast<double>(plus + minus);
    s.wt = combine(c.wt);
    return plus + minus;
  }

  /// One chunk of eight weights of the rounding pass (`Full`: all eight exist, no masked memory access).
  template <bool Full>
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void round_chunk(
      std::span<const float> w, std::span<std::int8_t> t, std::size_t j, __mmask8 valid, __m512d mu, __m512d up,
      __m512d down, __mmask8 live, code_sums & c, __mmask16 & changed) {
    const __m512d x = Full ? _mm512_cvtps_pd(_mm256_loadu_ps(w.data() + j)) : load(w, j, valid);
    const __m128i old = Full ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(t.data() + j))
                             : _mm_maskz_loadu_epi8(valid, t.data() + j);
    const __m512d d = _mm512_sub_pd(x, mu);
    const __mmask8 ge = _mm512_mask_cmp_pd_mask(valid & live, d, up, _CMP_GE_OQ);
    const __mmask8 le = _mm512_mask_cmp_pd_mask(valid & live, d, down, _CMP_LE_OQ);
    // Both hold only for d = 0 when alpha / 2 rounds to 0: code 1 - 1 = 0.
    const auto plus = static_cast<__mmask8>(ge & ~le);
    const auto minus = static_cast<__mmask8>(le & ~ge);
    const __m128i codes = codes_of(plus, minus);
    changed |= _mm_mask_cmpneq_epi8_mask(valid, codes, old);
    if constexpr (Full) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(t.data() + j), codes);
    } else {
      _mm_mask_storeu_epi8(t.data() + j, valid, codes);
    }
    add_codes(c, plus, minus, x);
  }

}  // namespace itf_avx512

/// The passes of `itf_fit_group_with` for float groups on processors with the AVX-512 variant. They read codes in
/// {-1, 0, 1} only, which is what ITF writes.
struct itf_avx512_passes {
  /// `atq_init_group` and `itf_accumulate` of its codes. The codes pass adds the sums of the first grid solve too,
  /// and `sum w` is computed once (both functions compute the same `exact_sum`).
  TERNQ_TARGET_AVX512 static atq_grid init(std::span<const float> w, std::span<std::int8_t> t, itf_sums& s) {
    using namespace itf_avx512;
    check_atq_sizes(w, t.size(), "atq_init_group");
    const std::size_t n = w.size();
    s = itf_sums{};
    if (n == 0) return {};
    const double sum_w = sum(w);
    const double mu = sum_w / static_cast<double>(n);
    const __m512d mu_v = _mm512_set1_pd(mu);
    __m512d spread = _mm512_setzero_pd();
    for (std::size_t j = 0; j < n; j += 8) {
      const __mmask8 valid = valid_lanes(n, j);
      spread = _mm512_mask_add_pd(spread, valid, spread, _mm512_abs_pd(_mm512_sub_pd(load(w, j, valid), mu_v)));
    }
    const double delta = 0.75 * combine(spread) / static_cast<double>(n);
    const __m512d up = _mm512_set1_pd(delta);
    const __m512d down = _mm512_set1_pd(-delta);
    __m512d kept = _mm512_setzero_pd();
    code_sums c;
    begin_code_sums(c);
    for (std::size_t j = 0; j < n; j += 8) {
      const __mmask8 valid = valid_lanes(n, j);
      const __m512d x = load(w, j, valid);
      const __m512d wc = _mm512_sub_pd(x, mu_v);
      const __mmask8 plus = _mm512_mask_cmp_pd_mask(valid, wc, up, _CMP_GT_OQ);
      const __mmask8 minus = _mm512_mask_cmp_pd_mask(valid, wc, down, _CMP_LT_OQ);
      _mm_mask_storeu_epi8(t.data() + j, valid, codes_of(plus, minus));
      kept = _mm512_add_pd(kept, signed_terms(plus, minus, wc));
      add_codes(c, plus, minus, x);
    }
    s.n = static_cast<double>(n);
    s.w = sum_w;
    const auto count = static_cast<double>(store_code_sums(c, s));
    return {count > 0 ? combine(kept) / count : 0.0, mu};
  }

  /// `itf_pass` with rounding to `grid`: the codes `(d >= alpha/2) - (d <= -alpha/2)` of `d = w - mu` in double.
  /// True when a code changed.
  TERNQ_TARGET_AVX512 static bool round_and_sum(std::span<const float> w, std::span<std::int8_t> t,
                                                const atq_grid& grid, itf_sums& s) {
    using namespace itf_avx512;
    const std::size_t n = w.size();
    const bool collapsed = !(grid.alpha > 0.0);
    const double half = collapsed ? 0.0 : grid.alpha * 0.5;
    const __m512d mu = _mm512_set1_pd(grid.mu);
    const __m512d up = _mm512_set1_pd(half);
    const __m512d down = _mm512_set1_pd(-half);
    const __mmask8 live = collapsed ? 0 : 0xFF;
    __mmask16 changed = 0;
    code_sums c;
    begin_code_sums(c);
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8) round_chunk<true>(w, t, j, 0xFF, mu, up, down, live, c, changed);
    if (j < n) round_chunk<false>(w, t, j, valid_lanes(n, j), mu, up, down, live, c, changed);
    store_code_sums(c, s);
    return changed != 0;
  }
};

/// `itf_fit_group` of a float group, with the AVX-512 passes (same result, tested).
TERNQ_TARGET_AVX512 inline itf_group_result itf_fit_group_avx512(std::span<const float> w, std::span<std::int8_t> t,
                                                                 unsigned max_iters) {
  check_atq_sizes(w, t.size(), "itf_fit_group");
  return itf_fit_group_with<itf_avx512_passes>(w, t, max_iters);
}
TERNQ_AVX512_WARNINGS_END
#endif

/// `itf_fit_group` with the passes of the variant `simd` (checked by the caller): AVX-512 for float groups there,
/// the portable passes otherwise. The same result either way.
template <class T>
TERNQ_ALWAYS_INLINE itf_group_result itf_fit_group_at(simd_level simd, std::span<const T> w, std::span<std::int8_t> t,
                                                      unsigned max_iters) {
#if TERNQ_HAS_AVX512_VARIANT
  if constexpr (std::is_same_v<T, float>) {
    if (simd == simd_level::avx512) return itf_fit_group_avx512(w, t, max_iters);
  }
#endif
  (void)simd;
  return itf_fit_group(w, t, max_iters);
}

}  // namespace ternq::detail
