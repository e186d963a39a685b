// SPDX-License-Identifier: MIT
// float_matrix: an owned row-major float matrix, what the readers return when they copy or convert a tensor.
#pragma once

#include <cstddef>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "ternq/config.hpp"
#include "ternq/core/adapt.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/view.hpp"

namespace ternq::io {

/// An owned `rows x cols` float matrix, row-major and contiguous. It adapts
/// to `matrix_view` like any backend, so it can be passed straight to
/// `ternq::quantize` and friends.
class float_matrix {
 public:
  float_matrix() = default;

  /// A zero-filled `rows x cols` matrix.
  float_matrix(std::size_t rows, std::size_t cols) : rows_(rows), cols_(cols), values_(checked_size(rows, cols)) {}

  /// Takes `values` (row-major) as the elements; throws `shape_mismatch` unless it holds `rows * cols`.
  float_matrix(std::size_t rows, std::size_t cols, std::vector<float> values)
      : rows_(rows), cols_(cols), values_(std::move(values)) {
    if (values_.size() != checked_size(rows, cols)) {
      fail(errc::shape_mismatch, "float_matrix: ", values_.size(), " values for a ", rows, "x", cols, " matrix");
    }
  }

  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
  [[nodiscard]] std::size_t size() const noexcept { return values_.size(); }
  [[nodiscard]] bool empty() const noexcept { return values_.empty(); }

  [[nodiscard]] float* data() noexcept { return values_.data(); }
  [[nodiscard]] const float* data() const noexcept { return values_.data(); }
  /// All elements, row-major.
  [[nodiscard]] std::span<float> values() noexcept { return values_; }
  [[nodiscard]] std::span<const float> values() const noexcept { return values_; }

  [[nodiscard]] float& operator()(std::size_t i, std::size_t j) noexcept {
    TERNQ_ASSERT(i < rows_ && j < cols_);
    return values_[i * cols_ + j];
  }
  [[nodiscard]] float operator()(std::size_t i, std::size_t j) const noexcept {
    TERNQ_ASSERT(i < rows_ && j < cols_);
    return values_[i * cols_ + j];
  }

  [[nodiscard]] matrix_view<float> view() noexcept {
    return {values_.data(), rows_, cols_, static_cast<std::ptrdiff_t>(cols_), 1};
  }
  [[nodiscard]] matrix_view<const float> view() const noexcept {
    return {values_.data(), rows_, cols_, static_cast<std::ptrdiff_t>(cols_), 1};
  }

 private:
  static std::size_t checked_size(std::size_t rows, std::size_t cols) {
    if (cols != 0 && rows > std::numeric_limits<std::size_t>::max() / cols) {
      fail(errc::invalid_argument, "float_matrix: extents ", rows, "x", cols, " overflow size_t");
    }
    return rows * cols;
  }

  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::vector<float> values_;
};

}  // namespace ternq::io

namespace ternq {

/// `io::float_matrix` is a matrix backend like Eigen's: read-only and writable views.
template <>
struct matrix_adapter<io::float_matrix> {
  static matrix_view<const float> view(const io::float_matrix& m) noexcept { return m.view(); }
  static matrix_view<float> view(io::float_matrix& m) noexcept { return m.view(); }
};

}  // namespace ternq
