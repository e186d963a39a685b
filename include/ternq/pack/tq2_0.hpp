// SPDX-License-Identifier: MIT
// TQ2_0 (ggml type 35): 256 ternary codes as 2-bit fields, each byte holding four elements 32 apart, fp16 scale last.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ternq/pack/blocks.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/codes.hpp"
#include "ternq/pack/format.hpp"

namespace ternq::pack {

/// The TQ2_0 block codec. Element `e = 128 h + 32 l + m` is in byte
/// `32 h + m`, bits `2 l` (FORMATS.md): a byte holds four elements 32
/// apart, not four neighbours, so that one shift and mask yields 32
/// consecutive elements.
struct tq2_0 {
  using block = block_tq2_0;
  static constexpr format id = format::tq2_0;
  static constexpr std::size_t elements = block::elements;
  static constexpr std::size_t bytes = sizeof(block);

  /// Writes one block from `elements` codes in {-1, 0, +1} and fp16 scale bits `d`.
  static void encode(const std::int8_t* t, std::uint16_t d, std::uint8_t* dst) noexcept {
    pack_2bit_interleaved<32>(t, dst);
    pack_2bit_interleaved<32>(t + 128, dst + 32);
    store_le(dst + offsetof(block, d), d);
  }
  /// Reads the codes of one block; false when a code 3 (+2, not ternary) was read.
  static bool decode(const std::uint8_t* src, std::int8_t* t) noexcept {
    const bool low = unpack_2bit_interleaved<32>(src, t);
    const bool high = unpack_2bit_interleaved<32>(src + 32, t + 128);
    return low && high;
  }
  /// The block's fp16 scale bits.
  static std::uint16_t scale_bits(const std::uint8_t* src) noexcept {
    return load_le<std::uint16_t>(src + offsetof(block, d));
  }
};

}  // namespace ternq::pack
