// SPDX-License-Identifier: MIT
// What a re-fit of a ternary matrix's scales to the output error did, and what it refuses: the report and the
// checks the CPU's `refit_scales_to_output` (quant/scale_refit.hpp) and the device's share.
#pragma once

#include <cstddef>

#include "ternq/core/error.hpp"
#include "ternq/core/ternary_matrix.hpp"

namespace ternq {

/// What `refit_scales_to_output` did.
struct scale_refit_report {
  double output_error_before = 0.0;  ///< E_x = tr((W - Q) C (W - Q)^T) of the input matrix
  double output_error_after = 0.0;   ///< ... of the result (never larger)
  std::size_t rows_changed = 0;      ///< rows whose scales were replaced
};

namespace detail {
/// Refuses offsets (`unsupported`) and weights (`w_rows x w_cols`) or a Gram matrix (`c_rows x c_cols`) whose shape
/// does not fit `q` (`shape_mismatch`).
inline void require_refit_shapes(const ternary_matrix& q, std::size_t w_rows, std::size_t w_cols, std::size_t c_rows,
                                 std::size_t c_cols) {
  if (q.has_offsets()) fail(errc::unsupported, "refit_scales_to_output: the matrix has offsets (alpha T + mu)");
  if (w_rows != q.rows() || w_cols != q.cols()) {
    fail(errc::shape_mismatch, "refit_scales_to_output: weights ", w_rows, "x", w_cols, ", ternary matrix ", q.rows(),
         "x", q.cols());
  }
  if (c_rows != q.cols() || c_cols != q.cols()) {
    fail(errc::shape_mismatch, "refit_scales_to_output: Gram matrix ", c_rows, "x", c_cols, " for ", q.cols(),
         " columns");
  }
}
}  // namespace detail

}  // namespace ternq
