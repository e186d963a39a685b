// SPDX-License-Identifier: MIT
// PTQ1_0 (PrismML, ggml type 143): TQ1_0's base-3 codec at 128 elements (stages of 16, 8 and 2 bytes), fp16 scale last.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ternq/pack/base3.hpp"
#include "ternq/pack/blocks.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/format.hpp"

namespace ternq::pack {

/// The PTQ1_0 block codec. Element mapping (FORMATS.md): elements 0..79 go
/// to `qs[m]`, digit `n`, for element `16 n + m`; elements 80..119 to
/// `qs[16 + m]` for `80 + 8 n + m`; elements 120..127 to `qh[h]` for
/// `120 + 2 n + h` (four digits, the fifth is 0).
struct ptq1_0 {
  using block = block_ptq1_0;
  static constexpr format id = format::ptq1_0;
  static constexpr std::size_t elements = block::elements;
  static constexpr std::size_t bytes = sizeof(block);

  /// Writes one block from `elements` codes in {-1, 0, +1} and fp16 scale bits `d`.
  static void encode(const std::int8_t* t, std::uint16_t d, std::uint8_t* dst) noexcept {
    pack_base3_stage<16>(t, dst);
    pack_base3_stage<8>(t + 80, dst + 16);
    pack_base3_stage<2, 4>(t + 120, dst + offsetof(block, qh));
    store_le(dst + offsetof(block, d), d);
  }
  /// Reads the codes of one block. Every byte decodes to ternary codes: always true.
  static bool decode(const std::uint8_t* src, std::int8_t* t) noexcept {
    unpack_base3_stage<16, 5>(src, t);
    unpack_base3_stage<8, 5>(src + 16, t + 80);
    unpack_base3_stage<2, 4>(src + offsetof(block, qh), t + 120);
    return true;
  }
  /// The block's fp16 scale bits.
  static std::uint16_t scale_bits(const std::uint8_t* src) noexcept {
    return load_le<std::uint16_t>(src + offsetof(block, d));
  }
};

}  // namespace ternq::pack
