// SPDX-License-Identifier: MIT
// The per-block arithmetic of the CUDA packed-matrix kernels, shared with the host: which elements a lane reads
// and the values it decodes. Plain C++ (tested by the CPU suite against the pack codecs) and device code alike.
#pragma once

#include <bit>
#include <cstdint>

#include "ternq/config.hpp"

namespace ternq::kernels::cuda_math {

/// Bytes and elements of the two block formats the CUDA kernels read.
inline constexpr unsigned tq2_0_elements = 256;
inline constexpr unsigned tq2_0_bytes = 66;  // 64 code bytes, fp16 scale last
inline constexpr unsigned q2_0_elements = 64;
inline constexpr unsigned q2_0_bytes = 18;  // fp16 scale first, 16 code bytes

/// The value (-1, 0, +1; +2 for code 3) of the 2-bit field `field` (0..3) of code byte `byte`.
TERNQ_HOST_DEVICE constexpr int value_of_field(std::uint8_t byte, unsigned field) noexcept {
  return static_cast<int>((static_cast<unsigned>(byte) >> (2U * field)) & 3U) - 1;
}

/// TQ2_0: in one block, lane `lane` (0..31) of a warp reads code bytes `lane` and `32 + lane`; field `l` of
/// byte `32 h + lane` is element `128 h + 32 l + lane`. So for each (h, l) the warp's lanes read 32 consecutive
/// elements, and the activations they load are contiguous.
TERNQ_HOST_DEVICE constexpr unsigned tq2_0_element(unsigned lane, unsigned h, unsigned l) noexcept {
  return 128U * h + 32U * l + lane;
}

/// Q2_0: half a warp covers one block; lane `k` (0..15) of the half reads code byte `k`, whose field `f` is
/// element `4 k + f`, four consecutive elements (one float4 of activations).
TERNQ_HOST_DEVICE constexpr unsigned q2_0_element(unsigned k, unsigned f) noexcept { return 4U * k + f; }

/// IEEE fp16 bits to float, for the block scales (no subnormal or special-value shortcut: exact for every input,
/// Inf and NaN included).
TERNQ_HOST_DEVICE inline float half_bits_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = (static_cast<std::uint32_t>(h) & 0x8000U) << 16U;
  const std::uint32_t exponent = (h >> 10U) & 0x1FU;
  std::uint32_t mantissa = h & 0x3FFU;
  std::uint32_t bits = 0;
  if (exponent == 0x1FU) {
    bits = sign | 0x7F800000U | (mantissa << 13U);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112U) << 23U) | (mantissa << 13U);
  } else if (mantissa != 0) {
    // subnormal: normalize
    std::uint32_t e = 113U;
    while ((mantissa & 0x400U) == 0) {
      mantissa <<= 1U;
      --e;
    }
    bits = sign | (e << 23U) | ((mantissa & 0x3FFU) << 13U);
  } else {
    bits = sign;
  }
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  return std::bit_cast<float>(bits);
#endif
}

/// The little-endian fp16 scale at `p`.
TERNQ_HOST_DEVICE inline float scale_at(const std::uint8_t* p) noexcept {
  return half_bits_to_float(static_cast<std::uint16_t>(p[0] | (p[1] << 8U)));
}

}  // namespace ternq::kernels::cuda_math
