// SPDX-License-Identifier: MIT
// Activations quantized to int8 per block for the integer path of the packed-matrix kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/finite.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/core/view.hpp"
#include "ternq/kernels/cpu/detail/quantize_x86.hpp"

namespace ternq::kernels {

/// `n` activation vectors of `cols` elements quantized to int8 in blocks of `block` elements (the weight format's
/// block, so that one weight block meets one activation scale). Block `b` of vector `t` holds
/// `q[t cols + b block + j] = round(x_j 127 / amax)` (round half to even, `amax = max |x_j|` over the block) with
/// the scale `scale[t blocks + b] = amax / 127` (0 and all-zero codes for an all-zero block), and
/// `sum[t blocks + b] = sum_j q_j`, which the kernels use to turn the stored codes `c = t + 1` into `t`.
struct int8_activations {
  std::size_t n = 0;
  std::size_t cols = 0;
  std::size_t block = 0;
  std::vector<std::int8_t> q;
  std::vector<float> scale;
  std::vector<std::int32_t> sum;

  [[nodiscard]] std::size_t blocks() const noexcept { return block == 0 ? 0 : cols / block; }
  [[nodiscard]] const std::int8_t* codes(std::size_t t) const noexcept { return q.data() + t * cols; }
  [[nodiscard]] const float* scales(std::size_t t) const noexcept { return scale.data() + t * blocks(); }
  [[nodiscard]] const std::int32_t* sums(std::size_t t) const noexcept { return sum.data() + t * blocks(); }
};

namespace detail {

/// Quantizes one block of `x` (the normative rule of `int8_activations`). Returns the block's scale.
inline float quantize_block_int8(const float* x, std::size_t n, std::int8_t* q, std::int32_t& sum) noexcept {
  float amax = 0.0F;
  for (std::size_t j = 0; j < n; ++j) amax = std::max(amax, std::abs(x[j]));
  sum = 0;
  if (amax == 0.0F) {
    std::fill(q, q + n, std::int8_t{0});
    return 0.0F;
  }
  const float inverse = 127.0F / amax;
  // Below amax ~ 3.7e-37, 127 / amax overflows to Inf (and 0 * Inf is NaN): such blocks divide by amax first,
  // which is exact enough and finite. The vectorized quantizers hand these blocks to this function.
  const bool tiny = !std::isfinite(inverse);
  for (std::size_t j = 0; j < n; ++j) {
    // |x_j| <= amax, so the product is at most 127 up to one rounding: the clamp only guards that rounding.
    const float scaled = tiny ? (x[j] / amax) * 127.0F : x[j] * inverse;
    const float v = std::clamp(std::nearbyint(scaled), -127.0F, 127.0F);
    q[j] = static_cast<std::int8_t>(v);
    sum += q[j];
  }
  return amax / 127.0F;
}

}  // namespace detail

/// Quantizes the rows of `x` (`n x cols`, rows contiguous) into `out` in blocks of `block`, reusing its storage,
/// with the instruction-set variant `level` (every variant gives the same bytes). Throws `shape_mismatch` when
/// `cols` is not a multiple of `block` and `non_finite` for an Inf/NaN activation.
inline void quantize_activations(matrix_view<const float> x, std::size_t block, int8_activations& out,
                                 simd_level level) {
  if (block == 0 || x.cols() % block != 0) {
    fail(errc::shape_mismatch, "quantize_activations: ", x.cols(), " columns are not a multiple of the ", block,
         "-element block");
  }
  out.n = x.rows();
  out.cols = x.cols();
  out.block = block;
  out.q.resize(out.n * out.cols);
  out.scale.resize(out.n * out.blocks());
  out.sum.resize(out.n * out.blocks());
  for (std::size_t t = 0; t < out.n; ++t) {
    const std::span<const float> row = x.row_span(t);
    // Checked before rounding: a NaN would pass the amax comparison unseen and has no int8 value.
    if (const std::size_t j = ternq::detail::first_non_finite(row); j < row.size()) {
      fail(errc::non_finite, "packed product: activation ", row[j], " at (", t, ", ", j, ") is not finite");
    }
    const std::size_t k = t * out.blocks();
    std::int8_t* q = out.q.data() + t * out.cols;
#if TERNQ_HAS_AVX512_VARIANT
    if (level == simd_level::avx512 && block % 16 == 0) {
      detail::quantize_blocks_avx512(row.data(), out.blocks(), block, q, out.scale.data() + k, out.sum.data() + k,
                                     detail::quantize_block_int8);
      continue;
    }
#endif
#if TERNQ_HAS_AVX2_VARIANT
    if (level == simd_level::avx2 && block % 32 == 0) {
      detail::quantize_blocks_avx2(row.data(), out.blocks(), block, q, out.scale.data() + k, out.sum.data() + k,
                                   detail::quantize_block_int8);
      continue;
    }
#endif
    (void)level;
    for (std::size_t b = 0; b < out.blocks(); ++b) {
      out.scale[k + b] = detail::quantize_block_int8(row.data() + b * block, block, q + b * block, out.sum[k + b]);
    }
  }
}

/// `quantize_activations` with the fastest variant this processor runs.
inline void quantize_activations(matrix_view<const float> x, std::size_t block, int8_activations& out) {
  quantize_activations(x, block, out, best_simd_level());
}

}  // namespace ternq::kernels
