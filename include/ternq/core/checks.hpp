// SPDX-License-Identifier: MIT
// Always-on input checks shared by every algorithm: emptiness, finiteness, shapes.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>

#include "ternq/core/error.hpp"
#include "ternq/core/finite.hpp"
#include "ternq/core/view.hpp"

namespace ternq {

/// Throws `empty_matrix` if `v` has no rows or no columns.
template <class T>
void require_nonempty(const matrix_view<T>& v, std::string_view context, std::string_view what) {
  if (v.empty()) {
    fail(errc::empty_matrix, context, ": ", what, " is empty (", v.rows(), "x", v.cols(), ")");
  }
}

/// Throws `non_finite` naming element `(row, col)` holding `x`.
template <class T>
[[noreturn]] void fail_non_finite(T x, std::size_t row, std::size_t col, std::string_view context,
                                  std::string_view what) {
  fail(errc::non_finite, context, ": ", std::isnan(x) ? "NaN" : "Inf", " in ", what, " at (", row, ", ", col, ")");
}

/// Throws `non_finite` naming the first NaN/Inf element of `v` (row-major scan order).
template <class T>
void require_finite(const matrix_view<T>& v, std::string_view context, std::string_view what) {
  if (v.empty()) return;
  if (!v.rows_contiguous() && v.cols_contiguous()) {
    // column-major data: scan it in memory order (a row-major walk would touch one page per element of a
    // large matrix) and search in row-major order only to name the first offender
    bool finite = true;
    for (std::size_t j = 0; j < v.cols() && finite; ++j) {
      const std::span<const T> col(&v(0, j), v.rows());
      finite = detail::first_non_finite(col) == col.size();
    }
    if (finite) return;
  }
  for (std::size_t i = 0; i < v.rows(); ++i) {
    if (v.rows_contiguous()) {
      const std::span<const T> row(&v(i, 0), v.cols());
      const std::size_t j = detail::first_non_finite(row);
      if (j < row.size()) fail_non_finite(row[j], i, j, context, what);
      continue;
    }
    for (std::size_t j = 0; j < v.cols(); ++j) {
      if (!std::isfinite(v(i, j))) fail_non_finite(v(i, j), i, j, context, what);
    }
  }
}

/// Throws `shape_mismatch` unless `v` is `rows x cols`.
template <class T>
void require_shape(const matrix_view<T>& v, std::size_t rows, std::size_t cols, std::string_view context,
                   std::string_view what) {
  if (v.rows() != rows || v.cols() != cols) {
    fail(errc::shape_mismatch, context, ": ", what, " is ", v.rows(), "x", v.cols(), ", expected ", rows, "x", cols);
  }
}

}  // namespace ternq
