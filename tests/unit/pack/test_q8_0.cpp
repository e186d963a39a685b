// SPDX-License-Identifier: MIT
// Q8_0 (ggml type 8): ggml's block layout (fp16 d first, 32 int8) and reference rule, byte for byte.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <vector>

#include "llm_like.hpp"
#include "ternq/core/half.hpp"
#include "ternq/io/gguf_reader.hpp"
#include "ternq/io/gguf_writer.hpp"
#include "ternq/pack/ggml_types.hpp"
#include "ternq/pack/q8_0.hpp"
#include "ternq/pack/to_float.hpp"

namespace {

using ternq::pack::ggml_type;

}  // namespace

TEST_CASE("Q8_0: the type table and the block struct are ggml's") {
  const auto& t = ternq::pack::traits_of(ggml_type::q8_0);
  CHECK(static_cast<std::uint32_t>(t.type) == 8);  // GGML_TYPE_Q8_0
  CHECK(t.name == "Q8_0");
  CHECK(t.block_elements == 32);
  CHECK(t.block_bytes == 34);
  CHECK_FALSE(t.ternary);
  CHECK(t.bits_per_weight() == 8.5);
  CHECK(ternq::pack::q8_0_size(3, 64) == 3 * 2 * 34);
  CHECK_THROWS_AS((void)ternq::pack::q8_0_size(1, 48), ternq::error);
}

TEST_CASE("Q8_0: hand-computed blocks, byte for byte") {
  // Block 0: max |x| = 127, so d = 1 exactly (fp16 0x3C00) and each code is roundf(x): ties away from zero.
  // Block 1: all zero: d = 0, codes 0. Block 2: max |x| = 2.54, d = 0.02 (rounded to fp16 0x251F).
  std::vector<float> x(96, 0.0F);
  const float first[] = {127.0F, -127.0F, 2.5F, -2.5F, 0.49F, -0.51F, 100.2F, -3.7F};
  for (int j = 0; j < 8; ++j) x[j] = first[j];
  x[64] = 2.54F;
  x[65] = -1.26F;
  x[66] = 0.01F;  // exactly half a step: 0.5 after the product with 1/d rounds one way or the other (see below)
  const auto bytes = ternq::pack::quantize_q8_0(x, 1, 96);
  REQUIRE(bytes.size() == 3 * 34);
  CHECK(bytes[0] == 0x00);
  CHECK(bytes[1] == 0x3C);
  const std::int8_t codes[] = {127, -127, 3, -3, 0, -1, 100, -4};
  for (int j = 0; j < 8; ++j) CHECK(static_cast<std::int8_t>(bytes[2 + j]) == codes[j]);
  for (int j = 8; j < 32; ++j) CHECK(bytes[2 + j] == 0);
  for (int j = 34; j < 68; ++j) CHECK(bytes[j] == 0);  // block 1: d = 0 and every code 0
  const float d = 2.54F / 127.0F;
  const std::uint16_t d16 = ternq::fp32_to_fp16_bits(d);
  CHECK(d16 == 0x251F);
  CHECK(bytes[68] == (d16 & 0xFF));
  CHECK(bytes[69] == (d16 >> 8));
  CHECK(static_cast<std::int8_t>(bytes[70]) == 127);
  CHECK(static_cast<std::int8_t>(bytes[71]) == -63);
  // ggml multiplies by the float reciprocal of d, then rounds half away from zero.
  CHECK(static_cast<std::int8_t>(bytes[72]) == static_cast<std::int8_t>(std::round(0.01F * (1.0F / d))));

  // Decoding is qs * fp16(d).
  const auto y = ternq::pack::to_float(ggml_type::q8_0, bytes, 1, 96);
  CHECK(y[2] == 3.0F);
  CHECK(y[5] == -1.0F);
  CHECK(y[40] == 0.0F);
  CHECK(y[65] == -63.0F * ternq::fp16_bits_to_fp32(d16));
}

TEST_CASE("Q8_0 on LLM-like weights: error within half a step (and d's fp16 rounding), re-quantizing the decoded values is exact") {
  const auto w = ternq::testing::llm_like_weights(48, 256, 5);
  std::vector<float> x(static_cast<std::size_t>(w.size()));
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    for (Eigen::Index j = 0; j < w.cols(); ++j) x[static_cast<std::size_t>(i * w.cols() + j)] = w(i, j);
  }
  const auto bytes = ternq::pack::quantize_q8_0(x, 48, 256);
  const auto y = ternq::pack::to_float(ggml_type::q8_0, bytes, 48, 256);
  for (std::size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0F;
    for (std::size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    // Half a step, plus the fp16 rounding of d (relative 2^-11) times the largest code.
    const float step = amax / 127.0F;
    for (std::size_t j = 0; j < 32; ++j) {
      CHECK(std::fabs(x[32 * b + j] - y[32 * b + j]) <= 0.5F * step + 127.0F * step / 2048.0F + 1e-7F);
    }
  }
  // The decoded values are a fixed point: the file of a kept tensor is the same from either.
  CHECK(ternq::pack::quantize_q8_0(y, 48, 256) == bytes);
}

TEST_CASE("Q8_0: bad input is refused") {
  std::vector<float> x(64, 1.0F);
  CHECK_THROWS_WITH_AS(ternq::pack::quantize_q8_0(x, 1, 48), doctest::Contains("not a multiple of the 32-element"),
                       ternq::error);
  CHECK_THROWS_AS(ternq::pack::quantize_q8_0(x, 1, 32), ternq::error);  // 64 floats for 1x32
  x[7] = std::nanf("");
  CHECK_THROWS_WITH_AS(ternq::pack::quantize_q8_0(x, 2, 32), doctest::Contains("element 7 is not finite"),
                       ternq::error);
  std::vector<std::uint8_t> small(33);
  CHECK_THROWS_AS(ternq::pack::quantize_q8_0_into(std::vector<float>(32, 0.0F), 1, 32, small), ternq::error);
}

TEST_CASE("Q8_0 tensors go through the GGUF writer and reader") {
  std::vector<float> x(2 * 64);
  for (std::size_t k = 0; k < x.size(); ++k) x[k] = std::sin(static_cast<float>(k));
  const auto bytes = ternq::pack::quantize_q8_0(x, 2, 64);
  ternq::io::gguf_writer w;
  w.add_tensor("t", ggml_type::q8_0, {64, 2});
  std::stringstream out;
  w.open(out);
  w.write_tensor("t", std::span<const std::uint8_t>(bytes));
  w.close();
  const std::string s = out.str();
  const auto r = ternq::io::gguf_reader::from_bytes(std::vector<std::uint8_t>(s.begin(), s.end()));
  CHECK(r.tensor("t").type == ggml_type::q8_0);
  CHECK(r.tensor("t").size == 4 * 34);
  CHECK(r.read_floats(r.tensor("t")) == ternq::pack::to_float(ggml_type::q8_0, bytes, 2, 64));
}
