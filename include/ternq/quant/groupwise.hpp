// SPDX-License-Identifier: MIT
// The group-wise driver: applies a per-group fit to every (row, group) of a matrix.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ternq/core/checks.hpp"
#include "ternq/core/finite.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"

namespace ternq {

namespace detail {
/// Row `i` of `w` as a contiguous span: in place when rows are contiguous,
/// else gathered into `scratch` (which must hold `w.cols()` elements).
template <class T>
std::span<const T> row_of(const matrix_view<const T>& w, std::size_t i, std::vector<T>& scratch) {
  if (w.rows_contiguous()) return {&w(i, 0), w.cols()};
  for (std::size_t j = 0; j < w.cols(); ++j) scratch[j] = w(i, j);
  return scratch;
}
}  // namespace detail

/// The grid a per-group fit returns: the scale, and the offset for
/// asymmetric methods (0 for symmetric ones).
struct group_grid {
  float scale = 0.0F;
  float offset = 0.0F;
};

/// Checks one row of weights (`row` of matrix row `i`): finite, and for
/// double input inside the float range that ternary scales are stored in.
/// Called on each row just before it is fitted, while it is in cache.
template <class T>
void require_weight_row(std::span<const T> row, std::size_t i, std::string_view context) {
  const std::size_t j = detail::first_non_finite(row);
  if (j < row.size()) fail_non_finite(row[j], i, j, context, "weights");
  if constexpr (!std::is_same_v<T, float>) {
    for (std::size_t k = 0; k < row.size(); ++k) {
      if (std::abs(row[k]) > static_cast<T>(std::numeric_limits<float>::max())) {
        fail(errc::unsupported, context, ": weight ", row[k], " at (", i, ", ", k,
             ") is outside the float range of ternary scales");
      }
    }
  }
}

/// Validates a whole weight matrix as `require_weight_row` does row by row, plus non-emptiness.
template <class T>
void require_weights(const matrix_view<const T>& w, std::string_view context) {
  require_nonempty(w, context, "weight matrix");
  std::vector<T> gathered(w.rows_contiguous() ? 0 : w.cols());
  for (std::size_t i = 0; i < w.rows(); ++i) require_weight_row(detail::row_of(w, i, gathered), i, context);
}

/// Runs a per-group fit over every (row, group) of `w` and collects the
/// codes and grids into a `ternary_matrix`.
///
/// `make_fitter()` is called once per worker thread and returns a callable
/// `fit(std::span<const T> group, std::span<std::int8_t> codes) -> group_grid`
/// (a fitter may keep scratch memory between calls). Rows with contiguous
/// storage are passed in place; strided rows are gathered first. Rows are
/// split across `exec.thread_count()` threads; each group is fitted by one
/// call, so the result does not depend on the thread count.
template <class T, class MakeFitter>
ternary_matrix quantize_groups(const cpu_exec& exec, const matrix_view<const T>& w, group_size_option group_size,
                               bool asymmetric, std::string_view context, MakeFitter&& make_fitter) {
  require_nonempty(w, context, "weight matrix");
  ternary_matrix q(w.rows(), w.cols(), group_size, asymmetric);
  const group_layout layout = q.layout();
  parallel_for(w.rows(), exec.thread_count(), [&](std::size_t row_begin, std::size_t row_end) {
    auto fit = make_fitter();
    std::vector<T> scratch(w.rows_contiguous() ? 0 : w.cols());
    for (std::size_t i = row_begin; i < row_end; ++i) {
      const std::span<const T> row = detail::row_of(w, i, scratch);
      require_weight_row(row, i, context);
      const auto codes = q.row_codes(i);
      for (std::size_t k = 0; k < layout.count(); ++k) {
        const std::size_t b = layout.begin(k);
        const std::size_t n = layout.size(k);
        const group_grid grid = fit(row.subspan(b, n), codes.subspan(b, n));
        q.scale(i, k) = grid.scale;
        if (asymmetric) q.offset(i, k) = grid.offset;
      }
    }
  });
  return q;
}

}  // namespace ternq
