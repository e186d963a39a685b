// SPDX-License-Identifier: MIT
// Ternary codes as 2-bit fields (4 a byte) and as base-3 digits (5 a byte): the codecs every block format is built of.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/config.hpp"

namespace ternq::pack {

// Every format stores a ternary value t in {-1, 0, +1} as the code c = t + 1
// in {0, 1, 2}. The 2-bit decoders also read c = 3 (as +2); ternq never
// writes it and reports it when unpacking into a ternary_matrix.

/// The stored code of a ternary value: `t + 1`.
constexpr std::uint8_t code_of(std::int8_t t) noexcept { return static_cast<std::uint8_t>(t + 1); }

/// The value of a stored code: `c - 1` (2 for the non-ternary 2-bit code 3).
constexpr std::int8_t value_of(std::uint8_t c) noexcept { return static_cast<std::int8_t>(c - 1); }

// --- 2-bit codes -----------------------------------------------------------

/// Bytes holding `n` 2-bit codes.
constexpr std::size_t packed_2bit_size(std::size_t n) noexcept { return (n + 3) / 4; }

/// Sequential 2-bit packing: element `j` in byte `j / 4`, bits `2 (j % 4)`
/// (the Q2_0 / PQ2_0 order). `out` holds `packed_2bit_size(t.size())`
/// bytes; the unused bits of a partial last byte are 0 (never read back).
/// Codes must be in {-1, 0, +1} (checked in debug builds only).
inline void pack_2bit(std::span<const std::int8_t> t, std::span<std::uint8_t> out) noexcept {
  TERNQ_ASSERT(out.size() == packed_2bit_size(t.size()));
  const std::size_t full = t.size() / 4;
  for (std::size_t j = 0; j < full; ++j) {
    out[j] = static_cast<std::uint8_t>(code_of(t[4 * j]) | (code_of(t[4 * j + 1]) << 2U) |
                                       (code_of(t[4 * j + 2]) << 4U) | (code_of(t[4 * j + 3]) << 6U));
  }
  if (full < out.size()) {
    unsigned byte = 0;
    for (std::size_t k = 4 * full; k < t.size(); ++k) byte |= static_cast<unsigned>(code_of(t[k])) << (2U * (k % 4));
    out[full] = static_cast<std::uint8_t>(byte);
  }
}

/// Inverse of `pack_2bit` for `t.size()` codes. Returns false when a code 3
/// (+2, not ternary) was read; `t` then holds 2 there.
inline bool unpack_2bit(std::span<const std::uint8_t> in, std::span<std::int8_t> t) noexcept {
  TERNQ_ASSERT(in.size() == packed_2bit_size(t.size()));
  unsigned three = 0;
  for (std::size_t j = 0; j < t.size(); ++j) {
    const auto c = static_cast<std::uint8_t>((in[j / 4] >> (2U * (j % 4))) & 3U);
    three |= static_cast<unsigned>(c == 3);
    t[j] = value_of(c);
  }
  return three == 0;
}

/// Interleaved 2-bit packing of `4 W` codes into `W` bytes: byte `m` holds
/// elements `m, W + m, 2W + m, 3W + m`. With `msb_first == false` the first
/// of them is in bits 0-1 (TQ2_0); with `msb_first == true` in bits 6-7
/// (I2_S). Codes must be in {-1, 0, +1}.
template <std::size_t W, bool msb_first = false>
inline void pack_2bit_interleaved(const std::int8_t* t, std::uint8_t* out) noexcept {
  constexpr unsigned s0 = msb_first ? 6U : 0U;
  constexpr unsigned s1 = msb_first ? 4U : 2U;
  constexpr unsigned s2 = msb_first ? 2U : 4U;
  constexpr unsigned s3 = msb_first ? 0U : 6U;
  for (std::size_t m = 0; m < W; ++m) {
    out[m] = static_cast<std::uint8_t>((code_of(t[m]) << s0) | (code_of(t[W + m]) << s1) |
                                       (code_of(t[2 * W + m]) << s2) | (code_of(t[3 * W + m]) << s3));
  }
}

/// Inverse of `pack_2bit_interleaved`. Returns false when a code 3 was read.
template <std::size_t W, bool msb_first = false>
inline bool unpack_2bit_interleaved(const std::uint8_t* in, std::int8_t* t) noexcept {
  unsigned three = 0;
  for (std::size_t l = 0; l < 4; ++l) {
    const unsigned shift = msb_first ? 6U - 2U * static_cast<unsigned>(l) : 2U * static_cast<unsigned>(l);
    for (std::size_t m = 0; m < W; ++m) {
      const auto c = static_cast<std::uint8_t>((in[m] >> shift) & 3U);
      three |= static_cast<unsigned>(c == 3);
      t[l * W + m] = value_of(c);
    }
  }
  return three == 0;
}

// --- base-3 digits -----------------------------------------------------------
//
// Why this byte mapping: five codes form q = c0 3^4 + c1 3^3 + ... + c4 in
// 0..242, stored as ceil(q 256 / 243). Multiplying the byte by 3^n (mod
// 256) then shifts digit n to the top, where (x * 3) >> 8 reads it: decoding
// is a multiply and a shift per digit, no division (the TQ1_0 design).

/// The stored byte of a base-3 number `q` in 0..242: `(q 256 + 242) / 243`.
constexpr std::uint8_t base3_byte(unsigned q) noexcept {
  TERNQ_ASSERT(q < 243U);
  return static_cast<std::uint8_t>((q * 256U + 242U) / 243U);
}

/// Powers of three that fit a byte.
inline constexpr std::array<std::uint8_t, 5> pow3 = {1, 3, 9, 27, 81};

/// Digit `n` (0 = most significant) of a stored base-3 byte:
/// `((uint8_t)(byte 3^n) 3) >> 8`. Always 0, 1 or 2.
constexpr std::uint8_t base3_digit(std::uint8_t byte, std::size_t n) noexcept {
  const auto shifted = static_cast<std::uint8_t>(byte * pow3[n]);
  return static_cast<std::uint8_t>((static_cast<unsigned>(shifted) * 3U) >> 8U);
}

/// Bytes holding `n` codes as base-3 digits.
constexpr std::size_t packed_base3_size(std::size_t n) noexcept { return (n + 4) / 5; }

/// Sequential base-3 packing: byte `j` holds elements `5j .. 5j+4`, the
/// first in the most significant digit. A partial last byte is completed
/// with digit 0 below its codes (as the 4-digit TQ1_0 `qh` bytes are).
/// Codes must be in {-1, 0, +1}.
inline void pack_base3(std::span<const std::int8_t> t, std::span<std::uint8_t> out) noexcept {
  TERNQ_ASSERT(out.size() == packed_base3_size(t.size()));
  for (std::size_t j = 0; j < out.size(); ++j) {
    unsigned q = 0;
    for (std::size_t n = 0; n < 5; ++n) {
      const std::size_t k = 5 * j + n;
      q = q * 3U + (k < t.size() ? code_of(t[k]) : 0U);
    }
    out[j] = base3_byte(q);
  }
}

/// Inverse of `pack_base3` for `t.size()` codes (every byte decodes to digits 0..2).
inline void unpack_base3(std::span<const std::uint8_t> in, std::span<std::int8_t> t) noexcept {
  TERNQ_ASSERT(in.size() == packed_base3_size(t.size()));
  for (std::size_t k = 0; k < t.size(); ++k) t[k] = value_of(base3_digit(in[k / 5], k % 5));
}

/// One stage of the staged base-3 layout (TQ1_0, PTQ1_0): `5 W` codes into
/// `W` bytes, byte `m` holding elements `m, W + m, ..., 4W + m`, the first in
/// the most significant digit.
template <std::size_t W>
inline void pack_base3_stage5(const std::int8_t* t, std::uint8_t* out) noexcept {
  for (std::size_t m = 0; m < W; ++m) {
    const unsigned q = code_of(t[m]) * 81U + code_of(t[W + m]) * 27U + code_of(t[2 * W + m]) * 9U +
                       code_of(t[3 * W + m]) * 3U + code_of(t[4 * W + m]);
    out[m] = base3_byte(q);
  }
}

/// The 4-digit stage (the `qh` bytes): `4 W` codes into `W` bytes, byte `m`
/// holding elements `m, W + m, 2W + m, 3W + m` in its four most significant
/// digits and 0 in the fifth.
template <std::size_t W>
inline void pack_base3_stage4(const std::int8_t* t, std::uint8_t* out) noexcept {
  for (std::size_t m = 0; m < W; ++m) {
    const unsigned q =
        code_of(t[m]) * 81U + code_of(t[W + m]) * 27U + code_of(t[2 * W + m]) * 9U + code_of(t[3 * W + m]) * 3U;
    out[m] = base3_byte(q);
  }
}

/// Inverse of `pack_base3_stage5` (`Digits == 5`) or `pack_base3_stage4` (`Digits == 4`).
template <std::size_t W, std::size_t Digits>
inline void unpack_base3_stage(const std::uint8_t* in, std::int8_t* t) noexcept {
  for (std::size_t n = 0; n < Digits; ++n) {
    for (std::size_t m = 0; m < W; ++m) t[n * W + m] = value_of(base3_digit(in[m], n));
  }
}

}  // namespace ternq::pack
