// SPDX-License-Identifier: MIT
// Q8_0 (ggml type 8): 32 signed 8-bit values under an fp16 scale, quantized with ggml's reference rule.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/pack/blocks.hpp"
#include "ternq/pack/bytes.hpp"

namespace ternq::pack {

// Q8_0 is not a ternary format: it stores the tensors a user keeps at a
// higher precision than the ternary layers (the embedding, a sensitive
// layer), as llama-quantize does. The rule is ggml's reference quantizer,
// so a file is byte for byte what llama.cpp writes for the same floats: per
// 32-element block `d = max|x| / 127` (in float), stored as fp16; codes
// `roundf(x * (1 / d))` (half away from zero, with the float reciprocal as
// ggml computes it; 0 when d is 0). A value decodes to `qs[j] * fp16(d)`.

/// Bytes of a `rows x cols` Q8_0 tensor; `cols` must be a multiple of 32.
inline std::size_t q8_0_size(std::size_t rows, std::size_t cols) {
  if (cols % block_q8_0::elements != 0) {
    fail(errc::shape_mismatch, "Q8_0: in_features ", cols, " is not a multiple of the ", block_q8_0::elements,
         "-element block");
  }
  return rows * (cols / block_q8_0::elements) * sizeof(block_q8_0);
}

/// Quantizes a row-major `rows x cols` float tensor into Q8_0 blocks in
/// `out` (exactly `q8_0_size(rows, cols)` bytes). Throws `shape_mismatch`
/// for a width that is not a multiple of 32 or sizes that disagree, and
/// `invalid_argument` for a non-finite value.
inline void quantize_q8_0_into(std::span<const float> x, std::size_t rows, std::size_t cols,
                               std::span<std::uint8_t> out) {
  const std::size_t bytes = q8_0_size(rows, cols);
  if (x.size() != rows * cols) fail(errc::shape_mismatch, "Q8_0: ", x.size(), " floats for ", rows, "x", cols);
  if (out.size() != bytes) {
    fail(errc::shape_mismatch, "Q8_0: ", out.size(), " bytes for a ", rows, "x", cols, " tensor (expected ", bytes,
         ")");
  }
  constexpr std::size_t qk = block_q8_0::elements;
  for (std::size_t b = 0; b < x.size() / qk; ++b) {
    const float* v = x.data() + b * qk;
    float amax = 0.0F;
    for (std::size_t j = 0; j < qk; ++j) {
      if (!std::isfinite(v[j])) fail(errc::invalid_argument, "Q8_0: element ", b * qk + j, " is not finite");
      amax = std::max(amax, std::fabs(v[j]));
    }
    const float d = amax / 127.0F;
    const float id = d != 0.0F ? 1.0F / d : 0.0F;
    std::uint8_t* dst = out.data() + b * sizeof(block_q8_0);
    store_le(dst + offsetof(block_q8_0, d), fp32_to_fp16_bits(d));
    for (std::size_t j = 0; j < qk; ++j) {
      // |x id| <= 127 up to rounding of the reciprocal; roundf is half away from zero.
      const float q = std::round(v[j] * id);
      dst[offsetof(block_q8_0, qs) + j] =
          static_cast<std::uint8_t>(static_cast<std::int8_t>(std::clamp(q, -128.0F, 127.0F)));
    }
  }
}

/// `quantize_q8_0_into` into a new buffer.
inline std::vector<std::uint8_t> quantize_q8_0(std::span<const float> x, std::size_t rows, std::size_t cols) {
  std::vector<std::uint8_t> out(q8_0_size(rows, cols));
  quantize_q8_0_into(x, rows, cols, out);
  return out;
}

/// Decodes Q8_0 blocks into `out` (32 values a block): `qs[j] * d`.
inline void q8_0_to_float(std::span<const std::uint8_t> data, std::span<float> out) noexcept {
  constexpr std::size_t qk = block_q8_0::elements;
  for (std::size_t b = 0; b < out.size() / qk; ++b) {
    const std::uint8_t* src = data.data() + b * sizeof(block_q8_0);
    const float d = fp16_bits_to_fp32(load_le<std::uint16_t>(src + offsetof(block_q8_0, d)));
    for (std::size_t j = 0; j < qk; ++j) {
      out[b * qk + j] = static_cast<float>(static_cast<std::int8_t>(src[offsetof(block_q8_0, qs) + j])) * d;
    }
  }
}

}  // namespace ternq::pack
