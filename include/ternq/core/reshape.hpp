// SPDX-License-Identifier: MIT
// Exact structural edits of a ternary matrix: reordering its rows, padding it with zero rows and columns.
// They let a model absorb a column order or reach a block format's width without changing what it computes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/permutation.hpp"
#include "ternq/core/ternary_matrix.hpp"

namespace ternq {

/// `q` with its rows reordered: row `i` of the result is row `order[i]` of
/// `q`, with its codes, scales and offsets; the column order is kept. A
/// layer whose outputs feed a layer with the column permutation `order`
/// (stored column `j` reads input `order[j]`) folds that permutation this
/// way: the reader then needs no gather.
inline ternary_matrix permute_rows(const ternary_matrix& q, std::span<const std::size_t> order) {
  require_permutation(order, q.rows(), "permute_rows");
  ternary_matrix out(q.rows(), q.cols(), q.group_size(), q.has_offsets());
  const std::size_t groups = q.groups_per_row();
  for (std::size_t i = 0; i < q.rows(); ++i) {
    const std::size_t from = order[i];
    const auto src = q.row_codes(from);
    std::copy(src.begin(), src.end(), out.row_codes(i).begin());
    for (std::size_t k = 0; k < groups; ++k) {
      out.scale(i, k) = q.scale(from, k);
      if (q.has_offsets()) out.offset(i, k) = q.offset(from, k);
    }
  }
  if (q.has_permutation()) out.set_permutation({q.permutation().begin(), q.permutation().end()});
  return out;
}

/// `q` grown to `rows x cols` (at least its own extents) with zero codes:
/// new rows have zero grids, new columns are appended to the last groups
/// (or make new ones of zero grid), so every original value is unchanged
/// and every new one is exactly 0. The group size is kept (one group per
/// row stays one group per row). A column permutation is refused (fold the
/// order first), and so are new columns of an asymmetric matrix.
inline ternary_matrix pad_zeros(const ternary_matrix& q, std::size_t rows, std::size_t cols) {
  if (rows < q.rows() || cols < q.cols()) {
    fail(errc::shape_mismatch, "pad_zeros: cannot shrink a ", q.rows(), "x", q.cols(), " matrix to ", rows, "x", cols);
  }
  if (q.has_permutation()) fail(errc::unsupported, "pad_zeros: the matrix has a column permutation");
  if (q.has_offsets() && cols > q.cols()) {
    // a zero code in a group with an offset decodes to the offset, not to 0
    fail(errc::unsupported, "pad_zeros: new columns of an asymmetric matrix would decode to its offsets");
  }
  const bool one_group = q.groups_per_row() == 1;
  const group_size_option g = one_group ? per_row : group_size_option(q.group_size());
  ternary_matrix out(rows, cols, g, q.has_offsets());
  const std::size_t groups = q.groups_per_row();
  for (std::size_t i = 0; i < q.rows(); ++i) {
    const auto src = q.row_codes(i);
    std::copy(src.begin(), src.end(), out.row_codes(i).begin());
    for (std::size_t k = 0; k < groups; ++k) {
      out.scale(i, k) = q.scale(i, k);
      if (q.has_offsets()) out.offset(i, k) = q.offset(i, k);
    }
  }
  return out;
}

}  // namespace ternq
