// SPDX-License-Identifier: MIT
// Mainline Q2_0 (ggml type 42): 64 ternary codes, fp16 scale first, then 2-bit codes in element order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/pack/blocks.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/codes.hpp"
#include "ternq/pack/format.hpp"

namespace ternq::pack {

namespace detail {
/// The sequential 2-bit codec shared by Q2_0 (64 elements) and PQ2_0 (128).
template <class Block, format Id>
struct sequential_2bit {
  using block = Block;
  static constexpr format id = Id;
  static constexpr std::size_t elements = Block::elements;
  static constexpr std::size_t bytes = sizeof(Block);

  /// Writes one block from `elements` codes in {-1, 0, +1} and fp16 scale bits `d`.
  static void encode(const std::int8_t* t, std::uint16_t d, std::uint8_t* dst) noexcept {
    store_le(dst + offsetof(Block, d), d);
    pack_2bit_block<elements / 4>(t, dst + offsetof(Block, qs));
  }
  /// Reads the codes of one block; false when a code 3 (+2, not ternary) was read.
  static bool decode(const std::uint8_t* src, std::int8_t* t) noexcept {
    return unpack_2bit(std::span<const std::uint8_t>(src + offsetof(Block, qs), elements / 4),
                       std::span<std::int8_t>(t, elements));
  }
  /// The block's fp16 scale bits.
  static std::uint16_t scale_bits(const std::uint8_t* src) noexcept {
    return load_le<std::uint16_t>(src + offsetof(Block, d));
  }
};
}  // namespace detail

/// The mainline Q2_0 block codec: 64 elements, element `j` in byte `j / 4`,
/// bits `2 (j % 4)`. A group-128 matrix is stored by repeating each group's
/// scale in both of its 64-element blocks (lossless).
struct q2_0 : detail::sequential_2bit<block_q2_0, format::q2_0> {};

}  // namespace ternq::pack
