// SPDX-License-Identifier: MIT
// ITF over the rows of a matrix in fixed row chunks, shared by the itf and itf_aga methods.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ternq/core/parallel.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/detail/itf_avx512.hpp"
#include "ternq/quant/groupwise.hpp"

namespace ternq::detail {

/// Rows per unit of parallel work. Chunk boundaries depend on the row count
/// only, never on the thread count, so chunked matrix products (AGA) give
/// the same bits whatever the number of threads.
inline constexpr std::size_t atq_row_chunk = 64;

/// Runs `body(chunk, row_begin, row_end)` for every fixed chunk of `rows`,
/// spread over `threads` threads.
template <class Body>
void for_each_row_chunk(std::size_t rows, unsigned threads, Body&& body) {
  const std::size_t chunks = (rows + atq_row_chunk - 1) / atq_row_chunk;
  parallel_for(chunks, threads, [&](std::size_t c0, std::size_t c1) {
    for (std::size_t c = c0; c < c1; ++c) {
      body(c, c * atq_row_chunk, std::min(rows, (c + 1) * atq_row_chunk));
    }
  });
}

/// Groups of a row fitted between two requests for the next row's memory (a multiple of the groups fitted at once).
inline constexpr std::size_t itf_row_slice = 4;

/// ITF on every group of rows `[r0, r1)` of `w`: writes the codes into `q`
/// and the double grids into `grids` (row-major, `(r1 - r0) x groups`).
/// Each row is checked (finite, float range) just before it is fitted.
/// `simd` (from `cpu_exec::simd_variant()`) picks the passes over a group.
template <class T>
atq_stats itf_fit_rows(simd_level simd, const matrix_view<const T>& w, std::size_t r0, std::size_t r1,
                       unsigned max_iters, ternary_matrix& q, std::vector<atq_grid>& grids, std::vector<T>& scratch,
                       std::string_view context) {
  const group_layout& layout = q.layout();
  grids.resize((r1 - r0) * layout.count());
  scratch.resize(w.rows_contiguous() ? 0 : w.cols());
  atq_stats stats;
  std::vector<std::span<const T>> groups(layout.count());
  std::vector<std::span<std::int8_t>> group_codes(layout.count());
  std::vector<itf_group_result> results(layout.count());
  for (std::size_t i = r0; i < r1; ++i) {
    const std::span<const T> row = row_of(w, i, scratch);  // valid until the next row
    require_weight_row(row, i, context);
    const auto codes = q.row_codes(i);
    for (std::size_t k = 0; k < layout.count(); ++k) {
      groups[k] = row.subspan(layout.begin(k), layout.size(k));
      group_codes[k] = codes.subspan(layout.begin(k), layout.size(k));
    }
    // The fits run from the caches; the next row is requested a slice at a time between them, so that its load from
    // memory overlaps the arithmetic instead of stalling the first pass over it (all at once, the requests would
    // queue up behind the few outstanding misses a core can have).
    const std::span<const T> next =
        w.rows_contiguous() && i + 1 < w.rows() ? std::span<const T>(&w(i + 1, 0), w.cols()) : std::span<const T>();
    for (std::size_t k0 = 0; k0 < layout.count(); k0 += itf_row_slice) {
      const std::size_t k1 = std::min(layout.count(), k0 + itf_row_slice);
      const std::size_t a = next.size() * k0 / layout.count();
      prefetch(next.subspan(a, next.size() * k1 / layout.count() - a));
      itf_fit_groups_at<T>(simd, std::span(groups).subspan(k0, k1 - k0),
                           std::span<const std::span<std::int8_t>>(group_codes).subspan(k0, k1 - k0), max_iters,
                           std::span(results).subspan(k0, k1 - k0));
    }
    for (std::size_t k = 0; k < layout.count(); ++k) {
      grids[(i - r0) * layout.count() + k] = results[k].grid;
      stats.add(results[k].stats);
    }
  }
  return stats;
}

/// Stores double grids of rows `[r0, r1)` into `q` (float scales and offsets).
inline void store_grids(ternary_matrix& q, std::size_t r0, std::size_t r1, std::span<const atq_grid> grids) {
  const std::size_t groups = q.groups_per_row();
  for (std::size_t i = r0; i < r1; ++i) {
    for (std::size_t k = 0; k < groups; ++k) {
      const atq_grid& g = grids[(i - r0) * groups + k];
      q.scale(i, k) = static_cast<float>(g.alpha);
      q.offset(i, k) = static_cast<float>(g.mu);
    }
  }
}

}  // namespace ternq::detail
