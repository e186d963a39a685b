// SPDX-License-Identifier: MIT
// kernels::widen: every fp16 and bf16 bit pattern widens to the float of the scalar conversions (core/half.hpp) on
// every variant, at every length around the vector width and from unaligned bytes; a size mismatch is refused.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <ternq/core/half.hpp>
#include <ternq/kernels.hpp>

namespace {

using ternq::kernels::half_encoding;

float scalar(half_encoding e, std::uint16_t bits) {
  return e == half_encoding::fp16 ? ternq::fp16_bits_to_fp32(bits) : ternq::bf16_bits_to_fp32(bits);
}

/// Same float bits, or both NaN (a NaN's payload is not promised).
bool same(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  std::uint32_t ua = 0, ub = 0;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  return ua == ub;
}

}  // namespace

TEST_CASE("widen: every fp16 and bf16 pattern gives the scalar conversion's float on every variant") {
  // All 65536 patterns, stored little-endian one byte past an aligned start.
  std::vector<std::uint8_t> bytes(1 + 2 * 65536);
  for (std::uint32_t h = 0; h < 65536; ++h) {
    bytes[1 + 2 * h] = static_cast<std::uint8_t>(h & 0xFF);
    bytes[2 + 2 * h] = static_cast<std::uint8_t>(h >> 8);
  }
  const std::span<const std::uint8_t> all(bytes.data() + 1, 2 * 65536);
  for (const half_encoding e : {half_encoding::fp16, half_encoding::bf16}) {
    for (const ternq::simd_level level : ternq::supported_simd_levels()) {
      CAPTURE(ternq::simd_level_name(level));
      std::vector<float> out(65536, -7.0F);
      ternq::kernels::widen(e, all, out, level);
      std::size_t bad = 0;
      for (std::uint32_t h = 0; h < 65536; ++h) bad += same(out[h], scalar(e, static_cast<std::uint16_t>(h))) ? 0 : 1;
      CHECK(bad == 0);
      // Lengths around the vector width: the tail is converted and nothing past the end is written.
      for (std::size_t n = 0; n <= 40; ++n) {
        std::vector<float> part(n + 1, -7.0F);
        ternq::kernels::widen(e, all.subspan(2 * 1000, 2 * n), std::span<float>(part.data(), n), level);
        for (std::size_t i = 0; i < n; ++i) CHECK(same(part[i], scalar(e, static_cast<std::uint16_t>(1000 + i))));
        CHECK(part[n] == -7.0F);
      }
    }
  }
}

TEST_CASE("widen: bytes that do not hold exactly the values asked for are refused") {
  const std::vector<std::uint8_t> bytes(9);
  std::vector<float> out(4);
  CHECK_THROWS_WITH_AS(ternq::kernels::widen(half_encoding::fp16, bytes, out),
                       "[ternq.shape_mismatch] kernels::widen: 9 bytes for 4 half-precision values", ternq::error);
}
