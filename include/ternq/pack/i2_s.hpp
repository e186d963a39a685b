// SPDX-License-Identifier: MIT
// I2_S (bitnet.cpp, ggml type 36, x86 layout): 2-bit codes in 128-element groups, one f32 scale for the whole tensor.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ternq/pack/blocks.hpp"
#include "ternq/pack/codes.hpp"
#include "ternq/pack/format.hpp"

namespace ternq::pack {

/// The I2_S group codec. The tensor's elements, flattened row-major, form
/// 128-element groups of 32 bytes: element `j` of a group goes to byte
/// `j % 32`, bits `6 - 2 (j / 32)` (the first 32 elements in the top bits).
/// After the last group: the tensor's f32 scale (little-endian) at byte
/// `n / 4`, then zeros to 32 bytes. Tensor size: `n / 4 + 32` bytes.
struct i2_s {
  using block = block_i2_s;
  static constexpr format id = format::i2_s;
  static constexpr std::size_t elements = block::elements;
  static constexpr std::size_t bytes = sizeof(block);

  /// Writes one group from `elements` codes in {-1, 0, +1}.
  static void encode(const std::int8_t* t, std::uint8_t* dst) noexcept { pack_2bit_interleaved<32, true>(t, dst); }
  /// Reads the codes of one group; false when a code 3 (not ternary) was read.
  static bool decode(const std::uint8_t* src, std::int8_t* t) noexcept {
    return unpack_2bit_interleaved<32, true>(src, t);
  }
};

}  // namespace ternq::pack
