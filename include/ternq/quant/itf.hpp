// SPDX-License-Identifier: MIT
// The itf method: asymmetric ternarization by Iterative Ternary Fitting, no calibration data (ALGORITHMS.md §2).
#pragma once

#include <cstddef>
#include <vector>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/detail/atq_rows.hpp"

namespace ternq {

/// PT²-LLM's asymmetric ternary quantizer with ITF only: per group, the ATQ
/// initialization, then alternating optimal grid and optimal codes until
/// the codes stop changing or `max_iters` grid solves. Asymmetric result
/// (`alpha T + mu`); needs no calibration data.
struct itf {
  group_size_option group_size = 128;  ///< columns per group, or `per_row`
  unsigned max_iters = 10;             ///< grid solves per group at most (0: the initialization alone)
};

/// A ternary matrix with the counters of its ATQ fits.
struct atq_result {
  ternary_matrix matrix;
  atq_stats stats;
};

/// `itf` with its counters (iterations, unconverged and degenerate groups).
template <class T>
atq_result itf_quantize(const cpu_exec& exec, const matrix_view<const T>& w, const itf& method) {
  constexpr const char* context = "quantize(itf)";
  require_nonempty(w, context, "weight matrix");
  atq_result out{ternary_matrix(w.rows(), w.cols(), method.group_size, true), {}};
  const std::size_t chunks = (w.rows() + detail::atq_row_chunk - 1) / detail::atq_row_chunk;
  std::vector<atq_stats> stats(chunks);
  const simd_level simd = exec.simd_variant();
  detail::for_each_row_chunk(w.rows(), exec.thread_count(), [&](std::size_t c, std::size_t r0, std::size_t r1) {
    std::vector<atq_grid> grids;
    std::vector<T> scratch;
    stats[c] = detail::itf_fit_rows(simd, w, r0, r1, method.max_iters, out.matrix, grids, scratch, context);
    detail::store_grids(out.matrix, r0, r1, grids);
  });
  for (const auto& s : stats) out.stats.merge(s);
  return out;
}

/// `itf_quantize` for any adaptable matrix (Eigen, xtensor, a view).
template <class W>
requires(!a_matrix_view<W>) atq_result itf_quantize(const cpu_exec& exec, const W& w, const itf& method) {
  return itf_quantize(exec, as_const_view(w), method);
}

/// `quantize` entry for itf (see ternq/quant/quantize.hpp).
template <class T>
ternary_matrix quantize_view(const cpu_exec& exec, const matrix_view<const T>& w, const itf& method) {
  return itf_quantize(exec, w, method).matrix;
}

}  // namespace ternq
