// SPDX-License-Identifier: MIT
// std::span adapter: bounds-checked views over contiguous buffers.
#pragma once

#include <cstddef>
#include <span>

#include "ternq/core/error.hpp"
#include "ternq/core/view.hpp"

namespace ternq {

namespace detail {
template <class T>
matrix_view<T> check_fits(const matrix_view<T>& v, std::size_t available, const char* context) {
  const std::size_t needed = required_span(v);
  if (needed > available) {
    fail(errc::out_of_bounds, context, ": a ", v.rows(), "x", v.cols(), " view with strides (", v.row_stride(), ", ",
         v.col_stride(), ") needs ", needed, " elements but the span holds ", available);
  }
  return v;
}
}  // namespace detail

/// Row-major view over `s` (leading dimension `ld`, default `cols`); throws
/// `out_of_bounds` if the matrix does not fit in the span.
template <class T, std::size_t E>
matrix_view<T> row_major(std::span<T, E> s, std::size_t rows, std::size_t cols, std::size_t ld) {
  return detail::check_fits(row_major(s.data(), rows, cols, ld), s.size(), "row_major(span)");
}
template <class T, std::size_t E>
matrix_view<T> row_major(std::span<T, E> s, std::size_t rows, std::size_t cols) {
  return row_major(s, rows, cols, cols);
}

/// Column-major view over `s` (leading dimension `ld`, default `rows`).
template <class T, std::size_t E>
matrix_view<T> col_major(std::span<T, E> s, std::size_t rows, std::size_t cols, std::size_t ld) {
  return detail::check_fits(col_major(s.data(), rows, cols, ld), s.size(), "col_major(span)");
}
template <class T, std::size_t E>
matrix_view<T> col_major(std::span<T, E> s, std::size_t rows, std::size_t cols) {
  return col_major(s, rows, cols, rows);
}

/// Strided view over `s` with element `(i, j)` at `s[i * row_stride + j * col_stride]`.
template <class T, std::size_t E>
matrix_view<T> strided(std::span<T, E> s, std::size_t rows, std::size_t cols, std::ptrdiff_t row_stride,
                       std::ptrdiff_t col_stride) {
  return detail::check_fits(strided(s.data(), rows, cols, row_stride, col_stride), s.size(), "strided(span)");
}

}  // namespace ternq
