// SPDX-License-Identifier: MIT
// A tiled Cholesky factorization through Eigen: fixed tiles in parallel, results independent of the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "ternq/linalg/tasks.hpp"

namespace ternq::linalg {

/// Rows and columns per tile of `cholesky_lower_by_tiles`.
inline constexpr Eigen::Index cholesky_tile = 256;

/// Replaces the lower triangle of the symmetric positive definite `a` (only
/// the lower triangle is read) by its Cholesky factor `L` (`a = L L^T`); the
/// strictly upper triangle is left unspecified. Returns false, with `a`
/// unspecified, when a diagonal tile has no factorization (not numerically
/// positive definite).
///
/// The right-looking tiled algorithm, every step an Eigen call on fixed
/// `cholesky_tile` tiles: for each column of tiles `k`, Eigen's LLT of the
/// diagonal tile, the triangular solve `A[i, k] <- A[i, k] L[k, k]^{-T}` of
/// each tile below it, then the trailing update `A[i, j] -= A[i, k]
/// A[j, k]^T` of every tile on or below the diagonal (a symmetric rank
/// update on diagonal tiles, a GEMM elsewhere). Tiles of one step are
/// independent and processed by whichever thread is free, so the result is
/// bit-identical for any thread count; `m^3 / 3` flops, no scratch.
template <class S>
bool cholesky_lower_by_tiles(Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>& a, unsigned threads) {
  using matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
  const Eigen::Index m = a.rows();
  const Eigen::Index t = cholesky_tile;
  std::vector<std::pair<Eigen::Index, Eigen::Index>> tiles;
  for (Eigen::Index k0 = 0; k0 < m; k0 += t) {
    const Eigen::Index kw = std::min(t, m - k0);
    {
      Eigen::Ref<matrix> diagonal = a.block(k0, k0, kw, kw);
      const Eigen::LLT<Eigen::Ref<matrix>, Eigen::Lower> llt(diagonal);
      if (llt.info() != Eigen::Success) return false;
    }
    const Eigen::Index r0 = k0 + kw;  // the trailing block [r0, m)
    if (r0 == m) break;
    const auto count = static_cast<std::size_t>((m - r0 + t - 1) / t);
    const auto lkk = a.block(k0, k0, kw, kw).template triangularView<Eigen::Lower>();
    parallel_tasks(count, threads, [&](std::size_t i) {
      const Eigen::Index i0 = r0 + static_cast<Eigen::Index>(i) * t;
      auto panel = a.block(i0, k0, std::min(t, m - i0), kw);
      lkk.transpose().template solveInPlace<Eigen::OnTheRight>(panel);  // X L^T = A[i, k]
    });
    tiles.clear();
    for (std::size_t i = 0; i < count; ++i) {
      for (std::size_t j = 0; j <= i; ++j)
        tiles.emplace_back(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
    }
    parallel_tasks(tiles.size(), threads, [&](std::size_t q) {
      const Eigen::Index i0 = r0 + tiles[q].first * t;
      const Eigen::Index j0 = r0 + tiles[q].second * t;
      const Eigen::Index h = std::min(t, m - i0);
      const Eigen::Index w = std::min(t, m - j0);
      if (i0 == j0) {
        a.block(i0, i0, h, h).template selfadjointView<Eigen::Lower>().rankUpdate(a.block(i0, k0, h, kw), S(-1));
      } else {
        a.block(i0, j0, h, w).noalias() -= a.block(i0, k0, h, kw) * a.block(j0, k0, w, kw).transpose();
      }
    });
  }
  return true;
}

/// Reverses the order of the rows and of the columns of the square `a` in
/// place: `a(p, q) <- a(m - 1 - p, m - 1 - q)`. A lower triangular factor of
/// the reversed matrix becomes the upper triangular `V` of `A = V V^T`.
/// Column pairs in parallel.
template <class S>
void reverse_in_place(Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>& a, unsigned threads) {
  const Eigen::Index m = a.cols();
  parallel_for(static_cast<std::size_t>((m + 1) / 2), threads, [&](std::size_t q0, std::size_t q1) {
    for (auto q = static_cast<Eigen::Index>(q0); q < static_cast<Eigen::Index>(q1); ++q) {
      const Eigen::Index o = m - 1 - q;
      if (q == o) {
        a.col(q).reverseInPlace();
      } else {
        a.col(q).reverseInPlace();
        a.col(o).reverseInPlace();
        a.col(q).swap(a.col(o));
      }
    }
  });
}

}  // namespace ternq::linalg
