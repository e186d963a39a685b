// SPDX-License-Identifier: MIT
// The AVX-512 (F/BW/VL/DQ + VNNI) row kernels of the 2-bit formats TQ2_0, Q2_0, PQ2_0 and I2_S.
#pragma once

#include "ternq/config.hpp"

#if TERNQ_HAS_AVX512_VARIANT

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ternq/core/half.hpp"
#include "ternq/core/view.hpp"
#include "ternq/kernels/cpu/activations.hpp"
#include "ternq/kernels/cpu/packed_view.hpp"
#include "ternq/kernels/cpu/detail/two_bit.hpp"
#include "ternq/pack/bytes.hpp"

TERNQ_AVX512_WARNINGS_BEGIN  // GCC bug 105593, see config.hpp

namespace ternq::kernels::detail::avx512_2bit {

// The int8 path. A row tile is 8 rows; a unit is 64 code bytes (256 elements): one TQ2_0 block, two PQ2_0 blocks or
// I2_S groups, four Q2_0 blocks, each block in its own 512 / S bits of the register. The activations are reordered
// once per call into unit order (two_bit.hpp), so that code register `(raw >> 2 l) & 3` meets 64 contiguous bytes.
// `vpdpbusd` sums the unsigned codes `c = v + 1` times the int8 activations; subtracting the block's activation sum
// gives the exact `i_b = sum v q`. Each row's 16 lanes are reduced to one sum per block, with 8 rows' sums of a
// block in the 8 lanes of a register, so that the double accumulation runs across rows, each row in block order.

inline constexpr std::size_t tile_rows = 8;
inline constexpr std::size_t unit_bytes = 64;

template <pack::format F>
struct unit_traits {
  using fmt = two_bit_format<F>;
  /// Blocks per unit.
  static constexpr std::size_t blocks = unit_bytes / fmt::code_bytes;
  /// Bytes between the first blocks of two consecutive units of a row.
  static constexpr std::size_t stride = blocks * fmt::block_bytes;
};

/// The code bytes of the `nsub` blocks of a unit from `p` (its first block), zeros for absent blocks.
template <pack::format F>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512i load_unit(const std::uint8_t* p, std::size_t nsub) {
  using fmt = two_bit_format<F>;
  const std::uint8_t* c = p + fmt::code_offset;
  if constexpr (F == pack::format::tq2_0) {
    (void)nsub;
    return _mm512_loadu_si512(c);
  } else if constexpr (F == pack::format::i2_s) {
    if (nsub == 2) return _mm512_loadu_si512(c);
    return _mm512_maskz_loadu_epi8(0xFFFFFFFFULL, c);
  } else if constexpr (F == pack::format::pq2_0) {
    const __m512i lo = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
    if (nsub == 1) return lo;
    return _mm512_inserti64x4(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + fmt::block_bytes)), 1);
  } else {
    static_assert(F == pack::format::q2_0);
    const auto at = [c](std::size_t i) TERNQ_ALWAYS_INLINE_LAMBDA {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + i * fmt::block_bytes));
    };
    __m512i v = _mm512_zextsi128_si512(at(0));
    if (nsub > 1) v = _mm512_inserti32x4(v, at(1), 1);
    if (nsub > 2) v = _mm512_inserti32x4(v, at(2), 2);
    if (nsub > 3) v = _mm512_inserti32x4(v, at(3), 3);
    return v;
  }
}

/// Q2_0 keeps each block's scale before its codes: a whole unit (4 blocks) is 72 contiguous bytes. Two
/// overlapping 64-byte loads and one word permutation give its 64 code bytes, and a masked word permutation of the
/// first load drops its scales into a register of 8 rows' scales (word `8 s + r`: row `r`, block `s`).
template <pack::format F>
struct scale_first_unit {
  using fmt = two_bit_format<F>;
  static constexpr bool applies = F == pack::format::q2_0;  // PQ2_0: no faster than the gather
  static constexpr std::size_t blocks = unit_bytes / fmt::code_bytes;
  static constexpr std::size_t size = blocks * fmt::block_bytes;
  /// Offset of the second load (it ends with the unit).
  static constexpr std::size_t second = size - 64;
  static_assert(!applies || (fmt::block_bytes % 2 == 0 && fmt::code_offset == 2 && fmt::scale_offset == 0));

  static constexpr std::array<std::uint16_t, 32> make_codes() {
    std::array<std::uint16_t, 32> idx{};
    for (std::size_t i = 0; i < 32; ++i) {
      const std::size_t b = i / (fmt::code_bytes / 2);
      const std::size_t word = b * (fmt::block_bytes / 2) + 1 + i % (fmt::code_bytes / 2);  // of the unit
      idx[i] = static_cast<std::uint16_t>(word < 32 ? word : 32 + word - second / 2);
    }
    return idx;
  }
  static constexpr std::array<std::uint16_t, 32> make_scales() {
    std::array<std::uint16_t, 32> idx{};
    for (std::size_t i = 0; i < 32; ++i) {
      idx[i] = static_cast<std::uint16_t>(i / tile_rows < blocks ? (i / tile_rows) * (fmt::block_bytes / 2) : 0);
    }
    return idx;
  }
  static constexpr std::array<std::uint16_t, 32> codes = make_codes();
  static constexpr std::array<std::uint16_t, 32> scales = make_scales();
  /// The words of row `r`'s scales.
  static constexpr std::uint32_t row_mask(std::size_t r) {
    std::uint32_t m = 0;
    for (std::size_t b = 0; b < blocks; ++b) m |= std::uint32_t{1} << (b * tile_rows + r);
    return m;
  }
};

/// `a` and `b` with the 32-bit lanes of each 128-bit lane pairwise added: `[a0+a1, a2+a3, b0+b1, b2+b3]`.
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512i pair_sums(__m512i a, __m512i b) {
  const __m512 x = _mm512_castsi512_ps(a);
  const __m512 y = _mm512_castsi512_ps(b);
  return _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(x, y, 0x88)),
                          _mm512_castps_si512(_mm512_shuffle_ps(x, y, 0xDD)));
}

/// The block sums of 8 rows' accumulators, `out[s]` = the 8 rows' sums of the unit's block `s`, for `S` blocks
/// per register (1: all 16 lanes, 2: 256-bit halves, 4: 128-bit quarters).
template <std::size_t S>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void reduce_rows(const __m512i (&a)[8], __m256i (&out)[S]) {
  if constexpr (S == 1) {
    __m512i u[4];
    for (int i = 0; i < 4; ++i) {  // [a half-sum (2 lanes of 128), b half-sum]
      u[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_i32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    }
    __m512i p[2];
    for (int i = 0; i < 2; ++i) {  // 128-bit lane k: 4 partial sums of row 4 i + k
      p[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_i32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    }
    const __m512i q = pair_sums(p[0], p[1]);  // lane k: [row k (2), row 4 + k (2)]
    const __m512i s = _mm512_add_epi32(q, _mm512_shuffle_epi32(q, _MM_PERM_CDAB));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    out[0] = _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, s));
  } else if constexpr (S == 2) {
    __m512i u[4];
    for (int i = 0; i < 4; ++i) {  // 128-bit lanes: [a block 0, a block 1, b block 0, b block 1]
      u[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_i32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    }
    const __m512i v0 = pair_sums(u[0], u[1]);
    const __m512i v1 = pair_sums(u[2], u[3]);
    // 128-bit lane j of w: the full sums of rows j / 2 + {0, 2, 4, 6}, block j % 2
    const __m512i w = pair_sums(v0, v1);
    const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    const __m512i r = _mm512_permutexvar_epi32(order, w);
    out[0] = _mm512_castsi512_si256(r);
    out[1] = _mm512_extracti64x4_epi64(r, 1);
  } else {
    static_assert(S == 4);
    __m512i u[4];
    for (int i = 0; i < 4; ++i) u[i] = pair_sums(a[2 * i], a[2 * i + 1]);
    const __m512i v0 = pair_sums(u[0], u[1]);  // lane s: rows 0..3 of block s
    const __m512i v1 = pair_sums(u[2], u[3]);  // lane s: rows 4..7
    const __m512i i01 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i i23 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    const __m512i r01 = _mm512_permutex2var_epi32(v0, i01, v1);
    const __m512i r23 = _mm512_permutex2var_epi32(v0, i23, v1);
    out[0] = _mm512_castsi512_si256(r01);
    out[1] = _mm512_extracti64x4_epi64(r01, 1);
    out[2] = _mm512_castsi512_si256(r23);
    out[3] = _mm512_extracti64x4_epi64(r23, 1);
  }
}

/// What a row tile reads.
struct int8_tile_input {
  const std::uint8_t* rows[tile_rows];  ///< the tile's rows; rows past the range repeat its last row
  std::int32_t row_offset[tile_rows];   ///< `rows[i] - rows[0]`
  std::size_t row_bytes = 0;
  std::size_t units = 0;
  std::size_t blocks = 0;               ///< blocks per row
  float tensor_scale = 0.0F;            ///< I2_S
};

/// The 8 rows' fp16 block scales of the unit at `unit` (row 0's unit; `offsets`: the rows' byte offsets from row
/// 0), as floats, `d[s]` for block `s` (PQ2_0, and Q2_0's partial last unit).
template <pack::format F>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void unit_scales(const std::uint8_t* unit, __m256i offsets, std::size_t nsub,
                                                         __m256 (&d)[unit_traits<F>::blocks]) {
  using fmt = two_bit_format<F>;
  constexpr std::size_t S = unit_traits<F>::blocks;
  static_assert(S % 2 == 0 && fmt::scale_offset == 0);
  // 32-bit gathers from the starts of the blocks: the scale is the low half.
  const __m512i rows = _mm512_inserti64x4(_mm512_castsi256_si512(offsets), offsets, 1);
  for (std::size_t s = 0; s < S; s += 2) {
    const __m512i blocks = _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(static_cast<int>(s * fmt::block_bytes)),
                                                   _mm512_set1_epi32(static_cast<int>((s + 1) * fmt::block_bytes)));
    const __mmask16 valid = s + 1 < nsub ? 0xFFFF : (s < nsub ? 0x00FF : 0x0000);
    const __m512i g =
        _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, _mm512_add_epi32(rows, blocks), unit, 1);
    const __m512 f = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
    d[s] = _mm512_castps512_ps256(f);
    d[s + 1] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
  }
}

/// Row `r`'s dot products with the `T` activation vectors of unit `u`, from its code bytes `raw`.
template <int T>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void row_dots(__m512i raw, const std::int8_t* const (&act)[T], std::size_t u,
                                                      std::size_t r, __m512i (&dot)[T][tile_rows]) {
  const __m512i m3 = _mm512_set1_epi8(3);
  const __m512i c0 = _mm512_and_si512(raw, m3);
  const __m512i c1 = _mm512_and_si512(_mm512_srli_epi16(raw, 2), m3);
  const __m512i c2 = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m3);
  const __m512i c3 = _mm512_and_si512(_mm512_srli_epi16(raw, 6), m3);
  for (int t = 0; t < T; ++t) {
    const std::int8_t* a = act[t] + u * 4 * unit_bytes;
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c0, _mm512_load_si512(a));
    s = _mm512_dpbusd_epi32(s, c1, _mm512_load_si512(a + 64));
    s = _mm512_dpbusd_epi32(s, c2, _mm512_load_si512(a + 128));
    dot[t][r] = _mm512_dpbusd_epi32(s, c3, _mm512_load_si512(a + 192));
  }
}

/// The dot products of the tile's rows with the `T` activation vectors of unit `u`, and the rows' scales of its
/// blocks.
template <pack::format F, int T, bool Full>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void unit_dots(const int8_tile_input& in, const std::int8_t* const (&act)[T],
                                                       std::size_t u, __m512i (&dot)[T][tile_rows],
                                                       __m256 (&d)[unit_traits<F>::blocks]) {
  constexpr std::size_t S = unit_traits<F>::blocks;
  constexpr std::size_t stride = unit_traits<F>::stride;
  using sf = scale_first_unit<F>;
  const std::size_t nsub = std::min(S, in.blocks - u * S);
  const std::uint8_t* unit = in.rows[0] + u * stride;
  const std::size_t rb = in.row_bytes;
  // The next tile's rows, a unit's bytes of each row per unit: the hardware prefetchers do not follow 8
  // interleaved streams.
  const std::size_t ahead = tile_rows * rb;
  if constexpr (sf::applies) {
    if (nsub == S) {
      const __m512i code_index = _mm512_loadu_si512(sf::codes.data());
      const __m512i scale_index = _mm512_loadu_si512(sf::scales.data());
      __m512i words = _mm512_setzero_si512();
      for (std::size_t r = 0; r < tile_rows; ++r) {
        const std::uint8_t* p = Full ? unit + r * rb : in.rows[r] + u * stride;
        _mm_prefetch(reinterpret_cast<const char*>(p + ahead), _MM_HINT_T0);
        const __m512i lo = _mm512_loadu_si512(p);
        const __m512i hi = _mm512_loadu_si512(p + sf::second);
        words = _mm512_mask_permutexvar_epi16(words, sf::row_mask(r), scale_index, lo);
        row_dots<T>(_mm512_permutex2var_epi16(lo, code_index, hi), act, u, r, dot);
      }
      const __m512 f = _mm512_cvtph_ps(_mm512_castsi512_si256(words));
      d[0] = _mm512_castps512_ps256(f);
      d[1] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
      if constexpr (S == 4) {
        const __m512 g = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(words, 1));
        d[2] = _mm512_castps512_ps256(g);
        d[3] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(g), 1));
      }
      return;
    }
  }
  if constexpr (F == pack::format::tq2_0) {
    // One scale per row: a masked word broadcast each (cheaper here than a gather).
    __m128i words = _mm_setzero_si128();
    for (std::size_t r = 0; r < tile_rows; ++r) {
      const std::uint8_t* p = Full ? unit + r * rb : in.rows[r] + u * stride;
      _mm_prefetch(reinterpret_cast<const char*>(p + ahead), _MM_HINT_T0);
      std::int16_t h;
      std::memcpy(&h, p + two_bit_format<F>::scale_offset, 2);
      words = _mm_mask_set1_epi16(words, static_cast<__mmask8>(1U << r), h);
      row_dots<T>(load_unit<F>(p, S), act, u, r, dot);
    }
    d[0] = _mm256_cvtph_ps(words);
  } else {
    if constexpr (!two_bit_format<F>::tensor_scale) {
      unit_scales<F>(unit, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in.row_offset)), nsub, d);
    }
    for (std::size_t r = 0; r < tile_rows; ++r) {
      const std::uint8_t* p = Full ? unit + r * rb : in.rows[r] + u * stride;
      _mm_prefetch(reinterpret_cast<const char*>(p + ahead), _MM_HINT_T0);
      row_dots<T>(nsub == S ? load_unit<F>(p, S) : load_unit<F>(p, nsub), act, u, r, dot);
    }
  }
}

/// Unit `u`'s block sums, scaled, into `acc[t]` (lane = row), block after block.
template <pack::format F, int T>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void unit_sums(const int8_tile_input& in, std::size_t u,
                                                       const __m512i (&dot)[T][tile_rows],
                                                       const __m256 (&d)[unit_traits<F>::blocks],
                                                       const std::int32_t* const (&sums)[T],
                                                       const float* const (&scales)[T], __m512d (&acc)[T]) {
  constexpr std::size_t S = unit_traits<F>::blocks;
  const std::size_t nsub = std::min(S, in.blocks - u * S);
  for (int t = 0; t < T; ++t) {
    __m256i sum[S];
    reduce_rows<S>(dot[t], sum);
    for (std::size_t s = 0; s < nsub; ++s) {
      const std::size_t b = u * S + s;
      const __m512d i = _mm512_cvtepi32_pd(_mm256_sub_epi32(sum[s], _mm256_set1_epi32(sums[t][b])));
      __m512d scale;
      if constexpr (two_bit_format<F>::tensor_scale) {
        scale = _mm512_set1_pd(static_cast<double>(in.tensor_scale * scales[t][b]));
      } else {
        scale = _mm512_cvtps_pd(_mm256_mul_ps(d[s], _mm256_set1_ps(scales[t][b])));
      }
      // i times scale is exact in double (|i| < 2^16, 24-bit scale): fused or not, the same sum.
      acc[t] = _mm512_fmadd_pd(i, scale, acc[t]);
    }
  }
}

/// The tile's rows times the `T` activation vectors at `act[t]` (unit order), into `acc[t]` (lane = row). `Full`:
/// the rows are `row_bytes` apart (no repeated last row).
template <pack::format F, int T, bool Full>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void int8_tile(const int8_tile_input& in, const std::int8_t* const (&act)[T],
                                                       const std::int32_t* const (&sums)[T],
                                                       const float* const (&scales)[T], __m512d (&acc)[T]) {
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_pd();
  for (std::size_t u = 0; u < in.units; ++u) {
    __m512i dot[T][tile_rows];
    __m256 d[unit_traits<F>::blocks];
    unit_dots<F, T, Full>(in, act, u, dot, d);
    unit_sums<F, T>(in, u, dot, d, sums, scales, acc);
  }
}

/// One tile into `y` (not inlined: each (T, Full) gets its own register allocation).
template <pack::format F, int T, bool Full>
TERNQ_TARGET_AVX512 TERNQ_NOINLINE void int8_tile_to(const int8_tile_input& in, const std::int8_t* act0,
                                                          std::size_t act_stride, const int8_activations& x,
                                                          std::size_t t0, std::size_t r, std::size_t nr,
                                                          matrix_view<float> y) {
  const std::int8_t* act[T];
  const std::int32_t* sums[T];
  const float* scales[T];
  for (int t = 0; t < T; ++t) {
    act[t] = act0 + static_cast<std::size_t>(t) * act_stride;
    sums[t] = x.sums(t0 + static_cast<std::size_t>(t));
    scales[t] = x.scales(t0 + static_cast<std::size_t>(t));
  }
  __m512d acc[T];
  int8_tile<F, T, Full>(in, act, sums, scales, acc);
  for (int t = 0; t < T; ++t) {
    alignas(32) float out[tile_rows];
    _mm256_store_ps(out, _mm512_cvtpd_ps(acc[t]));
    for (std::size_t i = 0; i < nr; ++i) y(t0 + static_cast<std::size_t>(t), r + i) = out[i];
  }
}

template <pack::format F, bool Full>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void int8_tiles(const int8_tile_input& in, const std::int8_t* act,
                                                        std::size_t stride, const int8_activations& x, std::size_t t0,
                                                        std::size_t tc, std::size_t r, std::size_t nr,
                                                        matrix_view<float> y) {
  std::size_t t = 0;
  for (; t + 2 <= tc; t += 2) int8_tile_to<F, 2, Full>(in, act + t * stride, stride, x, t0 + t, r, nr, y);
  if (t < tc) int8_tile_to<F, 1, Full>(in, act + t * stride, stride, x, t0 + t, r, nr, y);
}

/// Rows `[r0, r1)` of `y` for every activation vector: the int8 path.
template <pack::format F>
TERNQ_TARGET_AVX512 void rows_int8(const packed_view& w, const int8_activations& x, std::size_t r0, std::size_t r1,
                                   matrix_view<float> y) {
  using order = unit_order<F, unit_bytes>;
  const std::size_t units = order::units(w.cols);
  const std::size_t stride = units * order::elements;
  const std::size_t chunk = token_chunk(stride, x.n);
  aligned_scratch<std::int8_t> scratch;
  std::int8_t* buf = scratch.get(chunk * stride);
  int8_tile_input in;
  in.row_bytes = w.row_bytes();
  in.units = units;
  in.blocks = w.blocks_per_row();
  in.tensor_scale = w.tensor_scale();
  for (std::size_t t0 = 0; t0 < x.n; t0 += chunk) {
    const std::size_t tc = std::min(chunk, x.n - t0);
    for (std::size_t t = 0; t < tc; ++t) order::permute(x.codes(t0 + t), w.cols, buf + t * stride);
    for (std::size_t r = r0; r < r1; r += tile_rows) {
      const std::size_t nr = std::min(tile_rows, r1 - r);
      for (std::size_t i = 0; i < tile_rows; ++i) {
        in.rows[i] = w.row(r + std::min(i, nr - 1));
        in.row_offset[i] = static_cast<std::int32_t>(in.rows[i] - in.rows[0]);
      }
      if (nr == tile_rows) {
        int8_tiles<F, true>(in, buf, stride, x, t0, tc, r, nr, y);
      } else {
        int8_tiles<F, false>(in, buf, stride, x, t0, tc, r, nr, y);
      }
    }
  }
}

// The f32 path: one row at a time against up to 4 activation vectors, 16 float lanes. Each 16 code bytes widen to
// 32-bit lanes; `(lane >> 2 l) & 3` is the code `c` of 16 elements, `c d - d` their exact weight `v d` (one
// rounding of an exact value), and the activations are reordered once per call to match (group_order).

template <pack::format F, int T>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void f32_row(const packed_view& w, std::size_t r, const float* x0,
                                                     std::size_t x_stride, std::size_t t0, matrix_view<float> y) {
  using fmt = two_bit_format<F>;
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const __m512i m3 = _mm512_set1_epi32(3);
  const std::uint8_t* row = w.row(r);
  const float tensor = w.tensor_scale();
  for (std::size_t b = 0; b < w.blocks_per_row(); ++b) {
    const std::uint8_t* p = row + b * fmt::block_bytes;
    float d = tensor;
    if constexpr (!fmt::tensor_scale) d = fp16_bits_to_fp32(pack::load_le<std::uint16_t>(p + fmt::scale_offset));
    const __m512 dv = _mm512_set1_ps(d);
    for (std::size_t g = 0; g < fmt::code_bytes / 16; ++g) {
      const __m512i z =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + fmt::code_offset + 16 * g)));
      const float* xg = x0 + b * fmt::elements + g * 64;
      for (int l = 0; l < 4; ++l) {
        const __m512 c = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(z, static_cast<unsigned>(2 * l)), m3));
        const __m512 v = _mm512_fmsub_ps(c, dv, dv);  // (c - 1) d, exactly
        for (int t = 0; t < T; ++t) {
          acc[t] = _mm512_fmadd_ps(v, _mm512_loadu_ps(xg + static_cast<std::size_t>(t) * x_stride + 16 * l), acc[t]);
        }
      }
    }
  }
  for (int t = 0; t < T; ++t) y(t0 + static_cast<std::size_t>(t), r) = _mm512_reduce_add_ps(acc[t]);
}

/// Rows `[r0, r1)` of `y` for every activation vector: the f32 path.
template <pack::format F>
TERNQ_TARGET_AVX512 void rows_f32(const packed_view& w, matrix_view<const float> x, std::size_t r0, std::size_t r1,
                                  matrix_view<float> y) {
  const std::size_t n = x.rows();
  const std::size_t cols = w.cols;
  const std::size_t chunk = token_chunk(cols * sizeof(float), n);
  aligned_scratch<float> scratch;
  float* buf = scratch.get(chunk * cols);
  for (std::size_t t0 = 0; t0 < n; t0 += chunk) {
    const std::size_t tc = std::min(chunk, n - t0);
    for (std::size_t t = 0; t < tc; ++t) group_order<F, 16>::permute(&x(t0 + t, 0), cols, buf + t * cols);
    for (std::size_t r = r0; r < r1; ++r) {
      std::size_t t = 0;
      for (; t + 4 <= tc; t += 4) f32_row<F, 4>(w, r, buf + t * cols, cols, t0 + t, y);
      switch (tc - t) {
        case 3: f32_row<F, 3>(w, r, buf + t * cols, cols, t0 + t, y); break;
        case 2: f32_row<F, 2>(w, r, buf + t * cols, cols, t0 + t, y); break;
        case 1: f32_row<F, 1>(w, r, buf + t * cols, cols, t0 + t, y); break;
        default: break;
      }
    }
  }
}

}  // namespace ternq::kernels::detail::avx512_2bit

TERNQ_AVX512_WARNINGS_END

#endif  // TERNQ_HAS_AVX512_VARIANT
