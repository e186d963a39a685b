// SPDX-License-Identifier: MIT
// The 2-bit and base-3 codecs: bit positions, every digit combination, partial last bytes.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "llm_like.hpp"
#include "ternq/pack/base3.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/codes.hpp"

namespace {

std::vector<std::int8_t> random_codes(std::size_t n, std::uint64_t seed) {
  ternq::testing::rng r(seed);
  std::vector<std::int8_t> t(n);
  for (auto& v : t) v = static_cast<std::int8_t>(static_cast<int>(r.next() % 3) - 1);
  return t;
}

}  // namespace

TEST_CASE("2-bit: element j in byte j / 4 at bits 2 (j % 4), code t + 1") {
  const std::vector<std::int8_t> t = {-1, 0, 1, 1, 0};
  std::vector<std::uint8_t> out(ternq::pack::packed_2bit_size(t.size()));
  REQUIRE(out.size() == 2);
  ternq::pack::pack_2bit(t, out);
  CHECK(out[0] == (0U | (1U << 2U) | (2U << 4U) | (2U << 6U)));
  CHECK(out[1] == 1U);  // the partial last byte: one code, the other bits zero
  std::vector<std::int8_t> back(t.size());
  CHECK(ternq::pack::unpack_2bit(out, back));
  CHECK(back == t);
}

TEST_CASE("2-bit: round trip of every length up to 33, and code 3 is reported") {
  for (std::size_t n = 0; n <= 33; ++n) {
    const auto t = random_codes(n, n);
    std::vector<std::uint8_t> out(ternq::pack::packed_2bit_size(n));
    ternq::pack::pack_2bit(t, out);
    std::vector<std::int8_t> back(n);
    CHECK(ternq::pack::unpack_2bit(out, back));
    CHECK(back == t);
  }
  const std::vector<std::uint8_t> three = {0x0CU};  // element 1 has code 3
  std::vector<std::int8_t> t(4);
  CHECK_FALSE(ternq::pack::unpack_2bit(three, t));
  CHECK(t == std::vector<std::int8_t>{-1, 2, -1, -1});
}

TEST_CASE("2-bit interleaved: LSB-first (TQ2_0) and MSB-first (I2_S) positions") {
  std::vector<std::int8_t> t(128, 0);
  t[0] = 1;    // byte 0, slot 0
  t[33] = -1;  // byte 1, slot 1
  t[127] = 1;  // byte 31, slot 3
  std::vector<std::uint8_t> lsb(32);
  std::vector<std::uint8_t> msb(32);
  ternq::pack::pack_2bit_interleaved<32>(t.data(), lsb.data());
  ternq::pack::pack_2bit_interleaved<32, true>(t.data(), msb.data());
  CHECK(lsb[0] == (2U | (1U << 2U) | (1U << 4U) | (1U << 6U)));
  CHECK(lsb[1] == (1U | (0U << 2U) | (1U << 4U) | (1U << 6U)));
  CHECK(lsb[31] == (1U | (1U << 2U) | (1U << 4U) | (2U << 6U)));
  CHECK(msb[0] == ((2U << 6U) | (1U << 4U) | (1U << 2U) | 1U));
  CHECK(msb[1] == ((1U << 6U) | (0U << 4U) | (1U << 2U) | 1U));
  CHECK(msb[31] == ((1U << 6U) | (1U << 4U) | (1U << 2U) | 2U));
  std::vector<std::int8_t> back(128);
  CHECK(ternq::pack::unpack_2bit_interleaved<32>(lsb.data(), back.data()));
  CHECK(back == t);
  CHECK(ternq::pack::unpack_2bit_interleaved<32, true>(msb.data(), back.data()));
  CHECK(back == t);
}

TEST_CASE("base 3: all 243 five-digit numbers decode back, first digit most significant") {
  for (unsigned q = 0; q < 243; ++q) {
    const std::uint8_t byte = ternq::pack::base3_byte(q);
    unsigned rest = q;
    for (std::size_t n = 5; n-- > 0;) {
      CHECK(ternq::pack::base3_digit(byte, n) == rest % 3);
      rest /= 3;
    }
  }
  CHECK(ternq::pack::base3_byte(0) == 0);
  CHECK(ternq::pack::base3_byte(242) == 255);
  // Any byte decodes to digits 0..2 (hostile input cannot produce other codes).
  for (unsigned b = 0; b < 256; ++b) {
    for (std::size_t n = 0; n < 5; ++n) CHECK(ternq::pack::base3_digit(static_cast<std::uint8_t>(b), n) <= 2);
  }
}

TEST_CASE("base 3: sequential packing of every length up to 23, partial bytes padded with digit 0") {
  for (std::size_t n = 0; n <= 23; ++n) {
    const auto t = random_codes(n, 100 + n);
    std::vector<std::uint8_t> out(ternq::pack::packed_base3_size(n));
    ternq::pack::pack_base3(t, out);
    std::vector<std::int8_t> back(n);
    ternq::pack::unpack_base3(out, back);
    CHECK(back == t);
  }
  const std::vector<std::int8_t> one = {1};  // digits 2,0,0,0,0: q = 162
  std::vector<std::uint8_t> out(1);
  ternq::pack::pack_base3(one, out);
  CHECK(out[0] == ternq::pack::base3_byte(162));
}

TEST_CASE("base 3 stages: element n W + m in byte m, digit n") {
  std::vector<std::int8_t> t(40, 0);
  t[8 * 2 + 3] = 1;  // byte 3, digit 2
  std::vector<std::uint8_t> out(8);
  ternq::pack::pack_base3_stage<8>(t.data(), out.data());
  CHECK(out[3] == ternq::pack::base3_byte(1 * 81 + 1 * 27 + 2 * 9 + 1 * 3 + 1));
  std::vector<std::int8_t> back(40);
  ternq::pack::unpack_base3_stage<8, 5>(out.data(), back.data());
  CHECK(back == t);
  std::vector<std::int8_t> four = {-1, 0, 1, -1, 1, 1, 0, 0};  // W = 2
  std::vector<std::uint8_t> qh(2);
  ternq::pack::pack_base3_stage<2, 4>(four.data(), qh.data());
  CHECK(qh[0] == ternq::pack::base3_byte((0 * 27 + 2 * 9 + 2 * 3 + 1) * 3));
  std::vector<std::int8_t> four_back(8);
  ternq::pack::unpack_base3_stage<2, 4>(qh.data(), four_back.data());
  CHECK(four_back == four);
}

TEST_CASE("little-endian loads and stores") {
  std::uint8_t b[8] = {};
  ternq::pack::store_le(b, std::uint32_t{0x11223344U});
  CHECK(b[0] == 0x44);
  CHECK(b[3] == 0x11);
  CHECK(ternq::pack::load_le<std::uint32_t>(b) == 0x11223344U);
  ternq::pack::store_le(b, -2.5);
  CHECK(ternq::pack::load_le<double>(b) == -2.5);
  ternq::pack::store_le(b, std::int16_t{-2});
  CHECK(b[0] == 0xFE);
  CHECK(b[1] == 0xFF);
  CHECK(ternq::pack::load_le<std::int16_t>(b) == -2);
}
