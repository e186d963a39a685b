// SPDX-License-Identifier: MIT
// fp16 and bf16 tensors widened to float a slice at a time, so a runtime can keep a half-precision matrix (an output
// head, a layer stored F16) at its stored size and convert only the rows a product is about to read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/pack/float_types.hpp"

#if TERNQ_HAS_AVX512_VARIANT
#include <immintrin.h>
#endif

namespace ternq::kernels {

/// The half-precision encodings a matrix can be widened from.
enum class half_encoding { fp16, bf16 };

/// The GGUF type that stores values of encoding `e`.
constexpr pack::ggml_type ggml_type_of(half_encoding e) noexcept {
  return e == half_encoding::fp16 ? pack::ggml_type::f16 : pack::ggml_type::bf16;
}

namespace detail {

/// The portable conversion is pack's decoder of float tensors (the scalar conversions of core/half.hpp).
inline void widen_portable(half_encoding e, const std::uint8_t* in, float* out, std::size_t n) {
  pack::decode_floats(ggml_type_of(e), std::span<const std::uint8_t>(in, 2 * n), std::span<float>(out, n));
}

#if TERNQ_HAS_AVX512_VARIANT
TERNQ_AVX512_WARNINGS_BEGIN  // GCC bug 105593, see config.hpp
/// 16 values per step: `vcvtph2ps` for fp16, a 16-bit shift for bf16; the tail through the portable loop. x86 is
/// little-endian, as the stored values are.
TERNQ_TARGET_AVX512 inline void widen_avx512(half_encoding e, const std::uint8_t* in, float* out, std::size_t n) {
  std::size_t i = 0;
  if (e == half_encoding::fp16) {
    for (; i + 16 <= n; i += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 2 * i));
      _mm512_storeu_ps(out + i, _mm512_cvtph_ps(h));
    }
  } else {
    for (; i + 16 <= n; i += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 2 * i));
      _mm512_storeu_si512(out + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
  widen_portable(e, in + 2 * i, out + i, n - i);
}
TERNQ_AVX512_WARNINGS_END
#endif

}  // namespace detail

/// Widens `out.size()` values stored little-endian in `bytes` (two bytes each) to float. Exact: every fp16 and
/// bf16 value is a float (a NaN stays a NaN; its payload is not promised). `level` picks the variant (the
/// AVX-512 one converts 16 values per instruction; the AVX2 level runs the portable loop); all give the same
/// floats. Throws `shape_mismatch` when `bytes` does not hold exactly `out.size()` values.
inline void widen(half_encoding e, std::span<const std::uint8_t> bytes, std::span<float> out,
                  simd_level level = best_simd_level()) {
  if (bytes.size() != 2 * out.size()) {
    fail(errc::shape_mismatch, "kernels::widen: ", bytes.size(), " bytes for ", out.size(), " half-precision values");
  }
#if TERNQ_HAS_AVX512_VARIANT
  if (level == simd_level::avx512) {
    detail::widen_avx512(e, bytes.data(), out.data(), out.size());
    return;
  }
#endif
  static_cast<void>(level);
  detail::widen_portable(e, bytes.data(), out.data(), out.size());
}

}  // namespace ternq::kernels
