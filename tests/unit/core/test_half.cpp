// SPDX-License-Identifier: MIT
// fp16 / bf16 conversions, exhaustively over all 65,536 bit patterns and every rounding midpoint.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ternq/core/half.hpp"

namespace {

float next_float_up(float x) { return std::nextafter(x, std::numeric_limits<float>::infinity()); }
float next_float_down(float x) { return std::nextafter(x, -std::numeric_limits<float>::infinity()); }

template <class ToBits, class ToFloat>
void check_exhaustive(ToBits to_bits, ToFloat to_float, std::uint16_t max_finite_bits) {
  int failures = 0;
  for (std::uint32_t u = 0; u <= 0xFFFFU; ++u) {
    const auto h = static_cast<std::uint16_t>(u);
    const float f = to_float(h);
    if (std::isnan(f)) {
      // NaN survives as a quiet NaN of the same sign.
      const std::uint16_t back = to_bits(f);
      failures += (!std::isnan(to_float(back)) || (back & 0x8000U) != (h & 0x8000U)) ? 1 : 0;
      continue;
    }
    // Every value converts back to itself.
    failures += to_bits(f) == h ? 0 : 1;
    const std::uint16_t mag = h & 0x7FFFU;
    if (mag >= max_finite_bits) continue;  // no finite upper neighbour
    // Between h and its upper neighbour (away from zero): below the midpoint
    // rounds to h, above to the neighbour, the midpoint itself to the even one.
    const auto up = static_cast<std::uint16_t>(h + 1);
    const float g = to_float(up);
    const float mid = f + (g - f) / 2.0F;  // exact: one more significant bit than the format
    const std::uint16_t even = (h & 1U) == 0 ? h : up;
    failures += to_bits(mid) == even ? 0 : 1;
    const bool positive = (h & 0x8000U) == 0;
    const float inside_low = positive ? next_float_down(mid) : next_float_up(mid);
    const float inside_high = positive ? next_float_up(mid) : next_float_down(mid);
    failures += to_bits(inside_low) == h ? 0 : 1;
    failures += to_bits(inside_high) == up ? 0 : 1;
  }
  CHECK(failures == 0);
}

}  // namespace

TEST_CASE("fp16: every bit pattern round-trips and every midpoint rounds to even") {
  check_exhaustive(ternq::fp32_to_fp16_bits, ternq::fp16_bits_to_fp32, 0x7BFFU);
}

TEST_CASE("bf16: every bit pattern round-trips and every midpoint rounds to even") {
  check_exhaustive(ternq::fp32_to_bf16_bits, ternq::bf16_bits_to_fp32, 0x7F7FU);
}

TEST_CASE("fp16 edge cases: overflow, underflow, denormals, infinities") {
  using ternq::fp16_bits_to_fp32;
  using ternq::fp32_to_fp16_bits;
  CHECK(fp32_to_fp16_bits(65504.0F) == 0x7BFFU);    // largest finite
  CHECK(fp32_to_fp16_bits(65519.996F) == 0x7BFFU);  // just below the midpoint to Inf
  CHECK(fp32_to_fp16_bits(65520.0F) == 0x7C00U);    // the midpoint ties to even: Inf
  CHECK(fp32_to_fp16_bits(1e30F) == 0x7C00U);
  CHECK(fp32_to_fp16_bits(-std::numeric_limits<float>::infinity()) == 0xFC00U);
  CHECK(fp32_to_fp16_bits(0x1p-24F) == 0x0001U);  // smallest denormal
  CHECK(fp32_to_fp16_bits(0x1p-25F) == 0x0000U);  // half of it ties to even: 0
  CHECK(fp32_to_fp16_bits(0x1.000002p-25F) == 0x0001U);
  CHECK(fp32_to_fp16_bits(-0x1p-26F) == 0x8000U);  // signed zero
  CHECK(fp32_to_fp16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000U);
  CHECK(fp32_to_fp16_bits(0x1.FF8p-15F) == 0x03FFU);  // largest denormal
  CHECK(fp32_to_fp16_bits(0x1.FFCp-15F) == 0x0400U);  // the midpoint ties (to even) into the normals
  CHECK(fp16_bits_to_fp32(0x3C00U) == 1.0F);
  CHECK(fp16_bits_to_fp32(0x0001U) == 0x1p-24F);
  CHECK(fp32_to_fp16_bits(0.05F) == 0x2A66U);  // FORMATS.md's B-vector scale
  CHECK(std::fabs(fp16_bits_to_fp32(0x2A66U) - 0.05F) == doctest::Approx(1.2219e-5).epsilon(1e-3));
  static_assert(ternq::fp32_to_fp16_bits(1.0F) == 0x3C00U, "usable in constant expressions");
}

TEST_CASE("bf16 edge cases") {
  CHECK(ternq::fp32_to_bf16_bits(1.0F) == 0x3F80U);
  CHECK(ternq::fp32_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7F80U);  // rounds to Inf
  CHECK(ternq::fp32_to_bf16_bits(-0.0F) == 0x8000U);
  CHECK(std::isnan(ternq::bf16_bits_to_fp32(ternq::fp32_to_bf16_bits(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload sits only in the low 16 bits must not become Inf.
  const float low_payload_nan = std::bit_cast<float>(0x7F800001U);
  CHECK(std::isnan(ternq::bf16_bits_to_fp32(ternq::fp32_to_bf16_bits(low_payload_nan))));
}
