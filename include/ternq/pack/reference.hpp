// SPDX-License-Identifier: MIT
// ggml's own reference quantizers for the ternary types (absmax, round to nearest), reproduced bit for bit.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/pack/blocks.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/pack.hpp"

namespace ternq::pack {

// These are the rules ggml (and its forks) use to make a file from floats,
// kept as the reference FORMATS.md's golden vectors test: per block
// `d = max|x|`, code `lroundf(x * (1 / d)) + 1` (the product with the float
// reciprocal, as ggml computes it, not a division). They are not ternq's
// quantizers: a calibrated ternary matrix is packed with `pack`, which
// stores its own codes and scales.

namespace detail {

template <class Codec>
void absmax_blocks(std::span<const float> x, std::span<std::uint8_t> out) {
  std::array<std::int8_t, Codec::elements> t{};
  const std::size_t blocks = x.size() / Codec::elements;
  for (std::size_t b = 0; b < blocks; ++b) {
    const float* v = x.data() + b * Codec::elements;
    float amax = 0.0F;
    for (std::size_t j = 0; j < Codec::elements; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax;
    const float id = d != 0.0F ? 1.0F / d : 0.0F;
    for (std::size_t j = 0; j < Codec::elements; ++j) {
      // |x id| <= 1 for absmax scales; the clamp only keeps NaN-free input ternary.
      t[j] = static_cast<std::int8_t>(std::clamp(std::lround(v[j] * id), -1L, 1L));
    }
    Codec::encode(t.data(), fp32_to_fp16_bits(d), out.data() + b * Codec::bytes);
  }
}

/// bitnet.cpp's `quantize_i2_s`: the scale is `max|x|` over the whole
/// tensor (in double, stored as f32); a weight is 0 when `|x| < 1e-6`, else
/// its sign. (BitNet weights are already ternary: `{-s, 0, +s}`.)
inline void i2_s_reference(std::span<const float> x, std::span<std::uint8_t> out) {
  double max = 0.0;
  for (const float v : x) max = std::fmax(max, std::fabs(static_cast<double>(v)));
  std::array<std::int8_t, i2_s::elements> t{};
  const std::size_t groups = x.size() / i2_s::elements;
  for (std::size_t g = 0; g < groups; ++g) {
    for (std::size_t j = 0; j < i2_s::elements; ++j) {
      const double v = x[g * i2_s::elements + j];
      t[j] = std::fabs(v) < 1e-6 ? std::int8_t{0} : (v * max > 0 ? std::int8_t{1} : std::int8_t{-1});
    }
    i2_s::encode(t.data(), out.data() + g * i2_s::bytes);
  }
  std::uint8_t* trailer = out.data() + groups * i2_s::bytes;
  std::fill(trailer, trailer + i2_s_trailer_bytes, std::uint8_t{0});
  store_le(trailer, static_cast<float>(max));
}

}  // namespace detail

/// Quantizes a row-major `rows x cols` float tensor into format `f` with
/// ggml's reference rule (bitnet.cpp's for I2_S), into `out` (exactly
/// `packed_size(f, rows, cols)` bytes). `cols` must be a multiple of the block.
inline void quantize_reference_into(format f, std::span<const float> x, std::size_t rows, std::size_t cols,
                                    std::span<std::uint8_t> out) {
  const std::size_t block = traits_of(f).block_elements;
  if (cols % block != 0) {
    fail(errc::shape_mismatch, "quantize_reference ", name_of(f), ": in_features ", cols, " is not a multiple of the ",
         block, "-element block");
  }
  if (x.size() != rows * cols) {
    fail(errc::shape_mismatch, "quantize_reference ", name_of(f), ": ", x.size(), " floats for ", rows, "x", cols);
  }
  detail::require_size(f, out.size(), rows, cols, "quantize_reference");
  if (f == format::i2_s) {
    detail::i2_s_reference(x, out);
    return;
  }
  detail::with_block_codec(f, [&](auto codec) { detail::absmax_blocks<decltype(codec)>(x, out); });
}

/// `quantize_reference_into` into a new buffer.
inline std::vector<std::uint8_t> quantize_reference(format f, std::span<const float> x, std::size_t rows,
                                                    std::size_t cols) {
  const std::size_t block = traits_of(f).block_elements;
  std::vector<std::uint8_t> out(cols % block == 0 ? packed_size(f, rows, cols) : 0);
  quantize_reference_into(f, x, rows, cols, out);
  return out;
}

/// ggml's Q1_0 reference (binary, 128-element blocks): `d` = mean |x| of the
/// block (summed in order in float), bit 1 for `x >= 0`. Only for
/// FORMATS.md's golden vector; ternq does not otherwise write Q1_0.
inline std::vector<std::uint8_t> quantize_q1_0_reference(std::span<const float> x) {
  constexpr std::size_t qk = block_q1_0::elements;
  if (x.size() % qk != 0) {
    fail(errc::shape_mismatch, "quantize_q1_0_reference: ", x.size(), " elements is not a multiple of ", qk);
  }
  std::vector<std::uint8_t> out(x.size() / qk * sizeof(block_q1_0), 0);
  for (std::size_t b = 0; b < x.size() / qk; ++b) {
    const float* v = x.data() + b * qk;
    float sum = 0.0F;
    for (std::size_t j = 0; j < qk; ++j) sum += std::fabs(v[j]);
    std::uint8_t* dst = out.data() + b * sizeof(block_q1_0);
    store_le(dst + offsetof(block_q1_0, d), fp32_to_fp16_bits(sum / static_cast<float>(qk)));
    for (std::size_t j = 0; j < qk; ++j) {
      if (v[j] >= 0.0F) dst[offsetof(block_q1_0, qs) + j / 8] |= static_cast<std::uint8_t>(1U << (j % 8));
    }
  }
  return out;
}

}  // namespace ternq::pack
