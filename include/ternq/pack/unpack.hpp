// SPDX-License-Identifier: MIT
// Unpacking a packed tensor back into a ternary_matrix: exact codes, and the stored scales as groups of one block.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/pack.hpp"

namespace ternq::pack {

namespace detail {

inline void require_unpack_shape(format f, std::size_t rows, std::size_t cols) {
  const std::size_t block = traits_of(f).block_elements;
  if (rows == 0 || cols == 0)
    fail(errc::empty_matrix, "unpack ", name_of(f), ": the matrix is empty (", rows, "x", cols, ")");
  if (cols % block != 0) {
    fail(errc::shape_mismatch, "unpack ", name_of(f), ": in_features ", cols, " is not a multiple of the ", block,
         "-element block");
  }
}

[[noreturn]] inline void fail_code_three(format f, std::span<const std::int8_t> codes, std::size_t row,
                                         std::size_t first_col) {
  std::size_t j = 0;
  while (j + 1 < codes.size() && codes[j] != 2) ++j;
  fail(errc::unsupported, "unpack ", name_of(f), ": code 3 (+2 d) at (", row, ", ", first_col + j, ") is not ternary");
}

template <class Codec>
void decode_blocks(std::span<const std::uint8_t> data, ternary_matrix& out) {
  const std::size_t blocks = out.cols() / Codec::elements;
  const std::uint8_t* src = data.data();
  for (std::size_t i = 0; i < out.rows(); ++i) {
    std::int8_t* codes = out.row_codes(i).data();
    for (std::size_t b = 0; b < blocks; ++b) {
      std::int8_t* t = codes + b * Codec::elements;
      if (!Codec::decode(src, t)) fail_code_three(Codec::id, {t, Codec::elements}, i, b * Codec::elements);
      const std::uint16_t d = Codec::scale_bits(src);
      if ((d & 0x7C00U) == 0x7C00U) {
        fail(errc::non_finite, "unpack ", name_of(Codec::id), ": the scale of row ", i, ", block ", b,
             " is not finite (", fp16_bits_to_fp32(d), ")");
      }
      out.scale(i, b) = fp16_bits_to_fp32(d);
      src += Codec::bytes;
    }
  }
}

inline void decode_i2_s(std::span<const std::uint8_t> data, ternary_matrix& out) {
  const std::span<std::int8_t> codes = out.codes();
  const std::size_t groups = codes.size() / i2_s::elements;
  for (std::size_t g = 0; g < groups; ++g) {
    std::int8_t* t = codes.data() + g * i2_s::elements;
    if (!i2_s::decode(data.data() + g * i2_s::bytes, t)) {
      const std::size_t first = g * i2_s::elements;
      fail_code_three(format::i2_s, {t, i2_s::elements}, first / out.cols(), first % out.cols());
    }
  }
  const float s = load_le<float>(data.data() + groups * i2_s::bytes);
  if (!std::isfinite(s)) fail(errc::non_finite, "unpack I2_S: the tensor scale is not finite (", s, ")");
  for (std::size_t i = 0; i < out.rows(); ++i) out.scale(i, 0) = s;
}

}  // namespace detail

/// Unpacks `data` (a `rows x cols` tensor of format `f`) into `out`, which
/// must be `rows x cols`, symmetric, with one group per block (group size =
/// the block, or per row for I2_S); its permutation is cleared. Codes come
/// back exactly; scales are the stored fp16 (f32 for I2_S) values. Throws
/// `unsupported` on a 2-bit code 3 (+2, valid for ggml, not ternary) and
/// `non_finite` on an Inf/NaN scale, naming where.
inline void unpack_into(format f, std::span<const std::uint8_t> data, ternary_matrix& out) {
  const std::size_t rows = out.rows();
  const std::size_t cols = out.cols();
  detail::require_unpack_shape(f, rows, cols);
  detail::require_size(f, data.size(), rows, cols, "unpack");
  const std::size_t group = per_tensor_scale(f) ? cols : traits_of(f).block_elements;
  if (out.group_size() != group || out.has_offsets()) {
    fail(errc::invalid_argument, "unpack ", name_of(f), ": the output matrix must be symmetric with group size ", group,
         " (it has group size ", out.group_size(), out.has_offsets() ? " and offsets)" : ")");
  }
  out.clear_permutation();
  if (f == format::i2_s) {
    detail::decode_i2_s(data, out);
    return;
  }
  detail::with_block_codec(f, [&](auto codec) { detail::decode_blocks<decltype(codec)>(data, out); });
}

/// Unpacks `data` (a `rows x cols` tensor of format `f`) into a new
/// `ternary_matrix` with one group per block (per-row groups sharing the
/// tensor's scale for I2_S).
inline ternary_matrix unpack(format f, std::span<const std::uint8_t> data, std::size_t rows, std::size_t cols) {
  detail::require_unpack_shape(f, rows, cols);
  ternary_matrix out(rows, cols, per_tensor_scale(f) ? per_row : group_size_option(traits_of(f).block_elements));
  unpack_into(f, data, out);
  return out;
}

/// Unpacks a packed tensor.
inline ternary_matrix unpack(const packed_tensor& p) { return unpack(p.fmt, p.data, p.rows, p.cols); }

}  // namespace ternq::pack
