// SPDX-License-Identifier: MIT
// Group layout along a row: group k holds columns [k g, min((k+1) g, m)) (ALGORITHMS.md §0).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"

namespace ternq {

/// A method's `group_size` option: a number of columns, or `per_row`
/// (one group spanning the whole row).
using group_size_option = std::optional<std::size_t>;

/// Spelling of "one group per row" for `group_size` options.
inline constexpr std::nullopt_t per_row = std::nullopt;

/// Where the groups of a row start and end. A last, shorter group is normal:
/// with `m = 300` and `g = 128` the groups are 128, 128 and 44 columns.
class group_layout {
 public:
  group_layout() = default;

  /// Throws `zero_group_size` for `group_size == 0`. A group size larger
  /// than `cols` (or `per_row`) gives one group per row.
  group_layout(std::size_t cols, group_size_option group_size, std::string_view context = "group_layout")
      : cols_(cols) {
    if (group_size && *group_size == 0) {
      fail(errc::zero_group_size, context, ": group size must be at least 1 (got 0)");
    }
    const std::size_t g = group_size ? *group_size : cols;
    group_size_ = g < cols ? g : cols;
    if (group_size_ == 0) group_size_ = 1;  // cols == 0: no groups, keep a valid divisor
    count_ = (cols_ + group_size_ - 1) / group_size_;
  }

  [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
  /// Columns in every group but possibly the last.
  [[nodiscard]] std::size_t group_size() const noexcept { return group_size_; }
  /// Groups per row: `ceil(cols / group_size)`.
  [[nodiscard]] std::size_t count() const noexcept { return count_; }
  [[nodiscard]] std::size_t begin(std::size_t k) const noexcept {
    TERNQ_ASSERT(k < count_);
    return k * group_size_;
  }
  [[nodiscard]] std::size_t end(std::size_t k) const noexcept {
    TERNQ_ASSERT(k < count_);
    const std::size_t e = (k + 1) * group_size_;
    return e < cols_ ? e : cols_;
  }
  [[nodiscard]] std::size_t size(std::size_t k) const noexcept { return end(k) - begin(k); }
  [[nodiscard]] std::size_t group_of(std::size_t col) const noexcept {
    TERNQ_ASSERT(col < cols_);
    return col / group_size_;
  }

 private:
  std::size_t cols_ = 0;
  std::size_t group_size_ = 1;
  std::size_t count_ = 0;
};

}  // namespace ternq
