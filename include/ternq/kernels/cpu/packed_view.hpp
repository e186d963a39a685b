// SPDX-License-Identifier: MIT
// A checked, non-owning view of a packed ternary tensor: the operand of the packed-matrix kernels.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/pack.hpp"

namespace ternq::kernels {

/// The bytes of one packed `rows x cols` tensor of `format` (ggml extents `[cols, rows]`), as a GGUF stores them
/// or `pack::pack` writes them. Row `r`'s blocks are the `blocks_per_row()` blocks from `row_bytes() * r`; I2_S's
/// one f32 scale follows the last group. Build it with `make_packed_view`, which checks the extents and the
/// scales once so that the kernels need not.
struct packed_view {
  pack::format format = pack::format::tq2_0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::span<const std::uint8_t> bytes;

  /// Elements of one block (for I2_S: one 128-element group).
  [[nodiscard]] std::size_t block_elements() const { return pack::traits_of(format).block_elements; }
  [[nodiscard]] std::size_t block_bytes() const { return pack::traits_of(format).block_bytes; }
  [[nodiscard]] std::size_t blocks_per_row() const { return cols / block_elements(); }
  [[nodiscard]] std::size_t row_bytes() const { return blocks_per_row() * block_bytes(); }
  /// The first byte of row `r`.
  [[nodiscard]] const std::uint8_t* row(std::size_t r) const { return bytes.data() + r * row_bytes(); }
  /// I2_S's tensor scale (the f32 after the last group); 0 for the other formats.
  [[nodiscard]] float tensor_scale() const {
    return pack::per_tensor_scale(format) ? pack::load_le<float>(bytes.data() + rows * row_bytes()) : 0.0F;
  }
};

/// The scale of the block at `block` (its first byte) of a per-block format, as a float.
inline float block_scale(pack::format f, const std::uint8_t* block) noexcept {
  switch (f) {
    case pack::format::tq1_0:
      return fp16_bits_to_fp32(pack::load_le<std::uint16_t>(block + offsetof(pack::block_tq1_0, d)));
    case pack::format::tq2_0:
      return fp16_bits_to_fp32(pack::load_le<std::uint16_t>(block + offsetof(pack::block_tq2_0, d)));
    case pack::format::q2_0:
      return fp16_bits_to_fp32(pack::load_le<std::uint16_t>(block + offsetof(pack::block_q2_0, d)));
    case pack::format::pq2_0:
      return fp16_bits_to_fp32(pack::load_le<std::uint16_t>(block + offsetof(pack::block_pq2_0, d)));
    case pack::format::ptq1_0:
      return fp16_bits_to_fp32(pack::load_le<std::uint16_t>(block + offsetof(pack::block_ptq1_0, d)));
    case pack::format::i2_s:
      return 0.0F;
  }
  return 0.0F;
}

/// A view of `bytes` as a packed `rows x cols` tensor of `f`. Throws `empty_matrix` for no rows or columns,
/// `shape_mismatch` when `cols` is not a multiple of the block or the byte count is not the tensor's, and
/// `non_finite` for an Inf/NaN scale (naming the row and block): the kernels then read only inside `bytes` and
/// never meet a scale that is not a number.
inline packed_view make_packed_view(pack::format f, std::size_t rows, std::size_t cols,
                                    std::span<const std::uint8_t> bytes) {
  const std::size_t block = pack::traits_of(f).block_elements;
  if (rows == 0 || cols == 0) {
    fail(errc::empty_matrix, "packed ", pack::name_of(f), " matrix: it is empty (", rows, "x", cols, ")");
  }
  if (cols % block != 0) {
    fail(errc::shape_mismatch, "packed ", pack::name_of(f), " matrix: in_features ", cols,
         " is not a multiple of the ", block, "-element block");
  }
  pack::detail::require_size(f, bytes.size(), rows, cols, "packed");
  const packed_view v{f, rows, cols, bytes};
  if (pack::per_tensor_scale(f)) {
    if (!std::isfinite(v.tensor_scale())) {
      fail(errc::non_finite, "packed I2_S matrix: the tensor scale is not finite (", v.tensor_scale(), ")");
    }
    return v;
  }
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t b = 0; b < v.blocks_per_row(); ++b) {
      const std::uint8_t* src = v.row(r) + b * v.block_bytes();
      if (const float d = block_scale(f, src); !std::isfinite(d)) {
        fail(errc::non_finite, "packed ", pack::name_of(f), " matrix: the scale of row ", r, ", block ", b,
             " is not finite (", d, ")");
      }
    }
  }
  return v;
}

/// A view of a `pack::packed_tensor` (which must outlive it).
inline packed_view make_packed_view(const pack::packed_tensor& p) {
  return make_packed_view(p.fmt, p.rows, p.cols, std::span<const std::uint8_t>(p.data));
}

}  // namespace ternq::kernels
