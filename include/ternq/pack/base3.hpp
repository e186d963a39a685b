// SPDX-License-Identifier: MIT
// Ternary codes as base-3 digits, 5 a byte: the codecs of TQ1_0 and PTQ1_0.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "ternq/config.hpp"
#include "ternq/pack/codes.hpp"

namespace ternq::pack {

// Why this byte mapping: five codes form q = c0 3^4 + c1 3^3 + ... + c4 in
// 0..242, stored as ceil(q 256 / 243). Multiplying the byte by 3^n (mod
// 256) then shifts digit n to the top, where (x * 3) >> 8 reads it: decoding
// is a multiply and a shift per digit, no division (the TQ1_0 design).

/// The stored byte of a base-3 number `q` in 0..242: `(q 256 + 242) / 243`.
/// (In 16-bit arithmetic, which the numerator fits: compilers then divide
/// 8 or 16 lanes at a time with a multiply-high.)
constexpr std::uint8_t base3_byte(unsigned q) noexcept {
  TERNQ_ASSERT(q < 243U);
  const auto numerator = static_cast<std::uint16_t>(q * 256U + 242U);
  return static_cast<std::uint8_t>(numerator / std::uint16_t{243});
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

namespace detail {
/// The stored base-3 number of `Digits` codes of `t` at stride `W`
/// (`Digits == 4`: the fifth digit is 0).
template <std::size_t W, std::size_t Digits>
inline std::uint16_t base3_number(const std::int8_t* t, std::size_t m) noexcept {
  if constexpr (Digits == 5) {
    return static_cast<std::uint16_t>(code_of(t[m]) * 81U + code_of(t[W + m]) * 27U + code_of(t[2 * W + m]) * 9U +
                                      code_of(t[3 * W + m]) * 3U + code_of(t[4 * W + m]));
  } else {
    return static_cast<std::uint16_t>(code_of(t[m]) * 81U + code_of(t[W + m]) * 27U + code_of(t[2 * W + m]) * 9U +
                                      code_of(t[3 * W + m]) * 3U);
  }
}
/// Stages at least this wide are computed through a local buffer, which
/// lets compilers vectorize them.
inline constexpr std::size_t base3_vector_width = 16;

/// The stored byte of every base-3 number 0..242.
struct base3_byte_table {
  std::array<std::uint8_t, 243> bytes{};
  constexpr base3_byte_table() {
    for (unsigned q = 0; q < 243; ++q) bytes[q] = base3_byte(q);
  }
};
inline constexpr base3_byte_table base3_bytes{};

/// A narrow stage (PTQ1_0's 8 and 2 bytes, TQ1_0's 4) as SIMD within a
/// register: each plane of `W` codes is one little-endian word, the codes
/// become stored codes byte-wise without carries, and the base-3 number of
/// each byte lane is at most 242, so the lanes never carry into each other
/// either; a table then maps each lane to its byte. (Compilers leave such
/// short loops scalar, and slow.)
template <std::size_t W, std::size_t Digits>
inline void pack_base3_narrow(const std::int8_t* t, std::uint8_t* out) noexcept {
  static_assert(W == 2 || W == 4 || W == 8);
  using word = std::conditional_t<W == 8, std::uint64_t, std::uint32_t>;
  constexpr word ones = static_cast<word>(0x0101010101010101ULL);
  constexpr word high = static_cast<word>(0x8080808080808080ULL);
  word q = 0;
  for (std::size_t n = 0; n < Digits; ++n) {
    word w = 0;
    std::memcpy(&w, t + n * W, W);  // lanes beyond W (W == 2) stay 0 and are never stored
    const word c = static_cast<word>((((w & ~high) + ones) ^ (w & high)));  // t + 1 in every byte, no carries
    q = static_cast<word>(q * 3U + c);
  }
  if constexpr (Digits == 4) q = static_cast<word>(q * 3U);
  for (std::size_t m = 0; m < W; ++m) out[m] = base3_bytes.bytes[static_cast<std::uint8_t>(q >> (8U * m))];
}

/// The five digits of every stored byte, as the values -1, 0, +1 in the
/// bytes of a little-endian u64 (digit 0 in the low byte).
struct base3_digit_table {
  std::array<std::uint64_t, 256> digits{};
  constexpr base3_digit_table() {
    for (unsigned b = 0; b < 256; ++b) {
      std::uint64_t d = 0;
      for (unsigned n = 0; n < 5; ++n) {
        d |= static_cast<std::uint64_t>(
                 static_cast<std::uint8_t>(value_of(base3_digit(static_cast<std::uint8_t>(b), n))))
             << (8U * n);
      }
      digits[b] = d;
    }
  }
};
inline constexpr base3_digit_table base3_digits{};

/// The inverse of `pack_base3_narrow`: one table load per byte, then the
/// digits are regrouped into one word per plane.
template <std::size_t W, std::size_t Digits>
inline void unpack_base3_narrow(const std::uint8_t* packed, std::int8_t* t) noexcept {
  static_assert(W == 2 || W == 4 || W == 8);
  std::uint64_t d[W];
  for (std::size_t m = 0; m < W; ++m) d[m] = base3_digits.digits[packed[m]];
  for (std::size_t n = 0; n < Digits; ++n) {
    std::uint64_t plane = 0;
    for (std::size_t m = 0; m < W; ++m) plane |= ((d[m] >> (8U * n)) & 0xFFU) << (8U * m);
    std::memcpy(t + n * W, &plane, W);
  }
}
}  // namespace detail

/// One stage of the staged base-3 layout (TQ1_0, PTQ1_0): `5 W` codes into
/// `W` bytes, byte `m` holding elements `m, W + m, ..., 4W + m`, the first in
/// the most significant digit. With `Digits == 4` (the `qh` bytes) `4 W`
/// codes fill the four most significant digits and the fifth is 0.
template <std::size_t W, std::size_t Digits = 5>
inline void pack_base3_stage(const std::int8_t* t, std::uint8_t* out) noexcept {
  static_assert(Digits == 4 || Digits == 5);
  if constexpr (W >= detail::base3_vector_width) {
    std::uint8_t local[W];  // a local output cannot alias `t`: the unrolled loop vectorizes
    for (std::size_t m = 0; m < W; ++m) local[m] = base3_byte(detail::base3_number<W, Digits>(t, m));
    std::memcpy(out, local, W);
  } else if constexpr (std::endian::native == std::endian::little) {
    detail::pack_base3_narrow<W, Digits>(t, out);
  } else {
    for (std::size_t m = 0; m < W; ++m) out[m] = base3_byte(detail::base3_number<W, Digits>(t, m));
  }
}

/// Inverse of `pack_base3_stage`.
template <std::size_t W, std::size_t Digits = 5>
inline void unpack_base3_stage(const std::uint8_t* packed, std::int8_t* t) noexcept {
  static_assert(Digits == 4 || Digits == 5);
  if constexpr (W >= detail::base3_vector_width) {
    std::uint8_t in[W];  // a local input cannot alias `t`: the unrolled loop vectorizes
    std::memcpy(in, packed, W);
    for (std::size_t m = 0; m < W; ++m) {
      for (std::size_t n = 0; n < Digits; ++n) t[n * W + m] = value_of(base3_digit(in[m], n));
    }
  } else if constexpr (std::endian::native == std::endian::little) {
    detail::unpack_base3_narrow<W, Digits>(packed, t);
  } else {
    for (std::size_t m = 0; m < W; ++m) {
      const std::uint8_t b = packed[m];
      for (std::size_t n = 0; n < Digits; ++n) t[n * W + m] = value_of(base3_digit(b, n));
    }
  }
}

}  // namespace ternq::pack
