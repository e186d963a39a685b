// SPDX-License-Identifier: MIT
// AVX2 and AVX-512 variants of the int8 activation quantizer: the same bytes, scales and sums as the portable rule.
#pragma once

#include "ternq/config.hpp"

#if TERNQ_HAS_AVX2_VARIANT

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

TERNQ_AVX512_WARNINGS_BEGIN  // GCC bug 105593, see config.hpp

namespace ternq::kernels::detail {

// Each step is the portable rule's own operation on more lanes: |x| by clearing the sign, the maximum (exact, in
// any order), one float multiply by the same `127 / amax`, rounding to an integer in the current rounding mode (as
// `nearbyint`), the clamp to [-127, 127], and an exact integer sum. So every byte, scale and sum is the same.

/// `blocks` blocks of `block` floats (`block` a multiple of 32) from `x`: codes into `q`, scales and sums. A block
/// whose `127 / amax` overflows (every |x| below about 3.7e-37) goes to `scalar(x, block, q, sum) -> scale`, the
/// portable rule, whose products with an infinite factor the vector conversion would not reproduce.
template <class Scalar>
TERNQ_TARGET_AVX2 void quantize_blocks_avx2(const float* x, std::size_t blocks, std::size_t block, std::int8_t* q,
                                            float* scale, std::int32_t* sum, Scalar&& scalar) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256i lo = _mm256_set1_epi32(-127);
  const __m256i hi = _mm256_set1_epi32(127);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (std::size_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * block;
    std::int8_t* qb = q + b * block;
    __m256 m = _mm256_setzero_ps();
    for (std::size_t j = 0; j < block; j += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(xb + j), magnitude));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    const float amax = _mm_cvtss_f32(m4);
    if (amax == 0.0F) {
      std::memset(qb, 0, block);
      scale[b] = 0.0F;
      sum[b] = 0;
      continue;
    }
    const float inverse_value = 127.0F / amax;
    if (!(inverse_value <= std::numeric_limits<float>::max())) {
      scale[b] = scalar(xb, block, qb, sum[b]);
      continue;
    }
    const __m256 inverse = _mm256_set1_ps(inverse_value);
    __m256i s = _mm256_setzero_si256();
    for (std::size_t j = 0; j < block; j += 32) {
      __m256i i[4];
      for (int k = 0; k < 4; ++k) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + j + 8 * static_cast<std::size_t>(k)), inverse);
        i[k] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), lo), hi);
        s = _mm256_add_epi32(s, i[k]);
      }
      // packs work per 128-bit lane: the permutation restores the element order
      const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb + j), _mm256_permutevar8x32_epi32(bytes, order));
    }
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    sum[b] = _mm_cvtsi128_si32(s4);
    scale[b] = amax / 127.0F;
  }
}

#if TERNQ_HAS_AVX512_VARIANT
/// The same with 16 lanes (`block` a multiple of 16).
template <class Scalar>
TERNQ_TARGET_AVX512 void quantize_blocks_avx512(const float* x, std::size_t blocks, std::size_t block, std::int8_t* q,
                                                float* scale, std::int32_t* sum, Scalar&& scalar) {
  const __m512i lo = _mm512_set1_epi32(-127);
  const __m512i hi = _mm512_set1_epi32(127);
  for (std::size_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * block;
    std::int8_t* qb = q + b * block;
    __m512 m = _mm512_setzero_ps();
    for (std::size_t j = 0; j < block; j += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(xb + j)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0.0F) {
      std::memset(qb, 0, block);
      scale[b] = 0.0F;
      sum[b] = 0;
      continue;
    }
    const float inverse_value = 127.0F / amax;
    if (!(inverse_value <= std::numeric_limits<float>::max())) {
      scale[b] = scalar(xb, block, qb, sum[b]);
      continue;
    }
    const __m512 inverse = _mm512_set1_ps(inverse_value);
    __m512i s = _mm512_setzero_si512();
    for (std::size_t j = 0; j < block; j += 16) {
      const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(xb + j), inverse);
      const __m512i i = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(v), lo), hi);
      s = _mm512_add_epi32(s, i);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + j), _mm512_cvtepi32_epi8(i));
    }
    sum[b] = _mm512_reduce_add_epi32(s);
    scale[b] = amax / 127.0F;
  }
}
#endif

}  // namespace ternq::kernels::detail

TERNQ_AVX512_WARNINGS_END

#endif  // TERNQ_HAS_AVX2_VARIANT
