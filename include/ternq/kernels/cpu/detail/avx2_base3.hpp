// SPDX-License-Identifier: MIT
// The AVX2 variant of the row kernels of the base-3 formats TQ1_0 and PTQ1_0: 8 rows a vector, one per 32-bit lane.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ternq/config.hpp"
#include "ternq/kernels/cpu/detail/base3_rows.hpp"

#if TERNQ_HAS_AVX2_VARIANT
#include <immintrin.h>
#endif

namespace ternq::kernels::detail {

#if TERNQ_HAS_AVX2_VARIANT
namespace avx2_base3 {

// Lane r of a vector holds 4 bytes of row r. A digit group (32 bytes) holds the codes of elements 4g..4g+3 of the
// 8 rows; a block decodes to elements / 4 groups in element order.

/// An 8x8 transpose of 32-bit lanes: afterwards lane i of `r[j]` is lane j of the old `r[i]`.
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void transpose8x8(__m256i (&r)[8]) {
  __m256i t[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  __m256i u[8];
  for (int k = 0; k < 2; ++k) {
    u[4 * k] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
    u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
    r[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
  }
}

// Bytes are carried as s = x ^ 0x80 (x - 128), so that signed byte compares read them as unsigned. Multiplying by
// 3 keeps that form: 3 (x + 128) = 3x + 128 + 256 = 3x + 128 (mod 256).

/// 3 s, byte-wise mod 256: two adds. The result is hidden from the optimizer, which otherwise folds a chain of
/// them into byte multiplies by 9, 27, 81 that x86 has no instruction for (Clang widens them to 16 bits and back).
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m256i times3(__m256i s) {
  __m256i t = _mm256_add_epi8(_mm256_add_epi8(s, s), s);
  __asm__("" : "+x"(t));
  return t;
}

/// The thresholds of the digits in that form, made once per decode and hidden from the optimizer: GCC otherwise
/// rewrites `s > -43` as `min(s, -42) == -42`, one instruction more in the hottest loop.
struct thresholds {
  __m256i ge86;   ///< s > 86 - 128 - 1
  __m256i ge171;  ///< s > 171 - 128 - 1
  __m256i flip;   ///< 0x80
};
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE thresholds make_thresholds() {
  thresholds k{_mm256_set1_epi8(86 - 128 - 1), _mm256_set1_epi8(171 - 128 - 1),
               _mm256_set1_epi8(static_cast<char>(0x80))};
  __asm__("" : "+x"(k.ge86), "+x"(k.ge171), "+x"(k.flip));
  return k;
}

/// The digit (3x) >> 8 of every byte: 0 for x <= 85, 1 for 86..170, 2 for 171..255.
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m256i digit(__m256i s, const thresholds& k) {
  return _mm256_abs_epi8(_mm256_add_epi8(_mm256_cmpgt_epi8(s, k.ge86), _mm256_cmpgt_epi8(s, k.ge171)));
}

/// Where decoded groups go: a buffer of groups, in element order...
struct store_sink {
  __m256i* out;
  TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void operator()(int g, __m256i c) const { _mm256_store_si256(out + g, c); }
};

/// ... or straight into the dot products with `T` activation vectors (`q[t]`: the block's codes). A 16-bit lane
/// adds two products c q (0 <= c <= 2, -128 <= q <= 127) per group, so maddubs never saturates, and 64 groups at
/// most: the sum lies in [-32768, 32512], exact in int16.
template <std::size_t T>
struct dot_sink {
  const std::int8_t* q[T];
  __m256i sum16[T];
  TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void operator()(int g, __m256i c) {
    for (std::size_t t = 0; t < T; ++t) {
      std::int32_t four = 0;
      std::memcpy(&four, q[t] + 4 * g, 4);
      sum16[t] = _mm256_add_epi16(sum16[t], _mm256_maddubs_epi16(c, _mm256_set1_epi32(four)));
    }
  }
};

/// Digits 0..Digits-1 of the stored bytes `x` (each lane 4 consecutive bytes of one row) as groups `g0`, `g0 +
/// Stride`, ...
template <int Digits, int Stride, class Sink>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void emit_digits(__m256i x, int g0, const thresholds& k, Sink& sink) {
  __m256i s = _mm256_xor_si256(x, k.flip);
#pragma GCC unroll 5
  for (int n = 0; n < Digits; ++n) {
    sink(g0 + n * Stride, digit(s, k));
    if (n + 1 < Digits) s = times3(s);
  }
}

/// The fp16 bits in the low halves of the 32-bit lanes of `h` as floats, exactly (finite values: the views
/// refuse the others). Normal: the bits moved into place and the exponent rebiased; subnormal: m 2^-24.
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m256 fp16_to_fp32(__m256i h) {
  const __m256i magnitude = _mm256_and_si256(h, _mm256_set1_epi32(0x7FFF));
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x8000)), 16);
  const __m256 normal =
      _mm256_castsi256_ps(_mm256_add_epi32(_mm256_slli_epi32(magnitude, 13), _mm256_set1_epi32(112 << 23)));
  const __m256 subnormal = _mm256_mul_ps(_mm256_cvtepi32_ps(magnitude), _mm256_set1_ps(0x1p-24F));
  const __m256 is_subnormal = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(0x400), magnitude));
  return _mm256_or_ps(_mm256_blendv_ps(normal, subnormal, is_subnormal), _mm256_castsi256_ps(sign));
}

/// One TQ1_0 block of 8 rows: the first stage's byte m holds elements 32n + m, so 32-bit lane j (bytes 4j..4j+3)
/// gives group 8n + j; the second stage's lane j gives group 40 + 4n + j; the qh lane gives group 60 + n.
/// Returns the 8 block scales.
template <class Sink>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m256 decode_tq1_0(const std::uint8_t* const* p, const thresholds& k,
                                                          Sink& sink) {
  __m256i a[8];
  __m256i b[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) {
    a[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[r]));       // bytes 0..31
    b[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[r] + 20));  // bytes 20..51: lanes 3..7 are 32..51
  }
  transpose8x8(a);
  transpose8x8(b);
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) emit_digits<5, 8>(a[j], j, k, sink);
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) emit_digits<5, 4>(b[3 + j], 40 + j, k, sink);
  emit_digits<4, 1>(b[7], 60, k, sink);
  std::uint16_t d[8];
  for (int r = 0; r < 8; ++r) std::memcpy(&d[r], p[r] + offsetof(pack::block_tq1_0, d), 2);
  return fp16_to_fp32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d))));
}

/// One PTQ1_0 block of 8 rows: first-stage lane j (of 4) gives group 4n + j, second-stage lane j (of 2) gives
/// group 20 + 2n + j; the two qh bytes (element 120 + 2n + h in byte h) become the lane (qh0, qh1, qh0 3, qh1 3)
/// for group 30 and that times 9 for group 31.
/// Returns the 8 block scales.
template <class Sink>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m256 decode_ptq1_0(const std::uint8_t* const* p, const thresholds& k,
                                                           Sink& sink) {
  __m256i a[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[r]));       // bytes 0..15
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[r] + 12));  // bytes 12..27
    a[r] = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
  }
  transpose8x8(a);  // lanes 0..3: bytes 0..15, 5..6: bytes 16..23, 7: qh0 qh1 d0 d1
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) emit_digits<5, 4>(a[j], j, k, sink);
#pragma GCC unroll 2
  for (int j = 0; j < 2; ++j) emit_digits<5, 2>(a[5 + j], 20 + j, k, sink);
  const __m256i pairs = _mm256_shuffle_epi8(a[7], _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13,
                                                                   0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13));
  __m256i s = _mm256_xor_si256(pairs, k.flip);
  s = _mm256_blend_epi16(s, times3(s), 0xAA);
  sink(30, digit(s, k));
  sink(31, digit(times3(times3(s)), k));
  return fp16_to_fp32(_mm256_srli_epi32(a[7], 16));
}

/// One block of 8 rows of format `F` into `sink`; returns the block scales.
template <pack::format F, class Sink>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE __m256 decode_block(const std::uint8_t* const* p, const thresholds& k,
                                                          Sink& sink) {
  if constexpr (F == pack::format::tq1_0) {
    return decode_tq1_0(p, k, sink);
  } else {
    return decode_ptq1_0(p, k, sink);
  }
}

/// The double sums of 8 rows and `T` vectors (`acc[8 t + r]`), one block at a time in block order:
/// `acc += double(i_b) * double(d_b s_b)`, `i_b` the exact integer dot product.
template <std::size_t T>
struct block_sums {
  __m256d lo[T];
  __m256d hi[T];

  TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void load(const double* acc) {
    for (std::size_t t = 0; t < T; ++t) {
      lo[t] = _mm256_loadu_pd(acc + 8 * t);
      hi[t] = _mm256_loadu_pd(acc + 8 * t + 4);
    }
  }
  TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void store(double* acc) const {
    for (std::size_t t = 0; t < T; ++t) {
      _mm256_storeu_pd(acc + 8 * t, lo[t]);
      _mm256_storeu_pd(acc + 8 * t + 4, hi[t]);
    }
  }
  /// Adds block `b`: `sum16` the int16 sums of c q, `dv` the rows' scales, `s[t][b]` and `sums[t][b]` the
  /// activations' scale and code sum.
  TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void add(const __m256i (&sum16)[T], __m256 dv, const float* const* s,
                                                 const std::int32_t* const* sums, std::size_t b) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (std::size_t t = 0; t < T; ++t) {
      // sum (c - 1) q = sum c q - sum q
      const __m256i i = _mm256_sub_epi32(_mm256_madd_epi16(sum16[t], ones), _mm256_set1_epi32(sums[t][b]));
      const __m256 ds = _mm256_mul_ps(dv, _mm256_set1_ps(s[t][b]));
      lo[t] = _mm256_add_pd(lo[t], _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(i)),
                                                 _mm256_cvtps_pd(_mm256_castps256_ps128(ds))));
      hi[t] = _mm256_add_pd(hi[t], _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(i, 1)),
                                                 _mm256_cvtps_pd(_mm256_extractf128_ps(ds, 1))));
    }
  }
};

/// Block sums of `T` vectors over a decoded chunk of `kc` blocks of `G` groups, added to `acc`.
template <std::size_t G, std::size_t T>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void int8_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                                     const std::int8_t* const* q, const float* const* s,
                                                     const std::int32_t* const* sums, double* acc) {
  constexpr std::size_t E = 4 * G;
  block_sums<T> sum;
  sum.load(acc);
  for (std::size_t bl = 0; bl < kc; ++bl) {
    const auto* dg = reinterpret_cast<const __m256i*>(digits + bl * G * 32);
    dot_sink<T> dot;
    for (std::size_t t = 0; t < T; ++t) {
      dot.q[t] = q[t] + bl * E;
      dot.sum16[t] = _mm256_setzero_si256();
    }
    for (std::size_t g = 0; g < G; ++g) dot(static_cast<int>(g), _mm256_load_si256(dg + g));
    sum.add(dot.sum16, _mm256_load_ps(d + bl * 8), s, sums, bl);
  }
  sum.store(acc);
}

/// How many blocks ahead `int8_rows` prefetches each row.
inline constexpr std::size_t prefetch_blocks = 6;

/// Whole rows for `T` vectors, each block decoded straight into the dot products (no buffer): `acc` as in
/// `int8_tile`, from zero.
template <pack::format F, std::size_t T>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void int8_rows(const std::uint8_t* const* rows, std::size_t nb,
                                                     const std::int8_t* const* q, const float* const* s,
                                                     const std::int32_t* const* sums, double* acc) {
  using L = base3::layout<F>;
  const thresholds k = make_thresholds();
  block_sums<T> sum;
  for (std::size_t t = 0; t < T; ++t) sum.lo[t] = sum.hi[t] = _mm256_setzero_pd();
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* p[8];
    for (std::size_t r = 0; r < 8; ++r) {
      p[r] = rows[r] + b * L::bytes;
      // The rows are 8 streams: ask for each a few blocks ahead (a hint: it never faults, even past the tensor's end).
      _mm_prefetch(reinterpret_cast<const char*>(p[r] + prefetch_blocks * L::bytes), _MM_HINT_T0);
    }
    dot_sink<T> dot;
    for (std::size_t t = 0; t < T; ++t) {
      dot.q[t] = q[t] + b * L::elements;
      dot.sum16[t] = _mm256_setzero_si256();
    }
    const __m256 d = decode_block<F>(p, k, dot);
    sum.add(dot.sum16, d, s, sums, b);
  }
  sum.store(acc);
}

/// Float accumulators per vector: each vector's sums alternate between two add chains (summed at the end of a
/// chunk), whatever the tile, so that a vector gets the same bits alone or in a batch.
inline constexpr std::size_t f32_chains = 2;

/// `acc[8 t + r] += sum_j d_b v_j x_t[j]` over a decoded chunk, in float lanes, element by element.
template <std::size_t G, std::size_t T>
TERNQ_TARGET_AVX2 TERNQ_ALWAYS_INLINE void f32_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                                    const float* const* x, float* acc) {
  constexpr std::size_t E = 4 * G;
  constexpr std::size_t A = f32_chains;
  __m256 a[T][A];
  for (std::size_t t = 0; t < T; ++t) {
    a[t][0] = _mm256_loadu_ps(acc + 8 * t);
    for (std::size_t k = 1; k < A; ++k) a[t][k] = _mm256_setzero_ps();
  }
  const __m256i byte = _mm256_set1_epi32(0xFF);
  const __m256 one = _mm256_set1_ps(1.0F);
  for (std::size_t bl = 0; bl < kc; ++bl) {
    const auto* dg = reinterpret_cast<const __m256i*>(digits + bl * G * 32);
    const __m256 dv = _mm256_load_ps(d + bl * 8);
    for (std::size_t g = 0; g < G; ++g) {
      const __m256i v = _mm256_load_si256(dg + g);
      const __m256i c[4] = {_mm256_and_si256(v, byte), _mm256_and_si256(_mm256_srli_epi32(v, 8), byte),
                            _mm256_and_si256(_mm256_srli_epi32(v, 16), byte), _mm256_srli_epi32(v, 24)};
      for (std::size_t k = 0; k < 4; ++k) {
        const __m256 wv = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(c[k]), one), dv);  // d v, exact
        for (std::size_t t = 0; t < T; ++t) {
          a[t][k % A] = _mm256_add_ps(a[t][k % A], _mm256_mul_ps(wv, _mm256_set1_ps(x[t][bl * E + 4 * g + k])));
        }
      }
    }
  }
  for (std::size_t t = 0; t < T; ++t) _mm256_storeu_ps(acc + 8 * t, _mm256_add_ps(a[t][0], a[t][1]));
}

/// The kernel policy of `base3::rows_int8` / `rows_f32` for format `F`.
template <pack::format F>
struct kern {
  static constexpr std::size_t rows = 8;
  static constexpr std::size_t groups = base3::layout<F>::elements / 4;
  /// 2048 elements of 8 rows: 16 KiB of decoded codes.
  static constexpr std::size_t chunk_blocks = 2048 / base3::layout<F>::elements;

  static TERNQ_TARGET_AVX2 void decode(const std::uint8_t* const* p, std::uint8_t* out, float* d) {
    store_sink sink{reinterpret_cast<__m256i*>(out)};
    _mm256_store_ps(d, decode_block<F>(p, make_thresholds(), sink));
  }
  template <std::size_t T>
  static TERNQ_TARGET_AVX2 void int8_rows(const std::uint8_t* const* rows, std::size_t nb, const std::int8_t* const* q,
                                          const float* const* s, const std::int32_t* const* sums, double* acc) {
    avx2_base3::int8_rows<F, T>(rows, nb, q, s, sums, acc);
  }
  template <std::size_t T>
  static TERNQ_TARGET_AVX2 void int8_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                          const std::int8_t* const* q, const float* const* s,
                                          const std::int32_t* const* sums, double* acc) {
    avx2_base3::int8_tile<groups, T>(digits, d, kc, q, s, sums, acc);
  }
  template <std::size_t T>
  static TERNQ_TARGET_AVX2 void f32_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                         const float* const* x, float* acc) {
    avx2_base3::f32_tile<groups, T>(digits, d, kc, x, acc);
  }
};

/// Sets the row kernels of TQ1_0 and PTQ1_0; leaves the other formats' alone.
inline void select(pack::format f, base3::int8_rows_fn& int8, base3::f32_rows_fn& f32) {
  if (f == pack::format::tq1_0) {
    int8 = &base3::rows_int8<kern<pack::format::tq1_0>, pack::format::tq1_0>;
    f32 = &base3::rows_f32<kern<pack::format::tq1_0>, pack::format::tq1_0>;
  } else if (f == pack::format::ptq1_0) {
    int8 = &base3::rows_int8<kern<pack::format::ptq1_0>, pack::format::ptq1_0>;
    f32 = &base3::rows_f32<kern<pack::format::ptq1_0>, pack::format::ptq1_0>;
  }
}

}  // namespace avx2_base3
#endif

}  // namespace ternq::kernels::detail
