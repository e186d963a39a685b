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
#include "ternq/core/simd.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"

namespace ternq {

namespace detail {
/// Asks the memory system for `x` ahead of use, so that loading the next row
/// overlaps the arithmetic on this one (a hint; no effect on results).
template <class T>
TERNQ_ALWAYS_INLINE void prefetch(std::span<const T> x) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  constexpr std::size_t line = 64 / sizeof(T);
  for (std::size_t j = 0; j < x.size(); j += line) __builtin_prefetch(&x[j]);
#else
  (void)x;
#endif
}

/// Row `i` of `w` as a contiguous span: in place when rows are contiguous,
/// else gathered into `scratch` (which must hold `w.cols()` elements).
template <class T>
TERNQ_ALWAYS_INLINE std::span<const T> row_of(const matrix_view<const T>& w, std::size_t i, std::vector<T>& scratch) {
  if (w.rows_contiguous()) return {&w(i, 0), w.cols()};
  for (std::size_t j = 0; j < w.cols(); ++j) scratch[j] = w(i, j);
  return scratch;
}
/// Runs `rows(begin, end)` compiled for the given instruction-set variant:
/// the lambda and everything it inlines (the per-group fits carry
/// TERNQ_ALWAYS_INLINE) are generated once per variant. Results are
/// identical: the code fixes every summation order, and no variant enables
/// floating-point contraction.
template <class Rows>
void run_rows_portable(Rows& rows, std::size_t begin, std::size_t end) {
  rows(begin, end);
}
#if TERNQ_HAS_AVX2_VARIANT
template <class Rows>
TERNQ_TARGET_AVX2 void run_rows_avx2(Rows& rows, std::size_t begin, std::size_t end) {
  rows(begin, end);
}
#endif
template <class Rows>
void run_rows(simd_level level, Rows& rows, std::size_t begin, std::size_t end) {
#if TERNQ_HAS_AVX2_VARIANT
  // The group-wise loops have no AVX-512 variant: that level runs their AVX2 one (the exact optimum
  // dispatches its own AVX-512 search per group, see optimal_symmetric_workspace::simd).
  if (level == simd_level::avx2 || level == simd_level::avx512) {
    run_rows_avx2(rows, begin, end);
    return;
  }
#endif
  (void)level;
  run_rows_portable(rows, begin, end);
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
TERNQ_ALWAYS_INLINE void require_weight_row(std::span<const T> row, std::size_t i, std::string_view context) {
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
  const simd_level level = exec.simd_variant();
  auto rows = [&](std::size_t row_begin, std::size_t row_end) TERNQ_ALWAYS_INLINE_LAMBDA {
    auto fit = make_fitter();
    std::vector<T> scratch(w.rows_contiguous() ? 0 : w.cols());
    for (std::size_t i = row_begin; i < row_end; ++i) {
      const std::span<const T> row = detail::row_of(w, i, scratch);
      if (i + 1 < row_end && w.rows_contiguous()) detail::prefetch(std::span<const T>(&w(i + 1, 0), w.cols()));
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
  };
  parallel_for(w.rows(), exec.thread_count(),
               [&](std::size_t row_begin, std::size_t row_end) { detail::run_rows(level, rows, row_begin, row_end); });
  return q;
}

}  // namespace ternq
