// SPDX-License-Identifier: MIT
// AGA's 2x2 normal equations for one row-group and their solve with the degenerate rules (ALGORITHMS.md §2), free
// of Eigen: the CPU's AGA (aga.hpp) and the CUDA one share them.
#pragma once

#include <cmath>

#include "ternq/config.hpp"
#include "ternq/quant/atq.hpp"

namespace ternq {

/// The 2x2 normal equations of AGA for one row-group (ALGORITHMS.md §2):
///
///     [ t C t^T   1^T C t^T ] [alpha]   [ w C t^T ]
///     [ t C 1     1^T C 1   ] [ mu  ] = [ w C 1   ]
struct aga_system {
  double a11 = 0.0;  ///< t C t^T
  double a12 = 0.0;  ///< 1^T C t^T
  double a22 = 0.0;  ///< 1^T C 1
  double b1 = 0.0;   ///< w C t^T
  double b2 = 0.0;   ///< w C 1
};

/// The solved AGA grid of one row-group.
struct aga_outcome {
  atq_grid grid;
  bool fallback = false;  ///< the determinant vanished: `grid` is the fallback (ITF) grid
  bool flip = false;      ///< the solve gave `alpha < 0`: `grid.alpha` is its magnitude and the codes must be negated
};

/// A determinant at most this fraction of `a11 a22` counts as zero: by
/// Cauchy-Schwarz `0 <= det <= a11 a22` for a positive semi-definite `C`, so
/// the ratio measures how far `t` is from `1` under `C`; below 1e-9 the grid
/// carries about half of double's digits or fewer and the ITF grid is kept.
inline constexpr double aga_relative_determinant_floor = 1e-9;

/// Solves the AGA system by Cramer's rule; falls back to `fallback` when the
/// determinant vanishes relative to its terms (or anything is not finite),
/// and reports a negative scale as `flip` (ALGORITHMS.md §2 degenerate rules).
/// Host and device code share it (the CUDA itf_aga solves every group's system with it); every product is rounded
/// before it is added, so both give the same bits for the same system whether or not a compiler contracts.
TERNQ_HOST_DEVICE inline aga_outcome aga_solve(const aga_system& s, atq_grid fallback) {
  using detail::finite_value;
  using detail::rounded_product;
  const double scale = rounded_product(s.a11, s.a22);
  const double det = scale - rounded_product(s.a12, s.a12);
  aga_outcome out;
  if (!(det > aga_relative_determinant_floor * scale) || !finite_value(det) || !finite_value(s.b1) ||
      !finite_value(s.b2)) {
    out.grid = fallback;
    out.fallback = true;
    return out;
  }
  const double alpha = (rounded_product(s.a22, s.b1) - rounded_product(s.a12, s.b2)) / det;
  const double mu = (rounded_product(s.a11, s.b2) - rounded_product(s.a12, s.b1)) / det;
  out.grid = {detail::magnitude(alpha), mu};
  out.flip = alpha < 0.0;
  return out;
}

}  // namespace ternq
