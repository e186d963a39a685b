// SPDX-License-Identifier: MIT
// The AVX-512 (BW + VNNI) variant of the row kernels of the base-3 formats TQ1_0 and PTQ1_0: 8 rows a vector, one
// per 64-bit lane, two vectors (16 rows) at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ternq/config.hpp"
#include "ternq/kernels/cpu/base3_rows.hpp"

#if TERNQ_HAS_AVX512_VARIANT
#include <immintrin.h>
#endif

namespace ternq::kernels::detail {

#if TERNQ_HAS_AVX512_VARIANT
// GCC 12's AVX-512 intrinsics start some results from an "undefined" vector that -Wuninitialized reports once
// inlined (GCC bug 105593); the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
namespace avx512_base3 {

// Lane r of a vector holds 8 bytes of row r. A digit group (64 bytes) holds the codes of elements 8g..8g+7 of 8
// rows; a block of 8 rows decodes to elements / 8 groups in element order, and the kernel's 16 rows to two such
// runs (rows 0..7, then 8..15).

/// Lane r of `r[j]` becomes lane j of the old `r[r]`: an 8x8 transpose of 64-bit lanes.
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

/// 3 x, byte-wise mod 256.
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512i times3(__m512i x) {
  return _mm512_add_epi8(_mm512_add_epi8(x, x), x);
}

/// The digit (3x) >> 8 of every byte: 0 for x <= 85, 1 for 86..170, 2 for 171..255.
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512i digit(__m512i x) {
  const __mmask64 ge86 = _mm512_cmpge_epu8_mask(x, _mm512_set1_epi8(86));
  const __mmask64 ge171 = _mm512_cmpge_epu8_mask(x, _mm512_set1_epi8(static_cast<char>(171)));
  return _mm512_mask_mov_epi8(_mm512_maskz_mov_epi8(ge86, _mm512_set1_epi8(1)), ge171, _mm512_set1_epi8(2));
}

/// Digits 0..Digits-1 of the stored bytes `x` (each lane 8 consecutive bytes of one row) into groups `Stride` apart.
template <int Digits, int Stride>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void store_digits(__m512i x, __m512i* out) {
  for (int n = 0; n < Digits; ++n) {
    _mm512_store_si512(out + n * Stride, digit(x));
    if (n + 1 < Digits) x = times3(x);
  }
}

/// One TQ1_0 block of 8 rows: first-stage lane j (bytes 8j..8j+7) gives group 4n + j, second-stage lane j gives
/// group 20 + 2n + j; the qh bytes (element 240 + 4n + j in byte j) become the lane (qh, qh 3) for group 30 and
/// that times 9 for group 31.
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void decode8_tq1_0(const std::uint8_t* const* p, __m512i* o) {
  __m512i z[8];
  for (int r = 0; r < 8; ++r) z[r] = _mm512_maskz_loadu_epi8((std::uint64_t{1} << 52) - 1, p[r]);  // qs, qh
  transpose8x8(z);
  for (int j = 0; j < 4; ++j) store_digits<5, 4>(z[j], o + j);
  for (int j = 0; j < 2; ++j) store_digits<5, 2>(z[4 + j], o + 20 + j);
  const __m512i qh = _mm512_shuffle_epi32(z[6], static_cast<_MM_PERM_ENUM>(0xA0));  // (qh, qh) in every lane
  const __m512i x = _mm512_mask_blend_epi32(0xAAAA, qh, times3(qh));
  _mm512_store_si512(o + 30, digit(x));
  _mm512_store_si512(o + 31, digit(times3(times3(x))));
}

/// One PTQ1_0 block of 8 rows: first-stage lane j (of 2) gives group 2n + j, the second stage group 10 + n; the two
/// qh bytes (element 120 + 2n + h in byte h) become the lane (qh0, qh1) times 1, 3, 9, 27 for group 15.
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void decode8_ptq1_0(const std::uint8_t* const* p, __m512i* o) {
  __m512i z[8];
  for (int r = 0; r < 8; ++r) z[r] = _mm512_maskz_loadu_epi8((std::uint64_t{1} << 26) - 1, p[r]);  // qs, qh
  transpose8x8(z);
  for (int j = 0; j < 2; ++j) store_digits<5, 2>(z[j], o + j);
  store_digits<5, 1>(z[2], o + 10);
  const __m512i x = _mm512_shuffle_epi8(
      z[3], _mm512_set4_epi32(0x09080908, 0x09080908, 0x01000100, 0x01000100));  // (qh0 qh1) 4 times a lane
  const __m512i x3 = times3(x);
  const __m512i x9 = times3(x3);
  __m512i v = _mm512_mask_blend_epi16(0x22222222, x, x3);
  v = _mm512_mask_blend_epi16(0x44444444, v, x9);
  v = _mm512_mask_blend_epi16(0x88888888, v, times3(x9));
  _mm512_store_si512(o + 15, digit(v));
}

/// Block sums of `T` vectors over a decoded chunk of `kc` blocks (16 rows, `G` groups per 8 rows), added to `acc`
/// (`acc[16 t + r]`) in block order: `acc += double(i_b) * double(d_b s_b)`, `i_b` the exact integer dot product.
template <std::size_t G, std::size_t T>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void int8_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                                       const std::int8_t* const* q, const float* const* s,
                                                       const std::int32_t* const* sums, double* acc) {
  constexpr std::size_t E = 8 * G;
  __m512d sum_d[2][T];
  for (std::size_t t = 0; t < T; ++t) {
    sum_d[0][t] = _mm512_loadu_pd(acc + 16 * t);
    sum_d[1][t] = _mm512_loadu_pd(acc + 16 * t + 8);
  }
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
    for (std::size_t h = 0; h < 2; ++h) {
      const __m256 dv = _mm256_load_ps(d + bl * 16 + 8 * h);
      for (std::size_t t = 0; t < T; ++t) {
        // The two 32-bit sums of each row's lane, then sum (c - 1) q = sum c q - sum q.
        const __m512i pair = _mm512_add_epi32(a32[h][t], _mm512_srli_epi64(a32[h][t], 32));
        const __m256i i = _mm256_sub_epi32(_mm512_cvtepi64_epi32(pair), _mm256_set1_epi32(sums[t][bl]));
        const __m256 ds = _mm256_mul_ps(dv, _mm256_set1_ps(s[t][bl]));
        // The product is exact, so the fused multiply-add rounds as the reference's add.
        sum_d[h][t] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(i), _mm512_cvtps_pd(ds), sum_d[h][t]);
      }
    }
  }
  for (std::size_t t = 0; t < T; ++t) {
    _mm512_storeu_pd(acc + 16 * t, sum_d[0][t]);
    _mm512_storeu_pd(acc + 16 * t + 8, sum_d[1][t]);
  }
}

/// The selector of byte k of every 64-bit lane, the others zeroed (for `_mm512_shuffle_epi8`).
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE __m512i byte_of_lane(int k) {
  const auto lo = static_cast<long long>(0xFFFFFFFFFFFFFF00ULL | static_cast<unsigned>(k));
  const auto hi = static_cast<long long>(0xFFFFFFFFFFFFFF00ULL | static_cast<unsigned>(8 + k));
  return _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
}

/// `acc[16 t + r] += sum_j d_b v_j x_t[j]` over a decoded chunk, in float lanes, element by element.
template <std::size_t G, std::size_t T>
TERNQ_TARGET_AVX512 TERNQ_ALWAYS_INLINE void f32_tile(const std::uint8_t* digits, const float* d, std::size_t kc,
                                                      const float* const* x, float* acc) {
  constexpr std::size_t E = 8 * G;
  __m256 a[2][T];
  for (std::size_t t = 0; t < T; ++t) {
    a[0][t] = _mm256_loadu_ps(acc + 16 * t);
    a[1][t] = _mm256_loadu_ps(acc + 16 * t + 8);
  }
  const __m256 one = _mm256_set1_ps(1.0F);
  for (std::size_t bl = 0; bl < kc; ++bl) {
    const auto* dg = reinterpret_cast<const __m512i*>(digits + bl * 2 * G * 64);
    for (std::size_t h = 0; h < 2; ++h) {
      const __m256 dv = _mm256_load_ps(d + bl * 16 + 8 * h);
      for (std::size_t g = 0; g < G; ++g) {
        const __m512i v = _mm512_load_si512(dg + h * G + g);
        for (int k = 0; k < 8; ++k) {
          const __m256 c = _mm512_cvtepi64_ps(_mm512_shuffle_epi8(v, byte_of_lane(k)));
          const __m256 wv = _mm256_mul_ps(_mm256_sub_ps(c, one), dv);  // d v, exact
          for (std::size_t t = 0; t < T; ++t) {
            a[h][t] = _mm256_fmadd_ps(wv, _mm256_set1_ps(x[t][bl * E + 8 * g + static_cast<std::size_t>(k)]), a[h][t]);
          }
        }
      }
    }
  }
  for (std::size_t t = 0; t < T; ++t) {
    _mm256_storeu_ps(acc + 16 * t, a[0][t]);
    _mm256_storeu_ps(acc + 16 * t + 8, a[1][t]);
  }
}

/// The kernel policy of `base3::rows_int8` / `rows_f32` for format `F`.
template <pack::format F>
struct kern {
  static constexpr std::size_t rows = 16;
  static constexpr std::size_t groups = base3::layout<F>::elements / 8;
  /// 1024 elements of 16 rows: 16 KiB of decoded codes.
  static constexpr std::size_t chunk_blocks = 1024 / base3::layout<F>::elements;

  static TERNQ_TARGET_AVX512 void decode(const std::uint8_t* const* p, std::uint8_t* out) {
    auto* o = reinterpret_cast<__m512i*>(out);
    if constexpr (F == pack::format::tq1_0) {
      decode8_tq1_0(p, o);
      decode8_tq1_0(p + 8, o + groups);
    } else {
      decode8_ptq1_0(p, o);
      decode8_ptq1_0(p + 8, o + groups);
    }
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
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace ternq::kernels::detail
