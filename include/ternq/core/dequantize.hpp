// SPDX-License-Identifier: MIT
// Dequantization of a ternary_matrix into any writable backend, in original column order.
#pragma once

#include <cstddef>
#include <vector>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"

namespace ternq {

/// Writes `What` into `out` (`rows x cols`) in the *original* column order:
/// stored column `j` lands in column `q.original_column(j)`.
template <class T>
requires real_scalar<T>
void dequantize_into(const ternary_matrix& q, const matrix_view<T>& out) {
  require_shape(out, q.rows(), q.cols(), "dequantize", "output");
  const group_layout& layout = q.layout();
  for (std::size_t i = 0; i < q.rows(); ++i) {
    const auto codes = q.row_codes(i);
    for (std::size_t k = 0; k < layout.count(); ++k) {
      const float alpha = q.scale(i, k);
      const float mu = q.offset(i, k);
      for (std::size_t j = layout.begin(k); j < layout.end(k); ++j) {
        out(i, q.original_column(j)) = static_cast<T>(alpha * static_cast<float>(codes[j]) + mu);
      }
    }
  }
}

/// Dequantizes into any writable matrix of the right shape (Eigen, xtensor, a view).
template <class M>
void dequantize(const ternary_matrix& q, M&& out) {
  dequantize_into(q, as_writable_view(out));
}

/// Dequantizes into a new row-major `rows x cols` buffer.
inline std::vector<float> dequantize(const ternary_matrix& q) {
  std::vector<float> out(q.rows() * q.cols());
  dequantize_into(q, matrix_view<float>(out.data(), q.rows(), q.cols(), static_cast<std::ptrdiff_t>(q.cols()), 1));
  return out;
}

}  // namespace ternq
