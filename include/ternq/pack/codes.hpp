// SPDX-License-Identifier: MIT
// Ternary codes and their 2-bit fields (4 a byte): the codecs of TQ2_0, Q2_0, PQ2_0 and I2_S.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

/// `pack_2bit` for a compile-time count of `4 Bytes` codes, into a local
/// buffer first: with the output known not to alias the input, compilers
/// vectorize the fully unrolled loop.
template <std::size_t Bytes>
inline void pack_2bit_block(const std::int8_t* t, std::uint8_t* out) noexcept {
  std::uint8_t local[Bytes];
  for (std::size_t j = 0; j < Bytes; ++j) {
    local[j] = static_cast<std::uint8_t>(code_of(t[4 * j]) | (code_of(t[4 * j + 1]) << 2U) |
                                         (code_of(t[4 * j + 2]) << 4U) | (code_of(t[4 * j + 3]) << 6U));
  }
  std::memcpy(out, local, Bytes);
}

namespace detail {
/// The four values of every byte of sequential 2-bit codes, as the bytes of
/// a little-endian u32: one load and one store per byte when decoding.
struct two_bit_table {
  std::array<std::uint32_t, 256> values{};
  constexpr two_bit_table() {
    for (unsigned b = 0; b < 256; ++b) {
      std::uint32_t w = 0;
      for (unsigned l = 0; l < 4; ++l)
        w |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(value_of((b >> (2U * l)) & 3U))) << (8U * l);
      values[b] = w;
    }
  }
};
inline constexpr two_bit_table two_bit_values{};
}  // namespace detail

/// Inverse of `pack_2bit` for `t.size()` codes. Returns false when a code 3
/// (+2, not ternary) was read; `t` then holds 2 there.
inline bool unpack_2bit(std::span<const std::uint8_t> in, std::span<std::int8_t> t) noexcept {
  TERNQ_ASSERT(in.size() == packed_2bit_size(t.size()));
  const std::size_t full = t.size() / 4;
  unsigned three = 0;  // a 2-bit field is 3 where both its bits are set
  for (std::size_t j = 0; j < full; ++j) {
    const std::uint8_t b = in[j];
    three |= static_cast<unsigned>(b & (b >> 1U) & 0x55U);
    const std::uint32_t w = detail::two_bit_values.values[b];
    for (std::size_t l = 0; l < 4; ++l) t[4 * j + l] = static_cast<std::int8_t>(w >> (8U * l));
  }
  for (std::size_t k = 4 * full; k < t.size(); ++k) {
    const auto c = static_cast<std::uint8_t>((in[full] >> (2U * (k % 4))) & 3U);
    three |= static_cast<unsigned>(c == 3);
    t[k] = value_of(c);
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
  std::uint8_t local[W];  // a local output cannot alias `t`: the unrolled loop vectorizes
  for (std::size_t m = 0; m < W; ++m) {
    local[m] = static_cast<std::uint8_t>((code_of(t[m]) << s0) | (code_of(t[W + m]) << s1) |
                                         (code_of(t[2 * W + m]) << s2) | (code_of(t[3 * W + m]) << s3));
  }
  std::memcpy(out, local, W);
}

/// True when no 2-bit field of `in[0..n)` holds the non-ternary code 3 (both bits set).
inline bool no_code_three(const std::uint8_t* in, std::size_t n) noexcept {
  unsigned three = 0;
  for (std::size_t m = 0; m < n; ++m) three |= static_cast<unsigned>(in[m] & (in[m] >> 1U) & 0x55U);
  return three == 0;
}

/// Inverse of `pack_2bit_interleaved`. Returns false when a code 3 was read.
template <std::size_t W, bool msb_first = false>
inline bool unpack_2bit_interleaved(const std::uint8_t* packed, std::int8_t* t) noexcept {
  constexpr unsigned s0 = msb_first ? 6U : 0U;
  constexpr unsigned s1 = msb_first ? 4U : 2U;
  constexpr unsigned s2 = msb_first ? 2U : 4U;
  constexpr unsigned s3 = msb_first ? 0U : 6U;
  std::uint8_t in[W];  // a local input cannot alias `t`: the unrolled loop vectorizes
  std::memcpy(in, packed, W);
  for (std::size_t m = 0; m < W; ++m) {
    t[m] = value_of(static_cast<std::uint8_t>((in[m] >> s0) & 3U));
    t[W + m] = value_of(static_cast<std::uint8_t>((in[m] >> s1) & 3U));
    t[2 * W + m] = value_of(static_cast<std::uint8_t>((in[m] >> s2) & 3U));
    t[3 * W + m] = value_of(static_cast<std::uint8_t>((in[m] >> s3) & 3U));
  }
  return no_code_three(in, W);
}

}  // namespace ternq::pack
