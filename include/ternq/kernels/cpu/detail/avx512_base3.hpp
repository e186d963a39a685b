// SPDX-License-Identifier: MIT
// The AVX-512 (BW + VNNI) variant of the row kernels of the base-3 formats TQ1_0 and PTQ1_0: 8 rows a vector, one
// per 64-bit lane, two vectors (16 rows) at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ternq/config.hpp"
#include "ternq/kernels/cpu/detail/base3_rows.hpp"

#if TERNQ_HAS_AVX512_VARIANT
#include <immintrin.h>
#endif

namespace ternq::kernels::detail {

#if TERNQ_HAS_AVX512_VARIANT
TERNQ_AVX512_WARNINGS_BEGIN  // GCC bug 105593, see config.hpp
namespace avx512_base3 {

// Lane r of a vector holds 8 bytes of row r. A digit group (64 bytes) holds the codes of elements 8g..8g+7 of 8
// rows; a block of 8 rows decodes to elements / 8 groups in element order, and the kernel's 16 rows to two such
// runs (rows 0..7, then 8..15).

/// An 8x8 transpose of 64-bit lanes: afterwards lane i of `r[j]` is lane j of the old `r[i]`.
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void transpose8x8(__m512i (&r)[8]) {
  __m512i t[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm512_unpacklo_epi64(r[2 * k], r[2 * k + 1]);      // 128-bit lane L: rows 2k, 2k+1, qword 2L
    t[2 * k + 1] = _mm512_unpackhi_epi64(r[2 * k], r[2 * k + 1]);  // qword 2L + 1
  }
  __m512i u[8];
  for (int k = 0; k < 2; ++k) {
    u[4 * k] = _mm512_shuffle_i64x2(t[4 * k], t[4 * k + 2], 0x88);          // qwords 0, 4
    u[4 * k + 1] = _mm512_shuffle_i64x2(t[4 * k], t[4 * k + 2], 0xDD);      // qwords 2, 6
    u[4 * k + 2] = _mm512_shuffle_i64x2(t[4 * k + 1], t[4 * k + 3], 0x88);  // qwords 1, 5
    u[4 * k + 3] = _mm512_shuffle_i64x2(t[4 * k + 1], t[4 * k + 3], 0xDD);  // qwords 3, 7
  }
  r[0] = _mm512_shuffle_i64x2(u[0], u[4], 0x88);
  r[4] = _mm512_shuffle_i64x2(u[0], u[4], 0xDD);
  r[2] = _mm512_shuffle_i64x2(u[1], u[5], 0x88);
  r[6] = _mm512_shuffle_i64x2(u[1], u[5], 0xDD);
  r[1] = _mm512_shuffle_i64x2(u[2], u[6], 0x88);
  r[5] = _mm512_shuffle_i64x2(u[2], u[6], 0xDD);
  r[3] = _mm512_shuffle_i64x2(u[3], u[7], 0x88);
  r[7] = _mm512_shuffle_i64x2(u[3], u[7], 0xDD);
}

/// 3 x, byte-wise mod 256: two adds. The result is hidden from the optimizer, which otherwise folds a chain of
/// them into byte multiplies by 9, 27, 81 that x86 has no instruction for (Clang widens them to 16 bits and back).
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512i times3(__m512i x) {
  __m512i t = _mm512_add_epi8(_mm512_add_epi8(x, x), x);
  __asm__("" : "+v"(t));
  return t;
}

/// The thresholds of the digits and the digit values, made once per decode and hidden from the optimizer: GCC
/// otherwise selects the digits by masked broadcasts from a general register, slower than register moves.
struct thresholds {
  __m512i k86;
  __m512i k171;
  __m512i one;
  __m512i two;
};
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE thresholds make_thresholds() {
  thresholds k{_mm512_set1_epi8(86), _mm512_set1_epi8(static_cast<char>(171)), _mm512_set1_epi8(1),
               _mm512_set1_epi8(2)};
  __asm__("" : "+v"(k.k86), "+v"(k.k171), "+v"(k.one), "+v"(k.two));
  return k;
}

/// The digit (3x) >> 8 of every byte: 0 for x <= 85, 1 for 86..170, 2 for 171..255.
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512i digit(__m512i x, const thresholds& k) {
  const __mmask64 ge86 = _mm512_cmpge_epu8_mask(x, k.k86);
  const __mmask64 ge171 = _mm512_cmpge_epu8_mask(x, k.k171);
  return _mm512_mask_mov_epi8(_mm512_maskz_mov_epi8(ge86, k.one), ge171, k.two);
}

/// Where decoded groups go: a buffer of groups, in element order...
struct store_sink {
  __m512i* out;
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void operator()(int g, __m512i c) const { _mm512_store_si512(out + g, c); }
};

/// ... or straight into the dot products with `T` activation vectors (`q[t]`: the block's codes), two 32-bit sums
/// per row. Few vectors give few independent vpdpbusd chains, so each vector's sums rotate over `A` accumulators
/// (integer sums: the order changes nothing).
template <std::size_t T>
struct dot_sink {
  static constexpr std::size_t A = T == 1 ? 4 : (T == 2 ? 2 : 1);
  const std::int8_t* q[T];
  __m512i acc[T][A];
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void zero() {
    for (std::size_t t = 0; t < T; ++t) {
      for (std::size_t a = 0; a < A; ++a) acc[t][a] = _mm512_setzero_si512();
    }
  }
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void operator()(int g, __m512i c) {
    for (std::size_t t = 0; t < T; ++t) {
      std::int64_t eight = 0;
      std::memcpy(&eight, q[t] + 8 * g, 8);
      __m512i& a = acc[t][static_cast<std::size_t>(g) % A];
      a = _mm512_dpbusd_epi32(a, c, _mm512_set1_epi64(eight));
    }
  }
  /// The sums of every vector.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void sums(__m512i (&out)[T]) const {
    for (std::size_t t = 0; t < T; ++t) {
      out[t] = acc[t][0];
      for (std::size_t a = 1; a < A; ++a) out[t] = _mm512_add_epi32(out[t], acc[t][a]);
    }
  }
};

/// Digits 0..Digits-1 of the stored bytes `x` (each lane 8 consecutive bytes of one row) as groups `g0`, `g0 +
/// Stride`, ...
template <int Digits, int Stride, class Sink>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void emit_digits(__m512i x, int g0, const thresholds& k, Sink& sink) {
#pragma GCC unroll 5
  for (int n = 0; n < Digits; ++n) {
    sink(g0 + n * Stride, digit(x, k));
    if (n + 1 < Digits) x = times3(x);
  }
}

/// One TQ1_0 block of 8 rows: first-stage lane j (bytes 8j..8j+7) gives group 4n + j, second-stage lane j gives
/// group 20 + 2n + j; the qh bytes (element 240 + 4n + j in byte j) become the lane (qh, qh 3) for group 30 and
/// that times 9 for group 31.
/// Returns the 8 block scales.
template <class Sink>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m256 decode8_tq1_0(const std::uint8_t* const* p, const thresholds& k,
                                                             Sink& sink) {
  __m512i z[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) z[r] = _mm512_maskz_loadu_epi8((std::uint64_t{1} << 54) - 1, p[r]);  // the block
  transpose8x8(z);
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) emit_digits<5, 4>(z[j], j, k, sink);
#pragma GCC unroll 2
  for (int j = 0; j < 2; ++j) emit_digits<5, 2>(z[4 + j], 20 + j, k, sink);
  const __m512i qh = _mm512_shuffle_epi32(z[6], static_cast<_MM_PERM_ENUM>(0xA0));  // (qh, qh) in every lane
  const __m512i x = _mm512_mask_blend_epi32(0xAAAA, qh, times3(qh));
  sink(30, digit(x, k));
  sink(31, digit(times3(times3(x)), k));
  return _mm256_cvtph_ps(_mm512_cvtepi64_epi16(_mm512_srli_epi64(z[6], 32)));  // d: bytes 52, 53
}

/// One PTQ1_0 block of 8 rows: first-stage lane j (of 2) gives group 2n + j, the second stage group 10 + n; the two
/// qh bytes (element 120 + 2n + h in byte h) become the lane (qh0, qh1) times 1, 3, 9, 27 for group 15.
/// Returns the 8 block scales.
template <class Sink>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m256 decode8_ptq1_0(const std::uint8_t* const* p, const thresholds& k,
                                                              Sink& sink) {
  __m512i z[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) z[r] = _mm512_maskz_loadu_epi8((std::uint64_t{1} << 28) - 1, p[r]);  // the block
  transpose8x8(z);
#pragma GCC unroll 2
  for (int j = 0; j < 2; ++j) emit_digits<5, 2>(z[j], j, k, sink);
  emit_digits<5, 1>(z[2], 10, k, sink);
  const __m512i x = _mm512_shuffle_epi8(
      z[3], _mm512_set4_epi32(0x09080908, 0x09080908, 0x01000100, 0x01000100));  // (qh0 qh1) 4 times a lane
  // (the shuffle reads bytes 0 and 1 of each lane only: the scale in bytes 2 and 3 is left out)
  const __m512i x3 = times3(x);
  const __m512i x9 = times3(x3);
  __m512i v = _mm512_mask_blend_epi16(0x22222222, x, x3);
  v = _mm512_mask_blend_epi16(0x44444444, v, x9);
  v = _mm512_mask_blend_epi16(0x88888888, v, times3(x9));
  sink(15, digit(v, k));
  return _mm256_cvtph_ps(_mm512_cvtepi64_epi16(_mm512_srli_epi64(z[3], 16)));  // d: bytes 26, 27
}

/// One block of 8 rows of format `F` into `sink`; returns the block scales.
template <pack::format F, class Sink>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m256 decode8(const std::uint8_t* const* p, const thresholds& k, Sink& sink) {
  if constexpr (F == pack::format::tq1_0) {
    return decode8_tq1_0(p, k, sink);
  } else {
    return decode8_ptq1_0(p, k, sink);
  }
}

/// The double sums of 16 rows and `T` vectors (`acc[16 t + r]`), one block at a time in block order:
/// `acc += double(i_b) * double(d_b s_b)`, `i_b` the exact integer dot product.
template <std::size_t T>
struct block_sums {
  __m512d sum[2][T];

  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void load(const double* acc) {
    for (std::size_t t = 0; t < T; ++t) {
      sum[0][t] = _mm512_loadu_pd(acc + 16 * t);
      sum[1][t] = _mm512_loadu_pd(acc + 16 * t + 8);
    }
  }
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void store(double* acc) const {
    for (std::size_t t = 0; t < T; ++t) {
      _mm512_storeu_pd(acc + 16 * t, sum[0][t]);
      _mm512_storeu_pd(acc + 16 * t + 8, sum[1][t]);
    }
  }
  /// Adds block `b` of rows 8h..8h+7: `sum32` the two 32-bit sums of c q per row, `dv` the rows' scales, `s[t][b]`
  /// and `sums[t][b]` the activations' scale and code sum.
  TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void add(std::size_t h, const __m512i (&sum32)[T], __m256 dv,
                                                   const float* const* s, const std::int32_t* const* sums,
                                                   std::size_t b) {
    for (std::size_t t = 0; t < T; ++t) {
      // The row's two sums, then sum (c - 1) q = sum c q - sum q.
      const __m512i pair = _mm512_add_epi32(sum32[t], _mm512_srli_epi64(sum32[t], 32));
      const __m256i i = _mm256_sub_epi32(_mm512_cvtepi64_epi32(pair), _mm256_set1_epi32(sums[t][b]));
      const __m256 ds = _mm256_mul_ps(dv, _mm256_set1_ps(s[t][b]));
      // The product is exact, so the fused multiply-add rounds as the reference's add.
      sum[h][t] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(i), _mm512_cvtps_pd(ds), sum[h][t]);
    }
  }
};

/// Block sums of `T` vectors over a decoded chunk of `kc` blocks (16 rows, `G` groups per 8 rows), added to `acc`.
template <std::size_t G, std::size_t T>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void int8_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                                       const std::int8_t* const* q, const float* const* s,
                                                       const std::int32_t* const* sums, double* acc) {
  constexpr std::size_t E = 8 * G;
  block_sums<T> sum;
  sum.load(acc);
  for (std::size_t bl = 0; bl < kc; ++bl) {
    const auto* dg = reinterpret_cast<const __m512i*>(digits + bl * 2 * G * 64);
    __m512i a32[2][T];
    for (std::size_t t = 0; t < T; ++t) a32[0][t] = a32[1][t] = _mm512_setzero_si512();
    for (std::size_t g = 0; g < G; ++g) {
      const __m512i v0 = _mm512_load_si512(dg + g);
      const __m512i v1 = _mm512_load_si512(dg + G + g);
      for (std::size_t t = 0; t < T; ++t) {
        std::int64_t eight = 0;
        std::memcpy(&eight, q[t] + bl * E + 8 * g, 8);
        const __m512i a = _mm512_set1_epi64(eight);
        a32[0][t] = _mm512_dpbusd_epi32(a32[0][t], v0, a);
        a32[1][t] = _mm512_dpbusd_epi32(a32[1][t], v1, a);
      }
    }
    for (std::size_t h = 0; h < 2; ++h) sum.add(h, a32[h], _mm256_load_ps(d + bl * 16 + 8 * h), s, sums, bl);
  }
  sum.store(acc);
}

/// How many blocks ahead `int8_rows` prefetches each row.
inline constexpr std::size_t prefetch_blocks = 6;

/// Whole rows for `T` vectors, each block decoded straight into the dot products (no buffer): `acc` as in
/// `int8_tile`, from zero.
template <pack::format F, std::size_t T>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void int8_rows(const std::uint8_t* const* rows, std::size_t nb,
                                                       const std::int8_t* const* q, const float* const* s,
                                                       const std::int32_t* const* sums, double* acc) {
  using L = base3::layout<F>;
  const thresholds k = make_thresholds();
  block_sums<T> sum;
  for (std::size_t t = 0; t < T; ++t) sum.sum[0][t] = sum.sum[1][t] = _mm512_setzero_pd();
  for (std::size_t b = 0; b < nb; ++b) {
    const std::uint8_t* p[16];
    for (std::size_t r = 0; r < 16; ++r) {
      p[r] = rows[r] + b * L::bytes;
      // The rows are 16 streams: ask for each a few blocks ahead (a hint: it never faults, even past the tensor's end).
      _mm_prefetch(reinterpret_cast<const char*>(p[r] + prefetch_blocks * L::bytes), _MM_HINT_T0);
    }
    for (std::size_t h = 0; h < 2; ++h) {
      dot_sink<T> dot;
      for (std::size_t t = 0; t < T; ++t) dot.q[t] = q[t] + b * L::elements;
      dot.zero();
      const __m256 d = decode8<F>(p + 8 * h, k, dot);
      __m512i sum32[T];
      dot.sums(sum32);
      sum.add(h, sum32, d, s, sums, b);
    }
  }
  sum.store(acc);
}

/// The selector of byte k of every 64-bit lane, the others zeroed (for `_mm512_shuffle_epi8`).
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512i byte_of_lane(int k) {
  const auto lo = static_cast<long long>(0xFFFFFFFFFFFFFF00ULL | static_cast<unsigned>(k));
  const auto hi = static_cast<long long>(0xFFFFFFFFFFFFFF00ULL | static_cast<unsigned>(8 + k));
  return _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
}

/// Float accumulators per vector: each vector's sums rotate over four multiply-add chains (summed in a fixed order
/// at the end of a chunk), whatever the tile, so that a vector gets the same bits alone or in a batch.
inline constexpr std::size_t f32_chains = 4;

/// `acc[16 t + r] += sum_j d_b v_j x_t[j]` over a decoded chunk, in float lanes, element by element.
template <std::size_t G, std::size_t T>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void f32_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                                      const float* const* x, float* acc) {
  constexpr std::size_t E = 8 * G;
  constexpr std::size_t A = f32_chains;
  __m512i select[8];  // byte k of every 64-bit lane, the others zeroed (for _mm512_shuffle_epi8)
  for (int k = 0; k < 8; ++k) {
    const auto lo = static_cast<long long>(0xFFFFFFFFFFFFFF00ULL | static_cast<unsigned>(k));
    const auto hi = static_cast<long long>(0xFFFFFFFFFFFFFF00ULL | static_cast<unsigned>(8 + k));
    select[k] = _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
  }
  const __m256 one = _mm256_set1_ps(1.0F);
  for (std::size_t h = 0; h < 2; ++h) {  // rows 8h..8h+7
    __m256 a[T][A];
    for (std::size_t t = 0; t < T; ++t) {
      a[t][0] = _mm256_loadu_ps(acc + 16 * t + 8 * h);
      for (std::size_t k = 1; k < A; ++k) a[t][k] = _mm256_setzero_ps();
    }
    for (std::size_t bl = 0; bl < kc; ++bl) {
      const auto* dg = reinterpret_cast<const __m512i*>(digits + bl * 2 * G * 64) + h * G;
      const __m256 dv = _mm256_load_ps(d + bl * 16 + 8 * h);
      for (std::size_t g = 0; g < G; ++g) {
        const __m512i v = _mm512_load_si512(dg + g);
        for (std::size_t k = 0; k < 8; ++k) {
          const __m256 c = _mm512_cvtepi64_ps(_mm512_shuffle_epi8(v, select[k]));
          const __m256 wv = _mm256_mul_ps(_mm256_sub_ps(c, one), dv);  // d v, exact
          for (std::size_t t = 0; t < T; ++t) {
            __m256& sum = a[t][k % A];
            sum = _mm256_fmadd_ps(wv, _mm256_set1_ps(x[t][bl * E + 8 * g + k]), sum);
          }
        }
      }
    }
    for (std::size_t t = 0; t < T; ++t) {
      const __m256 sum = _mm256_add_ps(_mm256_add_ps(a[t][0], a[t][1]), _mm256_add_ps(a[t][2], a[t][3]));
      _mm256_storeu_ps(acc + 16 * t + 8 * h, sum);
    }
  }
}

/// The kernel policy of `base3::rows_int8` / `rows_f32` for format `F`.
template <pack::format F>
struct kern {
  static constexpr std::size_t rows = 16;
  static constexpr std::size_t groups = base3::layout<F>::elements / 8;
  /// 1024 elements of 16 rows: 16 KiB of decoded codes.
  static constexpr std::size_t chunk_blocks = 1024 / base3::layout<F>::elements;

  static TERNQ_TARGET_AVX512 void decode(const std::uint8_t* const* p, std::uint8_t* out, float* d) {
    const thresholds k = make_thresholds();
    store_sink lo{reinterpret_cast<__m512i*>(out)};
    store_sink hi{reinterpret_cast<__m512i*>(out) + groups};
    _mm256_store_ps(d, decode8<F>(p, k, lo));
    _mm256_store_ps(d + 8, decode8<F>(p + 8, k, hi));
  }
  template <std::size_t T>
  static TERNQ_TARGET_AVX512 void int8_rows(const std::uint8_t* const* rows, std::size_t nb,
                                            const std::int8_t* const* q, const float* const* s,
                                            const std::int32_t* const* sums, double* acc) {
    avx512_base3::int8_rows<F, T>(rows, nb, q, s, sums, acc);
  }
  template <std::size_t T>
  static TERNQ_TARGET_AVX512 void int8_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                            const std::int8_t* const* q, const float* const* s,
                                            const std::int32_t* const* sums, double* acc) {
    avx512_base3::int8_tile<groups, T>(digits, d, kc, q, s, sums, acc);
  }
  template <std::size_t T>
  static TERNQ_TARGET_AVX512 void f32_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                           const float* const* x, float* acc) {
    avx512_base3::f32_tile<groups, T>(digits, d, kc, x, acc);
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

}  // namespace avx512_base3
TERNQ_AVX512_WARNINGS_END
#endif

}  // namespace ternq::kernels::detail
