// SPDX-License-Identifier: MIT
// IEEE binary16 (fp16) and bfloat16 conversions, round to nearest even, exact on NaN/Inf/denormals.
#pragma once

#include <bit>
#include <cstdint>

namespace ternq {

/// fp32 -> IEEE binary16 bits, round to nearest, ties to even. Overflow
/// gives +-Inf, values below half the smallest denormal give +-0, NaN stays a
/// quiet NaN with its sign (payload truncated, never turned into Inf).
constexpr std::uint16_t fp32_to_fp16_bits(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16U) & 0x8000U;
  const std::uint32_t abs = x & 0x7FFFFFFFU;
  if (abs >= 0x7F800000U) {  // Inf or NaN
    if (abs == 0x7F800000U) return static_cast<std::uint16_t>(sign | 0x7C00U);
    return static_cast<std::uint16_t>(sign | 0x7E00U | ((abs >> 13U) & 0x3FFU));
  }
  if (abs >= 0x477FF000U) return static_cast<std::uint16_t>(sign | 0x7C00U);  // rounds to >= 65520: Inf
  if (abs < 0x38800000U) {
    // Result is an fp16 denormal (or zero): value = abs_f * 2^24 rounded to an integer.
    if (abs < 0x33000000U) return static_cast<std::uint16_t>(sign);  // below 2^-25: rounds to 0
    const std::uint32_t exponent = abs >> 23U;                       // 102 .. 112
    const std::uint32_t mantissa = (abs & 0x7FFFFFU) | 0x800000U;    // 24 significant bits
    const std::uint32_t shift = 126U - exponent;                     // 14 .. 24
    std::uint32_t result = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1U << shift) - 1U);
    const std::uint32_t halfway = 1U << (shift - 1U);
    if (rest > halfway || (rest == halfway && (result & 1U) != 0U)) ++result;
    return static_cast<std::uint16_t>(sign | result);
  }
  // Normal range: rebias the exponent (127 -> 15) and round 13 mantissa bits away.
  std::uint32_t result = ((abs - 0x38000000U) >> 13U);
  const std::uint32_t rest = abs & 0x1FFFU;
  if (rest > 0x1000U || (rest == 0x1000U && (result & 1U) != 0U)) ++result;  // may carry into the exponent: correct
  return static_cast<std::uint16_t>(sign | result);
}

/// IEEE binary16 bits -> fp32 (exact: every fp16 value is a float).
constexpr float fp16_bits_to_fp32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000U) << 16U;
  const std::uint32_t exponent = (h >> 10U) & 0x1FU;
  std::uint32_t mantissa = h & 0x3FFU;
  if (exponent == 0x1FU) return std::bit_cast<float>(sign | 0x7F800000U | (mantissa << 13U));
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112U) << 23U) | (mantissa << 13U));
  if (mantissa == 0) return std::bit_cast<float>(sign);
  // Denormal: normalize.
  std::uint32_t e = 113;
  while ((mantissa & 0x400U) == 0) {
    mantissa <<= 1U;
    --e;
  }
  return std::bit_cast<float>(sign | (e << 23U) | ((mantissa & 0x3FFU) << 13U));
}

/// fp32 -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN.
constexpr std::uint16_t fp32_to_bf16_bits(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7FFFFFFFU) > 0x7F800000U) return static_cast<std::uint16_t>((x >> 16U) | 0x0040U);
  const std::uint32_t rounding = 0x7FFFU + ((x >> 16U) & 1U);
  return static_cast<std::uint16_t>((x + rounding) >> 16U);
}

/// bfloat16 bits -> fp32 (exact).
constexpr float bf16_bits_to_fp32(std::uint16_t b) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16U);
}

}  // namespace ternq
