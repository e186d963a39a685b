// SPDX-License-Identifier: MIT
// The opt-in symmetric re-fit: new codes and one scale per block from a matrix's dequantized weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ternq/core/dequantize.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/quant/optimal_symmetric.hpp"

namespace ternq::pack {

/// What `pack` does with a matrix the format cannot hold as it is.
enum class refit_policy : std::uint8_t {
  none,                 ///< refuse with the conflict (the default)
  symmetric_per_block,  ///< re-fit the dequantized weights: exact symmetric optimum per block (per tensor for I2_S)
};

/// Options of `pack`.
struct pack_options {
  refit_policy refit = refit_policy::none;
};

/// The record of a re-fit: present on a packed tensor exactly when its weights were changed.
struct refit_report {
  std::string reason;           ///< the conflict that required the re-fit (the message `pack` would have thrown)
  double relative_error = 0.0;  ///< `||What_in - What_out||_F^2 / ||What_in||_F^2`, both in original column order
};

/// Re-fits `q` for format `f`: dequantizes it (offsets and permutation
/// applied, original column order), then fits each block of each row with
/// the exact symmetric ternary optimum (ALGORITHMS.md §1), or the whole
/// tensor at once for I2_S. The result is symmetric, unpermuted, and has
/// group size = the block (per-row groups sharing one scale for I2_S).
/// Returns the relative weight error of the change.
inline ternary_matrix refit_symmetric(const ternary_matrix& q, format f, double* relative_error = nullptr) {
  const std::size_t rows = q.rows();
  const std::size_t cols = q.cols();
  const std::vector<float> w = ternq::dequantize(q);  // row-major, original column order
  const bool whole = per_tensor_scale(f);
  const std::size_t block = traits_of(f).block_elements;
  ternary_matrix out(rows, cols, whole ? per_row : group_size_option(block));
  if (whole) {
    const float s = optimal_symmetric_fit_group(std::span<const float>(w), out.codes());
    for (std::size_t i = 0; i < rows; ++i) out.scale(i, 0) = s;
  } else {
    optimal_symmetric_workspace<float> ws;
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t b = 0; b < cols / block; ++b) {
        const std::span<const float> group(w.data() + i * cols + b * block, block);
        out.scale(i, b) = optimal_symmetric_fit_group(group, out.row_codes(i).subspan(b * block, block), ws);
      }
    }
  }
  if (relative_error != nullptr) {
    double err = 0.0;
    double norm = 0.0;
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t j = 0; j < cols; ++j) {
        const double x = w[i * cols + j];
        const double d = x - static_cast<double>(out.value(i, j));
        err += d * d;
        norm += x * x;
      }
    }
    *relative_error = norm > 0.0 ? err / norm : 0.0;
  }
  return out;
}

}  // namespace ternq::pack
