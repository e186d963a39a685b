// SPDX-License-Identifier: MIT
// matrix_view: a non-owning 2-D view with explicit extents and strides (mdspan-shaped).
#pragma once

#include <cstddef>
#include <limits>
#include <span>
#include <type_traits>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"

namespace ternq {

/// A non-owning view of a `rows x cols` matrix whose element `(i, j)` lives at
/// `data[i * row_stride + j * col_stride]`. Strides are in elements and may be
/// any non-negative values, so row-major, column-major and strided blocks of
/// either are all the same type. `T` may be const-qualified (read-only view).
///
/// Views never own memory and never allocate; algorithms take views and
/// return owning results. Backends are turned into views by adapters
/// (`ternq/adapters/*.hpp`) or by `row_major`/`col_major`/`strided` below.
template <class T>
class matrix_view {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using size_type = std::size_t;
  using stride_type = std::ptrdiff_t;

  constexpr matrix_view() noexcept = default;

  /// Wraps `data` without checks; prefer the checked factories below.
  constexpr matrix_view(T* data, size_type rows, size_type cols, stride_type row_stride,
                        stride_type col_stride) noexcept
      : data_(data), rows_(rows), cols_(cols), row_stride_(row_stride), col_stride_(col_stride) {}

  /// A mutable view converts implicitly to a read-only one.
  template <class U>
  requires(std::is_same_v<const U, T> && !std::is_const_v<U>) constexpr matrix_view(
      const matrix_view<U>& other) noexcept  // NOLINT(google-explicit-constructor)
      : matrix_view(other.data(), other.rows(), other.cols(), other.row_stride(), other.col_stride()) {}

  [[nodiscard]] constexpr T* data() const noexcept { return data_; }
  [[nodiscard]] constexpr size_type rows() const noexcept { return rows_; }
  [[nodiscard]] constexpr size_type cols() const noexcept { return cols_; }
  [[nodiscard]] constexpr stride_type row_stride() const noexcept { return row_stride_; }
  [[nodiscard]] constexpr stride_type col_stride() const noexcept { return col_stride_; }
  [[nodiscard]] constexpr size_type size() const noexcept { return rows_ * cols_; }
  [[nodiscard]] constexpr bool empty() const noexcept { return rows_ == 0 || cols_ == 0; }

  /// True when each row is a contiguous run of `cols` elements.
  [[nodiscard]] constexpr bool rows_contiguous() const noexcept { return col_stride_ == 1 || cols_ <= 1; }
  /// True when each column is a contiguous run of `rows` elements.
  [[nodiscard]] constexpr bool cols_contiguous() const noexcept { return row_stride_ == 1 || rows_ <= 1; }

  [[nodiscard]] constexpr T& operator()(size_type i, size_type j) const noexcept {
    TERNQ_ASSERT(i < rows_ && j < cols_);
    return data_[static_cast<stride_type>(i) * row_stride_ + static_cast<stride_type>(j) * col_stride_];
  }

  /// Row `i` as a span; requires `rows_contiguous()`.
  [[nodiscard]] std::span<T> row_span(size_type i) const {
    if (!rows_contiguous()) {
      fail(errc::invalid_argument, "matrix_view::row_span: rows are not contiguous (column stride ", col_stride_, ")");
    }
    TERNQ_ASSERT(i < rows_);
    return {data_ + static_cast<stride_type>(i) * row_stride_, cols_};
  }

  /// The `nr x nc` block starting at `(r0, c0)`; throws `out_of_bounds` if it
  /// does not fit inside this view.
  [[nodiscard]] matrix_view block(size_type r0, size_type c0, size_type nr, size_type nc) const {
    if (r0 > rows_ || nr > rows_ - r0 || c0 > cols_ || nc > cols_ - c0) {
      fail(errc::out_of_bounds, "matrix_view::block: block of ", nr, "x", nc, " at (", r0, ", ", c0,
           ") does not fit in a ", rows_, "x", cols_, " view");
    }
    T* origin = (nr == 0 || nc == 0) ? data_ : &(*this)(r0, c0);
    return {origin, nr, nc, row_stride_, col_stride_};
  }

  /// The transposed view (no copy).
  [[nodiscard]] constexpr matrix_view transposed() const noexcept {
    return {data_, cols_, rows_, col_stride_, row_stride_};
  }

 private:
  T* data_ = nullptr;
  size_type rows_ = 0;
  size_type cols_ = 0;
  stride_type row_stride_ = 0;
  stride_type col_stride_ = 0;
};

namespace detail {

inline void check_extents(const char* what, const void* data, std::size_t rows, std::size_t cols,
                          std::ptrdiff_t row_stride, std::ptrdiff_t col_stride) {
  if (row_stride < 0 || col_stride < 0) {
    fail(errc::invalid_argument, what, ": negative strides (", row_stride, ", ", col_stride, ") are not supported");
  }
  if (rows != 0 && cols != 0 && data == nullptr) {
    fail(errc::invalid_argument, what, ": null data for a ", rows, "x", cols, " matrix");
  }
  if (cols != 0 && rows > std::numeric_limits<std::size_t>::max() / cols) {
    fail(errc::invalid_argument, what, ": extents ", rows, "x", cols, " overflow size_t");
  }
}

}  // namespace detail

/// A view of row-major storage: element `(i, j)` at `data[i * ld + j]`.
/// `ld` (the leading dimension) defaults to `cols` and must be at least `cols`.
template <class T>
matrix_view<T> row_major(T* data, std::size_t rows, std::size_t cols, std::size_t ld) {
  detail::check_extents("row_major", data, rows, cols, 0, 0);
  if (rows > 1 && ld < cols) {
    fail(errc::invalid_argument, "row_major: leading dimension ", ld, " is smaller than the ", cols,
         " columns of a row");
  }
  return {data, rows, cols, static_cast<std::ptrdiff_t>(ld), 1};
}
template <class T>
matrix_view<T> row_major(T* data, std::size_t rows, std::size_t cols) {
  return row_major(data, rows, cols, cols);
}

/// A view of column-major storage: element `(i, j)` at `data[j * ld + i]`.
template <class T>
matrix_view<T> col_major(T* data, std::size_t rows, std::size_t cols, std::size_t ld) {
  detail::check_extents("col_major", data, rows, cols, 0, 0);
  if (cols > 1 && ld < rows) {
    fail(errc::invalid_argument, "col_major: leading dimension ", ld, " is smaller than the ", rows,
         " rows of a column");
  }
  return {data, rows, cols, 1, static_cast<std::ptrdiff_t>(ld)};
}
template <class T>
matrix_view<T> col_major(T* data, std::size_t rows, std::size_t cols) {
  return col_major(data, rows, cols, rows);
}

/// A view with arbitrary non-negative strides (in elements).
template <class T>
matrix_view<T> strided(T* data, std::size_t rows, std::size_t cols, std::ptrdiff_t row_stride,
                       std::ptrdiff_t col_stride) {
  detail::check_extents("strided", data, rows, cols, row_stride, col_stride);
  return {data, rows, cols, row_stride, col_stride};
}

/// Number of elements a view spans in memory, from its first element to one
/// past its last: what a backing buffer must hold.
template <class T>
constexpr std::size_t required_span(const matrix_view<T>& v) noexcept {
  if (v.empty()) return 0;
  return static_cast<std::size_t>(static_cast<std::ptrdiff_t>(v.rows() - 1) * v.row_stride() +
                                  static_cast<std::ptrdiff_t>(v.cols() - 1) * v.col_stride()) +
         1;
}

}  // namespace ternq
