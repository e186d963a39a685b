// SPDX-License-Identifier: MIT
// The damped Hessian H = C + lambda mean(diag C) I with dead columns, in a chosen column order (ALGORITHMS.md §3),
// written into any column-major buffer, and its terms (damping, dead columns). Standard library only, so a device's
// steps that build H themselves take the same terms.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "ternq/core/view.hpp"
#include "ternq/linalg/tasks.hpp"

namespace ternq::linalg {

/// What building the damped Hessian found.
struct damped_hessian_info {
  double damping = 0.0;        ///< lambda, relative to the mean diagonal
  double mean_diagonal = 0.0;  ///< mean(diag C) over all columns
  std::size_t dead_columns = 0;
};

/// The terms of `H = C + lambda mean(diag C) I` in the order `order`: the mean diagonal (over all columns, in column
/// order), the damping, and the dead positions (`C_jj = 0`, an input channel that never fires): `dead[p]` is set for
/// position `p` when `C(order[p], order[p]) == 0`. `info.damping * info.mean_diagonal` is what `H`'s live diagonal
/// adds. A device that builds `H` itself takes these from here, so its dead columns and damping are the CPU's.
template <class G>
damped_hessian_info damped_hessian_terms(const matrix_view<const G>& c, std::span<const std::size_t> order,
                                         double lambda, std::vector<char>& dead) {
  const std::size_t m = order.size();
  damped_hessian_info info;
  info.damping = lambda;
  double trace = 0.0;
  for (std::size_t j = 0; j < m; ++j) trace += static_cast<double>(c(j, j));
  info.mean_diagonal = m == 0 ? 0.0 : trace / static_cast<double>(m);
  dead.assign(m, 0);
  for (std::size_t p = 0; p < m; ++p) dead[p] = static_cast<double>(c(order[p], order[p])) == 0.0 ? 1 : 0;
  for (std::size_t q = 0; q < m; ++q) info.dead_columns += dead[q] ? 1 : 0;
  return info;
}

/// Writes the lower triangle of `H = C + lambda mean(diag C) I` into the
/// column-major `m x m` buffer `h` (leading dimension `ld >= m`; the strict
/// upper triangle is left alone; every entry computed in double, then
/// rounded to `S`), with rows and columns in the order `order`:
/// `h(p, q) = C(order[p], order[q])`. Only the lower triangle of `C` is read
/// (`C` is symmetric). Dead columns (see `damped_hessian_terms`) get a zero
/// row and column and `H_jj = 1`, and `dead[p]` is set for their positions,
/// so the caller can zero the matching weights. Column panels on up to
/// `threads` threads (a copy: the same result for any count).
template <class G, class S>
damped_hessian_info build_damped_hessian_into(const matrix_view<const G>& c, std::span<const std::size_t> order,
                                              double lambda, S* h, std::size_t ld, std::vector<char>& dead,
                                              unsigned threads = 1) {
  const std::size_t m = order.size();
  const damped_hessian_info info = damped_hessian_terms(c, order, lambda, dead);
  const double add = lambda * info.mean_diagonal;
  // panels of 64 columns taken by whichever thread is free (the columns shorten along the diagonal)
  constexpr std::size_t panel = 64;
  parallel_tasks((m + panel - 1) / panel, threads, [&](std::size_t t) {
    for (std::size_t q = t * panel; q < std::min(m, (t + 1) * panel); ++q) {
      const std::size_t oq = order[q];
      S* column = h + q * ld;
      for (std::size_t p = q; p < m; ++p) {
        const std::size_t op = order[p];
        const double v = op >= oq ? static_cast<double>(c(op, oq)) : static_cast<double>(c(oq, op));
        column[p] = (dead[p] || dead[q]) ? S(0) : static_cast<S>(v);
      }
      column[q] = dead[q] ? S(1) : static_cast<S>(static_cast<double>(c(oq, oq)) + add);
    }
  });
  return info;
}

}  // namespace ternq::linalg
