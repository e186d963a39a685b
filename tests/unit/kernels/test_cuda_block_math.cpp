// SPDX-License-Identifier: MIT
// The arithmetic the CUDA kernels share with the host (kernels/cuda/block_math.hpp), checked on the CPU against
// the pack codecs: which element each lane reads, the values it decodes, the fp16 scales.
#include <bit>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include <ternq/core/half.hpp>
#include <ternq/kernels/cuda/block_math.hpp>
#include <ternq/pack/q2_0.hpp>
#include <ternq/pack/tq2_0.hpp>

#include "llm_like.hpp"

namespace math = ternq::kernels::cuda_math;

namespace {
std::vector<std::int8_t> random_codes(std::size_t n, std::uint64_t seed) {
  ternq::testing::rng r(seed);
  std::vector<std::int8_t> t(n);
  for (auto& c : t) c = static_cast<std::int8_t>(static_cast<int>(r.next() % 4) - 1);  // -1..2 (2: code 3)
  return t;
}
}  // namespace

TEST_CASE("TQ2_0: the lanes' (h, l) fields cover the block once, each with the codec's value") {
  CHECK(math::tq2_0_bytes == sizeof(ternq::pack::block_tq2_0));
  CHECK(math::tq2_0_elements == ternq::pack::block_tq2_0::elements);
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const std::vector<std::int8_t> t = random_codes(256, seed);
    std::vector<std::uint8_t> block(66);
    ternq::pack::tq2_0::encode(t.data(), 0x3C00, block.data());
    std::vector<int> seen(256, 0);
    for (unsigned lane = 0; lane < 32; ++lane) {
      for (unsigned h = 0; h < 2; ++h) {
        for (unsigned l = 0; l < 4; ++l) {
          const unsigned e = math::tq2_0_element(lane, h, l);
          REQUIRE(e < 256);
          ++seen[e];
          CHECK(math::value_of_field(block[32 * h + lane], l) == t[e]);
        }
      }
    }
    for (const int s : seen) CHECK(s == 1);
    CHECK(math::scale_at(block.data() + 64) == 1.0F);
  }
}

TEST_CASE("Q2_0: a half-warp's 16 lanes and 4 fields cover the block once, each with the codec's value") {
  CHECK(math::q2_0_bytes == sizeof(ternq::pack::block_q2_0));
  CHECK(math::q2_0_elements == ternq::pack::block_q2_0::elements);
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const std::vector<std::int8_t> t = random_codes(64, seed);
    std::vector<std::uint8_t> block(18);
    ternq::pack::q2_0::encode(t.data(), ternq::fp32_to_fp16_bits(-0.375F), block.data());
    std::vector<int> seen(64, 0);
    for (unsigned k = 0; k < 16; ++k) {
      for (unsigned f = 0; f < 4; ++f) {
        const unsigned e = math::q2_0_element(k, f);
        REQUIRE(e < 64);
        ++seen[e];
        CHECK(math::value_of_field(block[2 + k], f) == t[e]);
      }
    }
    for (const int s : seen) CHECK(s == 1);
    CHECK(math::scale_at(block.data()) == -0.375F);
  }
}

TEST_CASE("the kernels' fp16 conversion equals the library's for all 65536 bit patterns") {
  for (std::uint32_t h = 0; h <= 0xFFFFU; ++h) {
    const float a = math::half_bits_to_float(static_cast<std::uint16_t>(h));
    const float b = ternq::fp16_bits_to_fp32(static_cast<std::uint16_t>(h));
    if (std::bit_cast<std::uint32_t>(a) != std::bit_cast<std::uint32_t>(b)) {
      FAIL_CHECK("fp16 bits " << h << ": " << a << " vs " << b);
      break;
    }
  }
}
