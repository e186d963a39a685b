// SPDX-License-Identifier: MIT
// The damped Hessian H = C + lambda mean(diag C) I with dead columns, in a chosen column order (ALGORITHMS.md §3).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "ternq/core/view.hpp"
#include "ternq/linalg/tasks.hpp"

namespace ternq::linalg {

/// What building the damped Hessian found.
struct damped_hessian_info {
  double damping = 0.0;        ///< lambda, relative to the mean diagonal
  double mean_diagonal = 0.0;  ///< mean(diag C) over all columns
  std::size_t dead_columns = 0;
};

/// Writes the lower triangle of `H = C + lambda mean(diag C) I` into `h`
/// (resized to `m x m`; every entry computed in double, then rounded to
/// `h`'s scalar), with rows and columns in the order `order`:
/// `h(p, q) = C(order[p], order[q])`. Only the lower triangle of `C` is read
/// (`C` is symmetric). Dead columns (`C_jj = 0`, an input channel that never
/// fires) get a zero row and column and `H_jj = 1`, and `dead[p]` is set for
/// their positions, so the caller can zero the matching weights. Column
/// panels on up to `threads` threads (a copy: the same result for any count).
template <class G, class S>
damped_hessian_info build_damped_hessian(const matrix_view<const G>& c, std::span<const std::size_t> order,
                                         double lambda, Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>& h,
                                         std::vector<char>& dead, unsigned threads = 1) {
  const std::size_t m = order.size();
  damped_hessian_info info;
  info.damping = lambda;
  double trace = 0.0;
  for (std::size_t j = 0; j < m; ++j) trace += static_cast<double>(c(j, j));
  info.mean_diagonal = m == 0 ? 0.0 : trace / static_cast<double>(m);
  const double add = lambda * info.mean_diagonal;
  h.resize(static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(m));
  dead.assign(m, 0);
  for (std::size_t p = 0; p < m; ++p) dead[p] = static_cast<double>(c(order[p], order[p])) == 0.0 ? 1 : 0;
  for (std::size_t q = 0; q < m; ++q) info.dead_columns += dead[q] ? 1 : 0;
  // panels of 64 columns taken by whichever thread is free (the columns shorten along the diagonal)
  constexpr std::size_t panel = 64;
  parallel_tasks((m + panel - 1) / panel, threads, [&](std::size_t t) {
    for (std::size_t q = t * panel; q < std::min(m, (t + 1) * panel); ++q) {
      const std::size_t oq = order[q];
      for (std::size_t p = q; p < m; ++p) {
        const std::size_t op = order[p];
        const double v = op >= oq ? static_cast<double>(c(op, oq)) : static_cast<double>(c(oq, op));
        h(static_cast<Eigen::Index>(p), static_cast<Eigen::Index>(q)) = (dead[p] || dead[q]) ? S(0) : static_cast<S>(v);
      }
      h(static_cast<Eigen::Index>(q), static_cast<Eigen::Index>(q)) =
          dead[q] ? S(1) : static_cast<S>(static_cast<double>(c(oq, oq)) + add);
    }
  });
  return info;
}

}  // namespace ternq::linalg
