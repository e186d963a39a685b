// SPDX-License-Identifier: MIT
// ITF's passes over a float group with AVX-512, bit for bit the portable ones: the eight double lanes of
// `detail::lane_sum` are the eight lanes of a register, and every code decision is the same double comparison.
#pragma once

#include <bit>
#include <cmath>
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
    // Built in 64-bit lanes and narrowed: byte-wide masked moves would need the 8-bit masks widened to 16 bits, a
    // round trip through a general register each.
    const __m512i ones = _mm512_set1_epi64(1);
    const __m512i codes =
        _mm512_mask_sub_epi64(_mm512_maskz_mov_epi64(plus, ones), minus, _mm512_setzero_si512(), ones);
    return _mm512_cvtepi64_epi8(codes);
  }

  /// Adds `t x` for codes given as disjoint masks of +1 and -1 to `lanes`: `x` or `-x`, and a lane of code 0 is left
  /// as it is. That is the bits of `lane_sum`'s `t * x`: the term of a code 0 is +-0, and adding it changes nothing
  /// (a lane is never -0: it starts at +0, and a sum of non-zero terms that cancels is +0); `l - x` is `l + (-x)`.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512d add_signed(__m512d lanes, __mmask8 plus, __mmask8 minus, __m512d x) {
    const __m512d added = _mm512_mask_add_pd(lanes, plus, lanes, x);
    return _mm512_mask_sub_pd(added, minus, added, x);
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
    c.wt = add_signed(c.wt, plus, minus, x);
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

  /// One chunk of eight weights of the rounding pass (`Full`: all eight exist, no masked memory access). `Disjoint`:
  /// `alpha / 2 > 0`, so that `d >= alpha/2` and `d <= -alpha/2` never both hold and `live` is all lanes.
  template <bool Full, bool Disjoint>
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void round_chunk(
      std::span<const float> w, std::span<std::int8_t> t, std::size_t j, __mmask8 valid, __m512d mu, __m512d up,
      __m512d down, __mmask8 live, code_sums & c, __m128i & changed) {
    const __m512d x = Full ? _mm512_cvtps_pd(_mm256_loadu_ps(w.data() + j)) : load(w, j, valid);
    const __m128i old = Full ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(t.data() + j))
                             : _mm_maskz_loadu_epi8(valid, t.data() + j);
    const __m512d d = _mm512_sub_pd(x, mu);
    __mmask8 plus;
    __mmask8 minus;
    if constexpr (Disjoint) {
      plus = Full ? _mm512_cmp_pd_mask(d, up, _CMP_GE_OQ) : _mm512_mask_cmp_pd_mask(valid, d, up, _CMP_GE_OQ);
      minus = Full ? _mm512_cmp_pd_mask(d, down, _CMP_LE_OQ) : _mm512_mask_cmp_pd_mask(valid, d, down, _CMP_LE_OQ);
    } else {
      const __mmask8 ge = _mm512_mask_cmp_pd_mask(valid & live, d, up, _CMP_GE_OQ);
      const __mmask8 le = _mm512_mask_cmp_pd_mask(valid & live, d, down, _CMP_LE_OQ);
      // Both hold only for d = 0 when alpha / 2 rounds to 0: code 1 - 1 = 0.
      plus = static_cast<__mmask8>(ge & ~le);
      minus = static_cast<__mmask8>(le & ~ge);
    }
    const __m128i codes = codes_of(plus, minus);
    // Lanes past the group are 0 in both. Kept in a vector register: a mask array would live in memory, and OR-ing
    // into it would chain every chunk through a store and a load.
    changed = _mm_or_si128(changed, _mm_xor_si128(codes, old));
    if constexpr (Full) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(t.data() + j), codes);
    } else {
      _mm_mask_storeu_epi8(t.data() + j, valid, codes);
    }
    add_codes(c, plus, minus, x);
  }

  /// The rounding pass of one group with any `alpha / 2` (see `round_chunk`).
  TERNQ_TARGET_AVX512 TERNQ_NOINLINE inline void round_group_general(std::span<const float> w, std::span<std::int8_t> t,
                                                                     __m512d mu, __m512d up, __m512d down,
                                                                     __mmask8 live, code_sums & c, __m128i & changed) {
    const std::size_t n = w.size();
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8) round_chunk<true, false>(w, t, j, 0xFF, mu, up, down, live, c, changed);
    if (j < n) round_chunk<false, false>(w, t, j, valid_lanes(n, j), mu, up, down, live, c, changed);
  }

}  // namespace itf_avx512

/// `itf_fit_group` on `K` float groups of the same size `n > 0` at once, on processors with the AVX-512 variant.
/// Each group gets exactly the arithmetic of `itf_fit_group` (the same codes, grid and counters, bit for bit); the
/// passes over the `K` groups are interleaved chunk by chunk. A group's passes are chains of dependent steps (each
/// lane adds its terms in sequence, then the lanes are combined and the 2x2 grid is solved before the next pass can
/// start), so one group alone runs at their latency; `K` independent chains overlap. A group that has converged sits
/// out the remaining passes of the batch. Codes are read in {-1, 0, 1} only, which is what ITF writes.
template <std::size_t K>
TERNQ_TARGET_AVX512 void itf_fit_groups_avx512(const std::span<const float>* w, const std::span<std::int8_t>* t,
                                               unsigned max_iters, itf_group_result* out) {
  using namespace itf_avx512;
  static_assert(K >= 1);
  const std::size_t n = w[0].size();
  for (std::size_t k = 0; k < K; ++k) {
    check_atq_sizes(w[k], t[k].size(), "itf_fit_group");
    if (w[k].size() != n || n == 0) fail(errc::shape_mismatch, "itf_fit_group: a batch of groups of one size > 0");
  }
  const double count_n = static_cast<double>(n);

  // The ATQ initialization (`atq_init_group`) and the sums of the first grid solve for its codes.
  __m512d lanes[K];
  for (std::size_t k = 0; k < K; ++k) lanes[k] = _mm512_setzero_pd();
  for (std::size_t j = 0; j < n; j += 8) {
    const __mmask8 valid = valid_lanes(n, j);
    for (std::size_t k = 0; k < K; ++k) lanes[k] = _mm512_mask_add_pd(lanes[k], valid, lanes[k], load(w[k], j, valid));
  }
  double sum_w[K];
  __m512d mu[K];
  for (std::size_t k = 0; k < K; ++k) {
    sum_w[k] = combine(lanes[k]);
    mu[k] = _mm512_set1_pd(sum_w[k] / count_n);
    lanes[k] = _mm512_setzero_pd();
  }
  for (std::size_t j = 0; j < n; j += 8) {
    const __mmask8 valid = valid_lanes(n, j);
    for (std::size_t k = 0; k < K; ++k) {
      lanes[k] =
          _mm512_mask_add_pd(lanes[k], valid, lanes[k], _mm512_abs_pd(_mm512_sub_pd(load(w[k], j, valid), mu[k])));
    }
  }
  __m512d up[K];
  __m512d down[K];
  code_sums c[K];
  for (std::size_t k = 0; k < K; ++k) {
    const double delta = 0.75 * combine(lanes[k]) / count_n;
    up[k] = _mm512_set1_pd(delta);
    down[k] = _mm512_set1_pd(-delta);
    lanes[k] = _mm512_setzero_pd();  // now sum T wc over the kept weights
    begin_code_sums(c[k]);
  }
  for (std::size_t j = 0; j < n; j += 8) {
    const __mmask8 valid = valid_lanes(n, j);
    for (std::size_t k = 0; k < K; ++k) {
      const __m512d x = load(w[k], j, valid);
      const __m512d wc = _mm512_sub_pd(x, mu[k]);
      const __mmask8 plus = _mm512_mask_cmp_pd_mask(valid, wc, up[k], _CMP_GT_OQ);
      const __mmask8 minus = _mm512_mask_cmp_pd_mask(valid, wc, down[k], _CMP_LT_OQ);
      _mm_mask_storeu_epi8(t[k].data() + j, valid, codes_of(plus, minus));
      lanes[k] = add_signed(lanes[k], plus, minus, wc);
      add_codes(c[k], plus, minus, x);
    }
  }
  itf_sums s[K];
  bool active[K];
  for (std::size_t k = 0; k < K; ++k) {
    s[k].n = count_n;
    s[k].w = sum_w[k];
    const auto kept = static_cast<double>(store_code_sums(c[k], s[k]));
    out[k] = itf_group_result{};
    out[k].grid = {kept > 0 ? combine(lanes[k]) / kept : 0.0, sum_w[k] / count_n};
    active[k] = true;
  }

  // ITF steps (as in `itf_fit_group`): solve the grid from the sums, then one pass rounds every code to the grid and
  // adds the sums of the next solve.
  __mmask8 live[K];
  for (unsigned it = 0; it < max_iters; ++it) {
    bool any = false;
    bool fused[K] = {};  // the active groups with alpha / 2 > 0
    for (std::size_t k = 0; k < K; ++k) {
      if (!active[k]) continue;
      any = true;
      itf_iteration_grid(s[k], out[k]);
      const atq_grid& grid = out[k].grid;
      const bool collapsed = !(grid.alpha > 0.0);
      const double half = collapsed ? 0.0 : grid.alpha * 0.5;
      mu[k] = _mm512_set1_pd(grid.mu);
      up[k] = _mm512_set1_pd(half);
      down[k] = _mm512_set1_pd(-half);
      live[k] = collapsed ? 0 : 0xFF;
      fused[k] = half > 0.0;
      begin_code_sums(c[k]);
    }
    if (!any) break;
    __m128i changed[K];
    for (std::size_t k = 0; k < K; ++k) changed[k] = _mm_setzero_si128();
    // The fused loop rounds the groups with alpha / 2 > 0; a group whose alpha / 2 is 0 (collapsed, or alpha the
    // smallest subnormal) takes the general comparison alone, out of line so the fused loop stays lean.
    for (std::size_t k = 0; k < K; ++k) {
      if (active[k] && !fused[k]) round_group_general(w[k], t[k], mu[k], up[k], down[k], live[k], c[k], changed[k]);
    }
    std::size_t j = 0;
    for (; j + 8 <= n; j += 8) {
      for (std::size_t k = 0; k < K; ++k) {
        if (fused[k]) round_chunk<true, true>(w[k], t[k], j, 0xFF, mu[k], up[k], down[k], live[k], c[k], changed[k]);
      }
    }
    if (j < n) {
      const __mmask8 valid = valid_lanes(n, j);
      for (std::size_t k = 0; k < K; ++k) {
        if (fused[k]) round_chunk<false, true>(w[k], t[k], j, valid, mu[k], up[k], down[k], live[k], c[k], changed[k]);
      }
    }
    for (std::size_t k = 0; k < K; ++k) {
      if (!active[k]) continue;
      store_code_sums(c[k], s[k]);
      if (_mm_testz_si128(changed[k], changed[k]) != 0) {
        out[k].stats.converged = true;
        active[k] = false;
      }
    }
  }
  // A group whose codes still changed at the last step gets the grid of its final codes.
  for (std::size_t k = 0; k < K && max_iters > 0; ++k) {
    if (active[k]) itf_final_grid(s[k], t[k], out[k]);
  }
}

/// Groups fitted at once by `itf_fit_groups_at` on the AVX-512 variant (measured with `ternq_bench_gptq`'s `itf/*`).
inline constexpr std::size_t itf_avx512_batch = 4;

/// `itf_fit_group` of a float group, with the AVX-512 passes (same result, tested).
TERNQ_TARGET_AVX512 inline itf_group_result itf_fit_group_avx512(std::span<const float> w, std::span<std::int8_t> t,
                                                                 unsigned max_iters) {
  check_atq_sizes(w, t.size(), "itf_fit_group");
  if (w.empty()) return itf_fit_group(w, t, max_iters);
  itf_group_result r;
  itf_fit_groups_avx512<1>(&w, &t, max_iters, &r);
  return r;
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

/// `itf_fit_group_at` on every group `w[i]` (codes `t[i]`, result `out[i]`). On the AVX-512 variant, consecutive
/// groups of one size are fitted `itf_avx512_batch` at once (`itf_fit_groups_avx512`), the rest of such a run two at
/// once where it can; the results are those of one call per group either way.
template <class T>
void itf_fit_groups_at(simd_level simd, std::span<const std::span<const T>> w,
                       std::span<const std::span<std::int8_t>> t, unsigned max_iters, std::span<itf_group_result> out) {
  if (t.size() != w.size() || out.size() != w.size()) {
    fail(errc::shape_mismatch, "itf_fit_groups: ", w.size(), " groups, ", t.size(), " code spans, ", out.size(),
         " results");
  }
  std::size_t i = 0;
#if TERNQ_HAS_AVX512_VARIANT
  if constexpr (std::is_same_v<T, float>) {
    if (simd == simd_level::avx512) {
      // The number of groups from `i` on that have the size of group `i` (at most `limit`).
      const auto run = [&](std::size_t limit) {
        std::size_t k = 1;
        while (k < limit && i + k < w.size() && w[i + k].size() == w[i].size()) ++k;
        return k;
      };
      while (i < w.size()) {
        const std::size_t same = w[i].empty() ? 1 : run(itf_avx512_batch);
        if (same == itf_avx512_batch) {
          itf_fit_groups_avx512<itf_avx512_batch>(w.data() + i, t.data() + i, max_iters, out.data() + i);
          i += itf_avx512_batch;
        } else if (same >= 2) {  // a run's last two or three: two at once still overlaps two chains
          itf_fit_groups_avx512<2>(w.data() + i, t.data() + i, max_iters, out.data() + i);
          i += 2;
        } else {
          out[i] = itf_fit_group_at(simd, w[i], t[i], max_iters);
          ++i;
        }
      }
    }
  }
#endif
  for (; i < w.size(); ++i) out[i] = itf_fit_group_at(simd, w[i], t[i], max_iters);
}

}  // namespace ternq::detail
