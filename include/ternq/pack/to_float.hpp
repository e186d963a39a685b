// SPDX-License-Identifier: MIT
// Dequantization of any tensor type ternq knows into floats, with ggml's own decoding rules (its to_float).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/float_types.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/pack.hpp"
#include "ternq/pack/q8_0.hpp"

namespace ternq::pack {

namespace detail {

template <class Codec>
void blocks_to_float(std::span<const std::uint8_t> data, std::span<float> out) noexcept {
  std::array<std::int8_t, Codec::elements> t{};
  const std::size_t blocks = out.size() / Codec::elements;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint8_t* src = data.data() + b * Codec::bytes;
    static_cast<void>(Codec::decode(src, t.data()));  // a code 3 decodes to +2 d, as in ggml
    const float d = fp16_bits_to_fp32(Codec::scale_bits(src));
    float* y = out.data() + b * Codec::elements;
    for (std::size_t j = 0; j < Codec::elements; ++j) y[j] = static_cast<float>(t[j]) * d;
  }
}

inline void i2_s_to_float(std::span<const std::uint8_t> data, std::span<float> out) noexcept {
  std::array<std::int8_t, i2_s::elements> t{};
  const std::size_t groups = out.size() / i2_s::elements;
  const float s = load_le<float>(data.data() + groups * i2_s::bytes);
  for (std::size_t g = 0; g < groups; ++g) {
    static_cast<void>(i2_s::decode(data.data() + g * i2_s::bytes, t.data()));
    float* y = out.data() + g * i2_s::elements;
    for (std::size_t j = 0; j < i2_s::elements; ++j) y[j] = static_cast<float>(t[j]) * s;
  }
}

}  // namespace detail

/// Decodes a tensor of `rows x cols` elements (`cols` = `ne[0]`; `rows` the
/// product of the other extents) of type `t` from `data` into `out`
/// (`rows * cols` floats), as ggml's `to_float` does: value `(c - 1) d`,
/// so a 2-bit code 3 gives `+2 d`. Throws `shape_mismatch` when `cols` is
/// not a multiple of the block or the sizes disagree.
inline void to_float_into(ggml_type t, std::span<const std::uint8_t> data, std::size_t rows, std::size_t cols,
                          std::span<float> out) {
  const ggml_type_traits& tr = traits_of(t);
  if (cols % tr.block_elements != 0) {
    fail(errc::shape_mismatch, "to_float ", tr.name, ": ne[0] = ", cols, " is not a multiple of the ",
         tr.block_elements, "-element block");
  }
  if (out.size() != rows * cols) {
    fail(errc::shape_mismatch, "to_float ", tr.name, ": output of ", out.size(), " floats for ", rows, "x", cols);
  }
  const std::size_t expected = rows * (cols / tr.block_elements) * tr.block_bytes + tr.tensor_trailer;
  if (data.size() != expected) {
    fail(errc::shape_mismatch, "to_float ", tr.name, ": ", data.size(), " bytes for ", rows, "x", cols, " (expected ",
         expected, ")");
  }
  if (is_float_type(t)) {
    decode_floats(t, data, out);
    return;
  }
  if (t == ggml_type::q8_0) {
    q8_0_to_float(data, out);
    return;
  }
  const format f = *format_of(t);
  if (f == format::i2_s) {
    detail::i2_s_to_float(data, out);
    return;
  }
  detail::with_block_codec(f, [&](auto codec) { detail::blocks_to_float<decltype(codec)>(data, out); });
}

/// `to_float_into` into a new row-major buffer.
inline std::vector<float> to_float(ggml_type t, std::span<const std::uint8_t> data, std::size_t rows,
                                   std::size_t cols) {
  std::vector<float> out(rows * cols);
  to_float_into(t, data, rows, cols, out);
  return out;
}

}  // namespace ternq::pack
