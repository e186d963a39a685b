// SPDX-License-Identifier: MIT
// The inverse of a symmetric positive definite matrix in its lower triangle: Eigen's Cholesky, then panel products.
#pragma once

#include <algorithm>
#include <cstddef>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "ternq/linalg/tasks.hpp"

namespace ternq::linalg {

/// Columns per panel of the triangular inverse and of the product below.
inline constexpr Eigen::Index inverse_panel = 256;

/// Replaces the lower triangle of the symmetric positive definite `a`
/// (only its lower triangle is read) by the lower triangle of `a^{-1}`;
/// the strictly upper triangle is left unspecified. Returns false, with `a`
/// unspecified, when the Cholesky factorization fails (not numerically
/// positive definite).
///
/// Steps, all through Eigen: `a = L L^T` in place (Eigen's LLT); then
/// `L^{-1}` panel by panel, each a triangular solve against the identity
/// restricted to the trailing rows (the rows above a panel of `L^{-1}` are
/// zero), `m^3 / 3` flops; then the lower triangle of
/// `a^{-1} = L^{-T} L^{-1}` panel by panel, `(L^{-1}[j:, j:])^T L^{-1}[j:, J]`,
/// a triangular-times-dense product, `m^3 / 3` flops. Panels are
/// independent tasks of fixed shape: parallel, and bit-identical for any
/// thread count. Needs one `m x m` scratch matrix for `L^{-1}`.
inline bool invert_spd_lower(Eigen::MatrixXd& a, unsigned threads) {
  const Eigen::Index m = a.rows();
  {
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>, Eigen::Lower> llt(a);
    if (llt.info() != Eigen::Success) return false;
  }
  const auto panels = static_cast<std::size_t>((m + inverse_panel - 1) / inverse_panel);
  Eigen::MatrixXd linv(m, m);
  parallel_tasks(panels, threads, [&](std::size_t p) {
    const Eigen::Index c0 = static_cast<Eigen::Index>(p) * inverse_panel;
    const Eigen::Index w = std::min(inverse_panel, m - c0);
    auto x = linv.block(c0, c0, m - c0, w);
    x.setZero();
    x.topRows(w).diagonal().setOnes();
    a.block(c0, c0, m - c0, m - c0).triangularView<Eigen::Lower>().solveInPlace(x);
  });
  parallel_tasks(panels, threads, [&](std::size_t p) {
    const Eigen::Index c0 = static_cast<Eigen::Index>(p) * inverse_panel;
    const Eigen::Index w = std::min(inverse_panel, m - c0);
    a.block(c0, c0, m - c0, w).noalias() =
        linv.block(c0, c0, m - c0, m - c0).transpose().triangularView<Eigen::Upper>() * linv.block(c0, c0, m - c0, w);
  });
  return true;
}

/// Swaps indices `q < p` of a symmetric matrix stored in its lower
/// triangle, touching only rows and columns from `first` on (the trailing
/// block `[first, m)`): the symmetric permutation `A <- S A S` with `S`
/// the transposition of `q` and `p`, restricted to that block. `O(m)`.
inline void swap_symmetric_lower(Eigen::MatrixXd& a, Eigen::Index first, Eigen::Index q, Eigen::Index p) {
  if (q == p) return;
  if (q > p) std::swap(q, p);
  const Eigen::Index m = a.rows();
  std::swap(a(q, q), a(p, p));
  for (Eigen::Index k = first; k < q; ++k) std::swap(a(q, k), a(p, k));
  for (Eigen::Index k = q + 1; k < p; ++k) std::swap(a(k, q), a(p, k));
  for (Eigen::Index k = p + 1; k < m; ++k) std::swap(a(k, q), a(k, p));
}

}  // namespace ternq::linalg
