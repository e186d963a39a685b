// SPDX-License-Identifier: MIT
// The AVX2 row kernels of the 2-bit formats TQ2_0, Q2_0, PQ2_0 and I2_S (AVX2 alone: no FMA, no F16C).
#pragma once

#include "ternq/config.hpp"

#if TERNQ_HAS_AVX2_VARIANT

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ternq/core/view.hpp"
#include "ternq/kernels/cpu/activations.hpp"
#include "ternq/kernels/cpu/packed_view.hpp"
#include "ternq/kernels/cpu/detail/two_bit.hpp"
#include "ternq/pack/bytes.hpp"

namespace ternq::kernels::detail::avx2_2bit {

// The int8 path. A row tile is 4 rows; a unit is 32 code bytes (128 elements): half a TQ2_0 block, one PQ2_0
// block or I2_S group, two Q2_0 blocks (one per 128-bit lane). The activations are reordered once per call into
// unit order (two_bit.hpp). `vpmaddubsw` multiplies the unsigned codes `c = v + 1` by the int8 activations and adds
// pairs into int16 lanes, which hold a block's partial sums exactly (at most 8 x 2 x 3 x 128 in magnitude);
// `vpmaddwd` by ones widens them to int32 at the block's end. Subtracting the block's activation sum gives the exact
// `i_b = sum v q`, and the 4 rows' sums of a block, in the 4 lanes of a register, are accumulated in double across
// rows, each row in block order. Every product `i_b (d_b s_b)` is exact in double, so no FMA is needed to match.

inline constexpr std::size_t tile_rows = 4;
inline constexpr std::size_t unit_bytes = 32;

template <pack::format F>
struct unit_traits {
  using fmt = two_bit_format<F>;
  /// Blocks per unit (1 when a unit is part of a block).
  static constexpr std::size_t blocks = fmt::code_bytes <= unit_bytes ? unit_bytes / fmt::code_bytes : 1;
  /// Units per block (1 when a unit holds whole blocks).
  static constexpr std::size_t per_block = fmt::code_bytes > unit_bytes ? fmt::code_bytes / unit_bytes : 1;
};

/// The code bytes of unit `u` of the row at `row`, `nsub` of its blocks present (zeros for an absent one).
template <pack::format F>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m256i load_unit(const std::uint8_t* row, std::size_t u, std::size_t nsub) {
  using fmt = two_bit_format<F>;
  if constexpr (F == pack::format::tq2_0) {
    (void)nsub;
    const std::uint8_t* p = row + (u / 2) * fmt::block_bytes + fmt::code_offset + (u % 2) * unit_bytes;
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  } else if constexpr (F == pack::format::q2_0) {
    const std::uint8_t* p = row + 2 * u * fmt::block_bytes + fmt::code_offset;
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if (nsub == 1) return _mm256_zextsi128_si256(lo);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo),
                                   _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + fmt::block_bytes)), 1);
  } else {
    (void)nsub;
    const std::uint8_t* p = row + u * fmt::block_bytes + fmt::code_offset;
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
}

/// fp16 bits (the low halves of the 32-bit lanes) to floats, exactly, for finite values: normals by moving the
/// exponent and mantissa into place, denormals (and zeros) as their integer mantissa times 2^-24; the sign last.
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m128 fp16_to_fp32(__m128i h) {
  const __m128i magnitude = _mm_and_si128(h, _mm_set1_epi32(0x7FFF));
  const __m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
  const __m128i normal = _mm_add_epi32(_mm_slli_epi32(magnitude, 13), _mm_set1_epi32(0x38000000));
  const __m128i denormal = _mm_castps_si128(_mm_mul_ps(_mm_cvtepi32_ps(magnitude), _mm_set1_ps(0x1p-24F)));
  const __m128i small = _mm_cmpgt_epi32(_mm_set1_epi32(0x400), magnitude);
  return _mm_castsi128_ps(_mm_or_si128(_mm_blendv_epi8(normal, denormal, small), sign));
}

/// The 4 rows' scales of block `b` as floats.
template <pack::format F>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m128 block_scales(const std::uint8_t* const (&rows)[tile_rows], std::size_t b) {
  using fmt = two_bit_format<F>;
  const std::size_t at = b * fmt::block_bytes + fmt::scale_offset;
  return fp16_to_fp32(_mm_setr_epi32(pack::load_le<std::uint16_t>(rows[0] + at), pack::load_le<std::uint16_t>(rows[1] + at),
                                     pack::load_le<std::uint16_t>(rows[2] + at), pack::load_le<std::uint16_t>(rows[3] + at)));
}

/// The 4 rows' sums of each block of a unit: `a[r]` holds row `r`'s 8 int32 partial sums (of one block, or of
/// two blocks in its 128-bit lanes); lane `r` of `out[s]` is row `r`'s sum of the unit's block `s`.
template <std::size_t S>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void reduce_rows(const __m256i (&a)[tile_rows], __m128i (&out)[S]) {
  // 128-bit lane k of h: the 4 rows' sums of the lane's 4 partials
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
  if constexpr (S == 1) {
    out[0] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  } else {
    static_assert(S == 2);
    out[0] = _mm256_castsi256_si128(h);
    out[1] = _mm256_extracti128_si256(h, 1);
  }
}

/// What a row tile reads.
struct int8_tile_input {
  const std::uint8_t* rows[tile_rows];  ///< the tile's rows; rows past the range repeat its last row
  std::size_t units = 0;
  std::size_t blocks = 0;               ///< blocks per row
  float tensor_scale = 0.0F;            ///< I2_S
};

/// The tile's rows times the `T` activation vectors at `act[t]` (unit order), into `acc[t]` (lane = row).
template <pack::format F, int T>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void int8_tile(const int8_tile_input& in, const std::int8_t* const (&act)[T],
                                                     const std::int32_t* const (&sums)[T],
                                                     const float* const (&scales)[T], __m256d (&acc)[T]) {
  using ut = unit_traits<F>;
  constexpr std::size_t S = ut::blocks;
  const __m256i m3 = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_pd();
  __m256i part[T][tile_rows];  // int16 sums of the current block(s)
  for (int t = 0; t < T; ++t) {
    for (std::size_t r = 0; r < tile_rows; ++r) part[t][r] = _mm256_setzero_si256();
  }
  for (std::size_t u = 0; u < in.units; ++u) {
    const std::size_t first = u / ut::per_block * S;  // the unit's first block
    const std::size_t nsub = std::min(S, in.blocks - first);
    for (std::size_t r = 0; r < tile_rows; ++r) {
      const __m256i raw = nsub == S ? load_unit<F>(in.rows[r], u, S) : load_unit<F>(in.rows[r], u, nsub);
      for (int l = 0; l < 4; ++l) {
        const __m256i c = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * l), m3);
        for (int t = 0; t < T; ++t) {
          const __m256i a = _mm256_load_si256(
              reinterpret_cast<const __m256i*>(act[t] + u * 4 * unit_bytes + static_cast<std::size_t>(l) * unit_bytes));
          part[t][r] = _mm256_add_epi16(part[t][r], _mm256_maddubs_epi16(c, a));
        }
      }
    }
    if ((u + 1) % ut::per_block != 0) continue;  // the block goes on in the next unit
    __m128 d[S];
    if constexpr (!two_bit_format<F>::tensor_scale) {
      for (std::size_t s = 0; s < nsub; ++s) d[s] = block_scales<F>(in.rows, first + s);
    }
    for (int t = 0; t < T; ++t) {
      __m256i wide[tile_rows];
      for (std::size_t r = 0; r < tile_rows; ++r) {
        wide[r] = _mm256_madd_epi16(part[t][r], ones);
        part[t][r] = _mm256_setzero_si256();
      }
      __m128i sum[S];
      reduce_rows<S>(wide, sum);
      for (std::size_t s = 0; s < nsub; ++s) {
        const std::size_t b = first + s;
        const __m256d i = _mm256_cvtepi32_pd(_mm_sub_epi32(sum[s], _mm_set1_epi32(sums[t][b])));
        __m256d scale;
        if constexpr (two_bit_format<F>::tensor_scale) {
          scale = _mm256_set1_pd(static_cast<double>(in.tensor_scale * scales[t][b]));
        } else {
          scale = _mm256_cvtps_pd(_mm_mul_ps(d[s], _mm_set1_ps(scales[t][b])));
        }
        acc[t] = _mm256_add_pd(acc[t], _mm256_mul_pd(i, scale));
      }
    }
  }
}

/// One tile into `y` (not inlined: each T gets its own register allocation).
template <pack::format F, int T>
TERNQ_TARGET_AVX2 TERNQ_NOINLINE void int8_tile_to(const int8_tile_input& in, const std::int8_t* act0,
                                                   std::size_t act_stride, const int8_activations& x, std::size_t t0,
                                                   std::size_t r, std::size_t nr, matrix_view<float> y) {
  const std::int8_t* act[T];
  const std::int32_t* sums[T];
  const float* scales[T];
  for (int t = 0; t < T; ++t) {
    act[t] = act0 + static_cast<std::size_t>(t) * act_stride;
    sums[t] = x.sums(t0 + static_cast<std::size_t>(t));
    scales[t] = x.scales(t0 + static_cast<std::size_t>(t));
  }
  __m256d acc[T];
  int8_tile<F, T>(in, act, sums, scales, acc);
  for (int t = 0; t < T; ++t) {
    alignas(16) float out[tile_rows];
    _mm_store_ps(out, _mm256_cvtpd_ps(acc[t]));
    for (std::size_t i = 0; i < nr; ++i) y(t0 + static_cast<std::size_t>(t), r + i) = out[i];
  }
}

/// Rows `[r0, r1)` of `y` for every activation vector: the int8 path.
template <pack::format F>
TERNQ_TARGET_AVX2 void rows_int8(const packed_view& w, const int8_activations& x, std::size_t r0, std::size_t r1,
                                 matrix_view<float> y) {
  using order = unit_order<F, unit_bytes>;
  const std::size_t units = order::units(w.cols);
  const std::size_t stride = units * order::elements;
  const std::size_t chunk = token_chunk(stride, x.n);
  aligned_scratch<std::int8_t> scratch;
  std::int8_t* buf = scratch.get(chunk * stride);
  int8_tile_input in;
  in.units = units;
  in.blocks = w.blocks_per_row();
  in.tensor_scale = w.tensor_scale();
  for (std::size_t t0 = 0; t0 < x.n; t0 += chunk) {
    const std::size_t tc = std::min(chunk, x.n - t0);
    for (std::size_t t = 0; t < tc; ++t) order::permute(x.codes(t0 + t), w.cols, buf + t * stride);
    for (std::size_t r = r0; r < r1; r += tile_rows) {
      const std::size_t nr = std::min(tile_rows, r1 - r);
      for (std::size_t i = 0; i < tile_rows; ++i) in.rows[i] = w.row(r + std::min(i, nr - 1));
      std::size_t t = 0;
      for (; t + 2 <= tc; t += 2) int8_tile_to<F, 2>(in, buf + t * stride, stride, x, t0 + t, r, nr, y);
      if (t < tc) int8_tile_to<F, 1>(in, buf + t * stride, stride, x, t0 + t, r, nr, y);
    }
  }
}

// The f32 path: one row at a time against up to 4 activation vectors, 8 float lanes. Each 8 code bytes widen to
// 32-bit lanes; `((lane >> 2 l) & 3) - 1` is the value `v` of 8 elements, converted exactly, times the block scale
// (exact: `v` is -1, 0, 1 or 2), and the activations are reordered once per call to match (group_order).

template <pack::format F, int T>
TERNQ_TARGET_AVX2 TERNQ_NOINLINE void f32_row(const packed_view& w, std::size_t r, const float* x0,
                                              std::size_t x_stride, std::size_t t0, matrix_view<float> y) {
  using fmt = two_bit_format<F>;
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i m3 = _mm256_set1_epi32(3);
  const __m256i one = _mm256_set1_epi32(1);
  const std::uint8_t* row = w.row(r);
  const float tensor = w.tensor_scale();
  for (std::size_t b = 0; b < w.blocks_per_row(); ++b) {
    const std::uint8_t* p = row + b * fmt::block_bytes;
    float d = tensor;
    if constexpr (!fmt::tensor_scale) d = fp16_bits_to_fp32(pack::load_le<std::uint16_t>(p + fmt::scale_offset));
    const __m256 dv = _mm256_set1_ps(d);
    for (std::size_t g = 0; g < fmt::code_bytes / 8; ++g) {
      const __m256i z =
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + fmt::code_offset + 8 * g)));
      const float* xg = x0 + b * fmt::elements + g * 32;
      for (int l = 0; l < 4; ++l) {
        const __m256i c = _mm256_and_si256(_mm256_srli_epi32(z, 2 * l), m3);
        const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, one)), dv);
        for (int t = 0; t < T; ++t) {
          const __m256 xv = _mm256_loadu_ps(xg + static_cast<std::size_t>(t) * x_stride + 8 * static_cast<std::size_t>(l));
          acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(v, xv));
        }
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    y(t0 + static_cast<std::size_t>(t), r) = _mm_cvtss_f32(s);
  }
}

/// Rows `[r0, r1)` of `y` for every activation vector: the f32 path.
template <pack::format F>
TERNQ_TARGET_AVX2 void rows_f32(const packed_view& w, matrix_view<const float> x, std::size_t r0, std::size_t r1,
                                matrix_view<float> y) {
  const std::size_t n = x.rows();
  const std::size_t cols = w.cols;
  const std::size_t chunk = token_chunk(cols * sizeof(float), n);
  aligned_scratch<float> scratch;
  float* buf = scratch.get(chunk * cols);
  for (std::size_t t0 = 0; t0 < n; t0 += chunk) {
    const std::size_t tc = std::min(chunk, n - t0);
    for (std::size_t t = 0; t < tc; ++t) group_order<F, 8>::permute(&x(t0 + t, 0), cols, buf + t * cols);
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

}  // namespace ternq::kernels::detail::avx2_2bit

#endif  // TERNQ_HAS_AVX2_VARIANT
