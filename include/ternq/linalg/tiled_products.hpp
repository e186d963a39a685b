// SPDX-License-Identifier: MIT
// Matrix products split into tiles of a fixed shape, run in parallel with results independent of the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "ternq/linalg/tasks.hpp"

namespace ternq::linalg {

/// Rows (and columns) per tile of the products below. Eigen's GEMM picks its
/// blocking, and so its summation order, from the shape of each call, so
/// the tiling must be a function of the problem alone: tiles of this fixed
/// size, processed by whichever thread is free, give the same bits for any
/// thread count (see tests).
inline constexpr Eigen::Index product_tile = 256;

/// Calls `band(r0, h)` for the fixed bands of `product_tile` rows covering
/// `[0, rows)`, in parallel; each band's product is then one Eigen GEMM.
template <class Band>
void for_each_row_tile(Eigen::Index rows, unsigned threads, Band&& band) {
  const auto tiles = static_cast<std::size_t>((rows + product_tile - 1) / product_tile);
  parallel_tasks(tiles, threads, [&](std::size_t t) {
    const Eigen::Index r0 = static_cast<Eigen::Index>(t) * product_tile;
    band(r0, std::min(product_tile, rows - r0));
  });
}

/// `target -= lhs * rhs` (`n x k` times `k x p`), one Eigen GEMM per
/// fixed band of `product_tile` rows.
template <class Target, class Lhs, class Rhs>
void subtract_product_by_row_tiles(Eigen::MatrixBase<Target>& target, const Eigen::MatrixBase<Lhs>& lhs,
                                   const Eigen::MatrixBase<Rhs>& rhs, unsigned threads) {
  if (target.rows() == 0 || target.cols() == 0) return;
  for_each_row_tile(target.rows(), threads, [&](Eigen::Index r0, Eigen::Index h) {
    target.middleRows(r0, h).noalias() -= lhs.middleRows(r0, h) * rhs;
  });
}

/// `target = lhs * rhs` (`n x k` times `k x p`), one Eigen GEMM per fixed
/// band of `product_tile` rows.
template <class Target, class Lhs, class Rhs>
void assign_product_by_row_tiles(Eigen::MatrixBase<Target>& target, const Eigen::MatrixBase<Lhs>& lhs,
                                 const Eigen::MatrixBase<Rhs>& rhs, unsigned threads) {
  if (target.rows() == 0 || target.cols() == 0) return;
  for_each_row_tile(target.rows(), threads, [&](Eigen::Index r0, Eigen::Index h) {
    target.middleRows(r0, h).noalias() = lhs.middleRows(r0, h) * rhs;
  });
}

/// The symmetric downdate `A[f, f] -= K K^T` of the trailing block that
/// starts at `f` (`K` has `A.rows() - f` rows), written to the lower
/// triangle only (the strictly upper part of diagonal tiles is written too
/// and must be ignored): one GEMM per `product_tile`-square tile on or
/// below the diagonal, `p^2 k` flops in all for `p` trailing rows.
template <class Sym, class K>
void lower_downdate_by_tiles(Eigen::MatrixBase<Sym>& a, Eigen::Index f, const Eigen::MatrixBase<K>& k,
                             unsigned threads) {
  const Eigen::Index p = a.rows() - f;
  if (p <= 0) return;
  const auto t = static_cast<std::size_t>((p + product_tile - 1) / product_tile);
  // task index -> (row tile, column tile) with column <= row, in row-major order of the lower triangle
  std::vector<std::pair<Eigen::Index, Eigen::Index>> tiles;
  tiles.reserve(t * (t + 1) / 2);
  for (std::size_t r = 0; r < t; ++r) {
    for (std::size_t c = 0; c <= r; ++c) tiles.emplace_back(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c));
  }
  parallel_tasks(tiles.size(), threads, [&](std::size_t i) {
    const Eigen::Index r0 = tiles[i].first * product_tile;
    const Eigen::Index c0 = tiles[i].second * product_tile;
    const Eigen::Index h = std::min(product_tile, p - r0);
    const Eigen::Index w = std::min(product_tile, p - c0);
    a.block(f + r0, f + c0, h, w).noalias() -= k.middleRows(r0, h) * k.middleRows(c0, w).transpose();
  });
}

}  // namespace ternq::linalg
