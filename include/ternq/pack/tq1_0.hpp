// SPDX-License-Identifier: MIT
// TQ1_0 (ggml type 34): 256 ternary codes as base-3 digits in stages of 32, 16 and 4 bytes, fp16 scale last.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ternq/pack/base3.hpp"
#include "ternq/pack/blocks.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/format.hpp"

namespace ternq::pack {

/// The TQ1_0 block codec. Element mapping (FORMATS.md): elements 0..159 go
/// to `qs[m]`, digit `n`, for element `32 n + m`; elements 160..239 to
/// `qs[32 + m]` for `160 + 16 n + m`; elements 240..255 to `qh[j]` for
/// `240 + 4 n + j` (four digits, the fifth is 0).
struct tq1_0 {
  using block = block_tq1_0;
  static constexpr format id = format::tq1_0;
  static constexpr std::size_t elements = block::elements;
  static constexpr std::size_t bytes = sizeof(block);

  /// Writes one block from `elements` codes in {-1, 0, +1} and fp16 scale bits `d`.
  static void encode(const std::int8_t* t, std::uint16_t d, std::uint8_t* dst) noexcept {
    pack_base3_stage<32>(t, dst);
    pack_base3_stage<16>(t + 160, dst + 32);
    pack_base3_stage<4, 4>(t + 240, dst + offsetof(block, qh));
    store_le(dst + offsetof(block, d), d);
  }
  /// Reads the codes of one block. Every byte decodes to ternary codes: always true.
  static bool decode(const std::uint8_t* src, std::int8_t* t) noexcept {
    unpack_base3_stage<32, 5>(src, t);
    unpack_base3_stage<16, 5>(src + 32, t + 160);
    unpack_base3_stage<4, 4>(src + offsetof(block, qh), t + 240);
    return true;
  }
  /// The block's fp16 scale bits.
  static std::uint16_t scale_bits(const std::uint8_t* src) noexcept {
    return load_le<std::uint16_t>(src + offsetof(block, d));
  }
};

}  // namespace ternq::pack
