// SPDX-License-Identifier: MIT
// The inverse of a symmetric positive definite matrix in its lower triangle: tiled Cholesky, trtri and lauum on Eigen.
#pragma once

#include <algorithm>
#include <cstddef>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "ternq/linalg/cholesky.hpp"
#include "ternq/linalg/tasks.hpp"

namespace ternq::linalg {

/// Replaces the lower triangle of the symmetric positive definite `a`
/// (only its lower triangle is read) by the lower triangle of `a^{-1}`;
/// the strictly upper triangle is left unspecified. Returns false, with `a`
/// unspecified, when the Cholesky factorization fails (not numerically
/// positive definite).
///
/// Three tiled steps on fixed `cholesky_tile` tiles, each an Eigen call
/// per tile (GEMMs for all but `O(m^2 t)` of the flops): the Cholesky
/// factor `a = L L^T` (`cholesky_lower_by_tiles`); `X = L^{-1}` in place,
/// tile column by tile column from the last, `X[>j, j] = -X[>j, >j] L[>j, j]
/// X[j, j]` with `X[j, j] = L[j, j]^{-1}` (LAPACK's trtri); then
/// `a^{-1} = X^T X`, tile column by tile column from the first,
/// `(X^T X)[i, j] = X[>=i, i]^T X[>=i, j]` (LAPACK's lauum). The tiles of a
/// tile column are computed into an `m x 256` scratch panel on any thread
/// and then written back, so the result is bit-identical for any thread
/// count. `m^3` flops in all.
inline bool invert_spd_lower(Eigen::MatrixXd& a, unsigned threads) {
  const Eigen::Index m = a.rows();
  if (!cholesky_lower_by_tiles(a, threads)) return false;
  const Eigen::Index t = cholesky_tile;
  const Eigen::Index count = (m + t - 1) / t;
  Eigen::MatrixXd panel;
  // X = L^{-1}, lower triangular, the strictly upper part of diagonal tiles zeroed
  for (Eigen::Index jt = count - 1; jt >= 0; --jt) {
    const Eigen::Index j0 = jt * t;
    const Eigen::Index w = std::min(t, m - j0);
    const Eigen::Index j1 = j0 + w;
    Eigen::MatrixXd xjj = Eigen::MatrixXd::Identity(w, w);
    a.block(j0, j0, w, w).triangularView<Eigen::Lower>().solveInPlace(xjj);
    if (j1 < m) {
      panel.resize(m - j1, w);
      parallel_tasks(static_cast<std::size_t>(count - 1 - jt), threads, [&](std::size_t task) {
        const Eigen::Index i0 = j1 + static_cast<Eigen::Index>(task) * t;
        const Eigen::Index h = std::min(t, m - i0);
        // -(X[i, j+1..i] L[j+1..i, j]) X[j, j]
        const Eigen::MatrixXd y = a.block(i0, j1, h, i0 + h - j1) * a.block(j1, j0, i0 + h - j1, w);
        panel.middleRows(i0 - j1, h).noalias() = -(y * xjj.triangularView<Eigen::Lower>());
      });
      a.block(j1, j0, m - j1, w) = panel;
    }
    a.block(j0, j0, w, w) = xjj.triangularView<Eigen::Lower>();
  }
  // a^{-1} = X^T X, lower triangle
  for (Eigen::Index jt = 0; jt < count; ++jt) {
    const Eigen::Index j0 = jt * t;
    const Eigen::Index w = std::min(t, m - j0);
    panel.resize(m - j0, w);
    parallel_tasks(static_cast<std::size_t>(count - jt), threads, [&](std::size_t task) {
      const Eigen::Index i0 = j0 + static_cast<Eigen::Index>(task) * t;
      const Eigen::Index h = std::min(t, m - i0);
      panel.middleRows(i0 - j0, h).noalias() = a.block(i0, i0, m - i0, h).transpose() * a.block(i0, j0, m - i0, w);
    });
    a.block(j0, j0, m - j0, w) = panel;
  }
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
