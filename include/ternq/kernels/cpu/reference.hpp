// SPDX-License-Identifier: MIT
// The portable packed-matrix products: the normative definition every instruction-set variant reproduces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ternq/core/view.hpp"
#include "ternq/kernels/cpu/activations.hpp"
#include "ternq/kernels/cpu/packed_view.hpp"
#include "ternq/pack/i2_s.hpp"
#include "ternq/pack/pack.hpp"

namespace ternq::kernels {

/// What the products compute, for `y(t, r)` = row `r` of `W` times activation vector `t`, with `v_j` the stored
/// values (code `c` read as `c - 1`: -1, 0, +1, and +2 for the non-ternary 2-bit code 3, as ggml dequantizes it)
/// and `d_b` the scale of weight block `b` (I2_S: the tensor's scale for every 128-element group):
///
/// - **int8 path** (`int8_activations`, block `b` quantized to `q` with scale `s_b`):
///   `i_b = sum_j v_j q_j` exactly in int32, then `y = float(sum_b double(i_b) * double(d_b * s_b))`, summed in
///   double in block order, with `d_b * s_b` one float product. The double product of an int32 below 2^16 and a
///   float is exact, so a fused multiply-add gives the same bits as a multiply and an add: every variant, thread
///   count and compiler contraction setting gives this result bit for bit.
/// - **f32 path**: `y = float(sum_b double(d_b) * sum_j v_j double(x_j))` in the reference; the vectorized
///   variants sum in float lanes and are within `f32_path_bound` of it.
///
/// The reference decodes each block with the format's codec, so it shares no code with the variants' decoders.
namespace detail {

/// Values `v_j` of the block at `src` of a per-block format, or of an I2_S group.
inline void decode_values(pack::format f, const std::uint8_t* src, std::int8_t* v) noexcept {
  if (f == pack::format::i2_s) {
    (void)pack::i2_s::decode(src, v);  // code 3 decodes as +2; false only reports it
    return;
  }
  pack::detail::with_block_codec(f, [&](auto codec) { (void)decltype(codec)::decode(src, v); });
}

/// The weight scale of block `b` of row `r`.
inline float weight_scale(const packed_view& w, std::size_t r, std::size_t b) noexcept {
  return pack::per_tensor_scale(w.format) ? w.tensor_scale() : block_scale(w.format, w.row(r) + b * w.block_bytes());
}

/// Rows `[r0, r1)` of `y` for every activation vector, integer path, portable.
inline void rows_int8_portable(const packed_view& w, const int8_activations& x, std::size_t r0, std::size_t r1,
                               matrix_view<float> y) {
  const std::size_t n = w.block_elements();
  std::vector<std::int8_t> v(n);
  std::vector<double> acc(x.n);
  for (std::size_t r = r0; r < r1; ++r) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (std::size_t b = 0; b < w.blocks_per_row(); ++b) {
      decode_values(w.format, w.row(r) + b * w.block_bytes(), v.data());
      const float d = weight_scale(w, r, b);
      for (std::size_t t = 0; t < x.n; ++t) {
        const std::int8_t* q = x.codes(t) + b * n;
        std::int32_t i = 0;
        for (std::size_t j = 0; j < n; ++j) i += std::int32_t{v[j]} * std::int32_t{q[j]};
        const float scale = d * x.scales(t)[b];
        acc[t] += static_cast<double>(i) * static_cast<double>(scale);
      }
    }
    for (std::size_t t = 0; t < x.n; ++t) y(t, r) = static_cast<float>(acc[t]);
  }
}

/// Rows `[r0, r1)` of `y` for every activation vector (`x` is `n x cols`), f32 path, portable.
inline void rows_f32_portable(const packed_view& w, matrix_view<const float> x, std::size_t r0, std::size_t r1,
                              matrix_view<float> y) {
  const std::size_t n = w.block_elements();
  std::vector<std::int8_t> v(n);
  std::vector<double> acc(x.rows());
  for (std::size_t r = r0; r < r1; ++r) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (std::size_t b = 0; b < w.blocks_per_row(); ++b) {
      decode_values(w.format, w.row(r) + b * w.block_bytes(), v.data());
      const auto d = static_cast<double>(weight_scale(w, r, b));
      for (std::size_t t = 0; t < x.rows(); ++t) {
        double s = 0.0;
        for (std::size_t j = 0; j < n; ++j) s += static_cast<double>(v[j]) * static_cast<double>(x(t, b * n + j));
        acc[t] += d * s;
      }
    }
    for (std::size_t t = 0; t < x.rows(); ++t) y(t, r) = static_cast<float>(acc[t]);
  }
}

}  // namespace detail

/// The bound within which a vectorized f32-path result lies from the reference: float sums of `cols` terms whose
/// absolute values add up to `abs_sum` (`sum_j |d_b v_j x_j|`), plus the final rounding.
inline double f32_path_bound(std::size_t cols, double abs_sum) noexcept {
  constexpr double unit = 0x1p-24;  // float's unit roundoff
  return 2.0 * static_cast<double>(cols + 2) * unit * abs_sum;
}

}  // namespace ternq::kernels
