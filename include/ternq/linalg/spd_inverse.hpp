// SPDX-License-Identifier: MIT
// The inverse of a symmetric positive definite matrix in its lower triangle: Eigen's Cholesky, then panel products.
#pragma once

#include <algorithm>
#include <cstddef>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "ternq/linalg/tasks.hpp"

namespace ternq::linalg {

/// Columns per panel of the inversion below.
inline constexpr Eigen::Index inverse_panel = 256;

/// Replaces the lower triangle of the symmetric positive definite `a`
/// (only its lower triangle is read) by the lower triangle of `a^{-1}`;
/// the strictly upper triangle is left unspecified. Returns false, with `a`
/// unspecified, when the Cholesky factorization fails (not numerically
/// positive definite).
///
/// Steps, all through Eigen: `a = L L^T` in place (Eigen's LLT), and `L^T`
/// mirrored into the upper triangle, which frees the strictly lower one.
/// Then column panel `J = [j, j + w)` of `a^{-1} = L^{-T} L^{-1}` restricted
/// to rows `j..m` (all the lower triangle needs) is
/// `L[j:, j:]^{-T} (L[j:, j:]^{-1} E)`, with `E` the identity columns `J`
/// on rows `j..m`: two triangular solves on the trailing block, which only
/// read the upper triangle (the rows above `j` of `L^{-1} E` are zero and
/// `L^{-T}` is upper triangular, so the trailing block suffices). Each
/// panel writes its part of the strictly lower triangle; the diagonal is
/// written last. `2 m^3 / 3` flops after the factorization, panels in
/// parallel (fixed shapes: bit-identical for any thread count), scratch
/// `m x 256` per thread and no second `m x m` matrix.
inline bool invert_spd_lower(Eigen::MatrixXd& a, unsigned threads) {
  const Eigen::Index m = a.rows();
  {
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>, Eigen::Lower> llt(a);
    if (llt.info() != Eigen::Success) return false;
  }
  a.triangularView<Eigen::StrictlyUpper>() = a.transpose();  // U = L^T, diagonal shared
  Eigen::VectorXd diagonal(m);
  const auto panels = static_cast<std::size_t>((m + inverse_panel - 1) / inverse_panel);
  parallel_tasks(panels, threads, [&](std::size_t p) {
    const Eigen::Index c0 = static_cast<Eigen::Index>(p) * inverse_panel;
    const Eigen::Index w = std::min(inverse_panel, m - c0);
    const auto u = a.block(c0, c0, m - c0, m - c0).triangularView<Eigen::Upper>();
    Eigen::MatrixXd x = Eigen::MatrixXd::Zero(m - c0, w);
    x.topRows(w).diagonal().setOnes();
    u.transpose().solveInPlace(x);  // L^{-1} E
    u.solveInPlace(x);              // L^{-T} L^{-1} E
    diagonal.segment(c0, w) = x.topRows(w).diagonal();
    a.block(c0, c0, m - c0, w).triangularView<Eigen::StrictlyLower>() = x.triangularView<Eigen::StrictlyLower>();
  });
  a.diagonal() = diagonal;
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
