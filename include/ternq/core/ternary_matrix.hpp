// SPDX-License-Identifier: MIT
// ternary_matrix: codes in {-1, 0, +1} with a grid per (row, group) and an optional column order.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/permutation.hpp"

namespace ternq {

/// The result of every quantizer (ALGORITHMS.md §0): an `n x m` matrix of
/// int8 codes `T` in {-1, 0, +1}, a scale `alpha` per (row, group), an
/// optional offset `mu` per (row, group), and an optional column permutation.
///
/// Codes are stored row-major in *stored* column order. When a permutation
/// `perm` is present, stored column `j` approximates original column
/// `perm[j]`, groups are contiguous in stored order, and `y = W x` becomes
/// `y = What_stored x[perm]` (gather the input before the product).
/// The dequantized value of stored element `(i, j)` in group `k` is
/// `alpha_ik T_ij (+ mu_ik)`.
class ternary_matrix {
 public:
  ternary_matrix() = default;

  /// All codes 0, all scales (and offsets, when requested) 0, no permutation.
  ternary_matrix(std::size_t rows, std::size_t cols, group_size_option group_size, bool with_offsets = false)
      : rows_(rows),
        layout_(cols, group_size, "ternary_matrix"),
        codes_(checked_product(rows, cols), 0),
        scales_(rows * layout_.count(), 0.0F),
        with_offsets_(with_offsets) {
    if (with_offsets_) offsets_.assign(scales_.size(), 0.0F);
  }

  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t cols() const noexcept { return layout_.cols(); }
  /// Columns per group (the last group may be shorter); equals `cols()` for per-row grids.
  [[nodiscard]] std::size_t group_size() const noexcept { return layout_.group_size(); }
  [[nodiscard]] std::size_t groups_per_row() const noexcept { return layout_.count(); }
  [[nodiscard]] const group_layout& layout() const noexcept { return layout_; }

  // --- codes ---------------------------------------------------------------
  [[nodiscard]] std::span<std::int8_t> codes() noexcept { return codes_; }
  [[nodiscard]] std::span<const std::int8_t> codes() const noexcept { return codes_; }
  [[nodiscard]] std::span<std::int8_t> row_codes(std::size_t i) noexcept {
    TERNQ_ASSERT(i < rows_);
    return std::span<std::int8_t>(codes_).subspan(i * cols(), cols());
  }
  [[nodiscard]] std::span<const std::int8_t> row_codes(std::size_t i) const noexcept {
    TERNQ_ASSERT(i < rows_);
    return std::span<const std::int8_t>(codes_).subspan(i * cols(), cols());
  }
  [[nodiscard]] std::int8_t code(std::size_t i, std::size_t j) const noexcept {
    TERNQ_ASSERT(i < rows_ && j < cols());
    return codes_[i * cols() + j];
  }

  // --- grids ---------------------------------------------------------------
  /// Scales, row-major `rows x groups_per_row`.
  [[nodiscard]] std::span<float> scales() noexcept { return scales_; }
  [[nodiscard]] std::span<const float> scales() const noexcept { return scales_; }
  [[nodiscard]] float& scale(std::size_t i, std::size_t k) noexcept { return scales_[grid_index(i, k)]; }
  [[nodiscard]] float scale(std::size_t i, std::size_t k) const noexcept { return scales_[grid_index(i, k)]; }

  /// True for asymmetric grids (`alpha T + mu`).
  [[nodiscard]] bool has_offsets() const noexcept { return with_offsets_; }
  [[nodiscard]] bool is_symmetric() const noexcept { return !has_offsets(); }
  /// Offsets, row-major `rows x groups_per_row`; empty for symmetric grids.
  [[nodiscard]] std::span<float> offsets() noexcept { return offsets_; }
  [[nodiscard]] std::span<const float> offsets() const noexcept { return offsets_; }
  /// The offset of a group; 0 for symmetric grids.
  [[nodiscard]] float offset(std::size_t i, std::size_t k) const noexcept {
    return with_offsets_ ? offsets_[grid_index(i, k)] : 0.0F;
  }
  /// Writable offset; requires `has_offsets()`.
  [[nodiscard]] float& offset(std::size_t i, std::size_t k) {
    if (!with_offsets_) {
      fail(errc::invalid_argument, "ternary_matrix::offset: this matrix is symmetric (no offsets)");
    }
    return offsets_[grid_index(i, k)];
  }
  /// Drops the offsets (make the matrix symmetric).
  void clear_offsets() noexcept {
    with_offsets_ = false;
    offsets_.clear();
    offsets_.shrink_to_fit();
  }

  // --- permutation ---------------------------------------------------------
  [[nodiscard]] bool has_permutation() const noexcept { return !permutation_.empty(); }
  /// Stored column `j` holds original column `permutation()[j]`; empty when the order is the identity.
  [[nodiscard]] std::span<const std::size_t> permutation() const noexcept { return permutation_; }
  /// Sets the column order (validated). An identity permutation is stored as none.
  void set_permutation(std::vector<std::size_t> perm) {
    require_permutation(perm, cols(), "ternary_matrix::set_permutation");
    if (is_identity_permutation(perm)) {
      permutation_.clear();
    } else {
      permutation_ = std::move(perm);
    }
  }
  void clear_permutation() noexcept { permutation_.clear(); }
  /// The original column index of stored column `j`.
  [[nodiscard]] std::size_t original_column(std::size_t j) const noexcept {
    TERNQ_ASSERT(j < cols());
    return permutation_.empty() ? j : permutation_[j];
  }

  /// Dequantized value of stored element `(i, j)`: `alpha T + mu`.
  [[nodiscard]] float value(std::size_t i, std::size_t j) const noexcept {
    const std::size_t k = layout_.group_of(j);
    return scale(i, k) * static_cast<float>(code(i, j)) + offset(i, k);
  }

  /// Throws `invalid_argument` if a code is outside {-1, 0, +1} or a grid
  /// value is not finite (for matrices edited by hand).
  void validate() const {
    for (std::size_t idx = 0; idx < codes_.size(); ++idx) {
      const int c = codes_[idx];
      if (c < -1 || c > 1) {
        fail(errc::invalid_argument, "ternary_matrix::validate: code ", c, " at (", idx / cols(), ", ", idx % cols(),
             ") is not in {-1, 0, +1}");
      }
    }
    check_grid(scales_, "scale");
    check_grid(offsets_, "offset");
  }

 private:
  static std::size_t checked_product(std::size_t rows, std::size_t cols) {
    if (cols != 0 && rows > static_cast<std::size_t>(-1) / cols) {
      fail(errc::invalid_argument, "ternary_matrix: extents ", rows, "x", cols, " overflow size_t");
    }
    return rows * cols;
  }
  [[nodiscard]] std::size_t grid_index(std::size_t i, std::size_t k) const noexcept {
    TERNQ_ASSERT(i < rows_ && k < layout_.count());
    return i * layout_.count() + k;
  }
  void check_grid(const std::vector<float>& v, const char* what) const {
    for (std::size_t idx = 0; idx < v.size(); ++idx) {
      if (!std::isfinite(v[idx])) {
        fail(errc::non_finite, "ternary_matrix::validate: ", what, " of row ", idx / layout_.count(), ", group ",
             idx % layout_.count(), " is not finite");
      }
    }
  }

  std::size_t rows_ = 0;
  group_layout layout_;
  std::vector<std::int8_t> codes_;
  std::vector<float> scales_;
  std::vector<float> offsets_;
  bool with_offsets_ = false;
  std::vector<std::size_t> permutation_;
};

}  // namespace ternq
