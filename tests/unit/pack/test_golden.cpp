// SPDX-License-Identifier: MIT
// FORMATS.md's golden vectors: ggml's reference quantizers reproduced byte for byte (sha256), and their round trip.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "sha256.hpp"
#include "ternq/core/half.hpp"
#include "ternq/pack/reference.hpp"
#include "ternq/pack/to_float.hpp"
#include "ternq/pack/unpack.hpp"

namespace {

using ternq::pack::format;

std::vector<float> input_a() {
  std::vector<float> x(512);
  for (int i = 0; i < 512; ++i) x[static_cast<std::size_t>(i)] = 0.1F + 2.0F * std::cos(static_cast<float>(i));
  return x;
}

std::vector<float> input_b() {
  std::vector<float> x(512);
  for (int i = 0; i < 512; ++i) x[static_cast<std::size_t>(i)] = 0.05F * static_cast<float>(((i * 7) % 3) - 1);
  return x;
}

struct golden {
  format fmt;
  bool a;
  std::size_t bytes;
  const char* sha256;
};

}  // namespace

TEST_CASE("golden vectors: ggml's reference quantizers, byte for byte") {
  const std::vector<float> a = input_a();
  const std::vector<float> b = input_b();
  const golden table[] = {
      {format::tq1_0, true, 108, "877243f4fe7d3b29a2da7995d8f61855a62bb1369d49a1ad862023041623466a"},
      {format::tq1_0, false, 108, "532f77e82be5315a444f8e786b7ce0d6d0c48f3640d41252331a9aaaca03af84"},
      {format::tq2_0, true, 132, "6596719a3331cdbe2372ca9988bd60ba21abe086a14f670056bbe4352ab21006"},
      {format::tq2_0, false, 132, "439b8395472659723ac2b347e930109817506a5f08dd377ced4d4c19a1fde1b3"},
      {format::q2_0, true, 144, "91c7360266beaf8ec67f617040dda8b1c75b87c9ff8d2d82de13c4a91f661082"},
      {format::q2_0, false, 144, "8811997f91bfdcb7895a8c1ebcf870aa249fb59819bf9a34dbc70ed250039f2f"},
  };
  for (const golden& g : table) {
    CAPTURE(ternq::pack::name_of(g.fmt));
    CAPTURE(g.a);
    const std::vector<std::uint8_t> bytes = ternq::pack::quantize_reference(g.fmt, g.a ? a : b, 1, 512);
    CHECK(bytes.size() == g.bytes);
    CHECK(ternq::testing::sha256_hex(bytes) == g.sha256);
  }
  const std::vector<std::uint8_t> q1 = ternq::pack::quantize_q1_0_reference(a);
  CHECK(q1.size() == 72);
  CHECK(ternq::testing::sha256_hex(q1) == "0e05111c5603692c987841994b04375bfa7965964065b32b5da693b2282dbdcf");
}

TEST_CASE("golden vectors: input B round-trips through TQ1_0 and TQ2_0 within the fp16 rounding of 0.05") {
  const std::vector<float> b = input_b();
  const float fp16_error = std::fabs(0.05F - ternq::fp16_bits_to_fp32(ternq::fp32_to_fp16_bits(0.05F)));
  CHECK(fp16_error == doctest::Approx(1.22e-5).epsilon(0.01));
  for (const format f : {format::tq1_0, format::tq2_0, format::q2_0, format::pq2_0, format::ptq1_0}) {
    CAPTURE(ternq::pack::name_of(f));
    const auto bytes = ternq::pack::quantize_reference(f, b, 1, 512);
    const std::vector<float> y = ternq::pack::to_float(ternq::pack::ggml_type_of(f), bytes, 1, 512);
    float max_error = 0.0F;
    for (std::size_t i = 0; i < b.size(); ++i) max_error = std::max(max_error, std::fabs(y[i] - b[i]));
    CHECK(max_error == fp16_error);
    // The codes are exactly the ternary pattern of B.
    const ternq::ternary_matrix q = ternq::pack::unpack(f, bytes, 1, 512);
    for (std::size_t i = 0; i < 512; ++i) REQUIRE(q.code(0, i) == static_cast<int>(((i * 7) % 3)) - 1);
  }
}

TEST_CASE("reference I2_S: one f32 scale, signs above 1e-6, the x86 byte layout") {
  std::vector<float> x(256, 0.0F);
  x[0] = 0.75F;    // group 0, element 0: byte 0, bits 6-7
  x[33] = -0.25F;  // element 33: byte 1, bits 4-5
  x[127] = 1e-7F;  // below 1e-6: zero
  x[128] = -1.5F;  // group 1, element 0: byte 32, bits 6-7
  const auto bytes = ternq::pack::quantize_reference(format::i2_s, x, 2, 128);
  REQUIRE(bytes.size() == 256 / 4 + 32);
  CHECK(bytes[0] == ((2U << 6U) | (1U << 4U) | (1U << 2U) | 1U));
  CHECK(bytes[1] == ((1U << 6U) | (0U << 4U) | (1U << 2U) | 1U));
  CHECK(bytes[31] == 0x55U);  // element 127 (bits 0-1) is zero
  CHECK(bytes[32] == ((0U << 6U) | (1U << 4U) | (1U << 2U) | 1U));
  CHECK(ternq::pack::load_le<float>(&bytes[64]) == 1.5F);
  for (std::size_t k = 68; k < bytes.size(); ++k) CHECK(bytes[k] == 0);
}
