// SPDX-License-Identifier: MIT
// The damped Hessian H = C + lambda mean(diag C) I with dead columns, in a chosen column order (ALGORITHMS.md §3).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "ternq/core/view.hpp"

namespace ternq::linalg {

/// What building the damped Hessian found.
struct damped_hessian_info {
  double damping = 0.0;        ///< lambda, relative to the mean diagonal
  double mean_diagonal = 0.0;  ///< mean(diag C) over all columns
  std::size_t dead_columns = 0;
};

/// Writes the lower triangle of `H = C + lambda mean(diag C) I` into `h`
/// (resized to `m x m`), with rows and columns in the order `order`:
/// `h(p, q) = C(order[p], order[q])`. Only the lower triangle of `C` is read
/// (`C` is symmetric). Dead columns (`C_jj = 0`, an input channel that never
/// fires) get a zero row and column and `H_jj = 1`, and `dead[p]` is set for
/// their positions, so the caller can zero the matching weights.
template <class G>
damped_hessian_info build_damped_hessian(const matrix_view<const G>& c, std::span<const std::size_t> order,
                                         double lambda, Eigen::MatrixXd& h, std::vector<char>& dead) {
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
  for (std::size_t q = 0; q < m; ++q) {
    const std::size_t oq = order[q];
    for (std::size_t p = q; p < m; ++p) {
      const std::size_t op = order[p];
      const double v = op >= oq ? static_cast<double>(c(op, oq)) : static_cast<double>(c(oq, op));
      h(static_cast<Eigen::Index>(p), static_cast<Eigen::Index>(q)) = (dead[p] || dead[q]) ? 0.0 : v;
    }
    if (dead[q]) {
      h(static_cast<Eigen::Index>(q), static_cast<Eigen::Index>(q)) = 1.0;
      ++info.dead_columns;
    } else {
      h(static_cast<Eigen::Index>(q), static_cast<Eigen::Index>(q)) += add;
    }
  }
  return info;
}

}  // namespace ternq::linalg
