// SPDX-License-Identifier: MIT
// Activation-aware Grid Alignment: the grid minimizing the output error for frozen codes (ALGORITHMS.md §2).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include <Eigen/Core>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"
#include "ternq/quant/aga_solve.hpp"
#include "ternq/quant/atq.hpp"

namespace ternq {

/// The AGA system of one row-group against the `g' x g'` metric `c` (the
/// Gram block `C[B, B]`, or `P^{-1}` inside the GPTQ driver). The research
/// form of one group; `aga_align_rows` computes the same for many rows with
/// matrix products.
template <class T, class Metric>
aga_system aga_system_of(std::span<const T> w, std::span<const std::int8_t> t, const Eigen::MatrixBase<Metric>& c) {
  const auto n = static_cast<Eigen::Index>(w.size());
  if (t.size() != w.size() || c.rows() != n || c.cols() != n) {
    fail(errc::shape_mismatch, "aga_system_of: ", w.size(), " weights, ", t.size(), " codes and a ", c.rows(), "x",
         c.cols(), " metric");
  }
  Eigen::VectorXd wd(n), td(n);
  for (Eigen::Index j = 0; j < n; ++j) {
    wd(j) = static_cast<double>(w[static_cast<std::size_t>(j)]);
    td(j) = t[static_cast<std::size_t>(j)];
  }
  const Eigen::VectorXd ct = c.template cast<double>() * td;
  const Eigen::VectorXd c1 = c.template cast<double>().rowwise().sum();
  return {td.dot(ct), ct.sum(), c1.sum(), wd.dot(ct), wd.dot(c1)};
}

/// AGA on one row-group: solves the system for the frozen codes `t`
/// (negating them when the scale comes out negative) and returns the grid;
/// `fallback` (normally the ITF grid) is kept when the determinant vanishes.
template <class T, class Metric>
aga_outcome aga_closed_form(std::span<const T> w, std::span<std::int8_t> t, const Eigen::MatrixBase<Metric>& c,
                            atq_grid fallback) {
  const aga_outcome out = aga_solve(aga_system_of(w, std::span<const std::int8_t>(t), c), fallback);
  if (out.flip) {
    for (auto& x : t) x = static_cast<std::int8_t>(-x);
  }
  return out;
}

/// AGA vectorized over the rows of one group (ALGORITHMS.md §2): with `W`
/// (`rows x g'`, double), codes `T` (same shape, as double) and the metric
/// `C`, the products `T C`, `C 1` and `W C 1` give every row's system at
/// once. `out[r].grid` holds row `r`'s fallback grid on entry; on return
/// `out[r]` is row `r`'s outcome (`flip`: negate that row's codes). Returns
/// the number of fallbacks. Rows are independent, so callers split a matrix
/// into fixed row chunks and get the same bits for any thread count.
template <class WBlock, class TBlock, class Metric>
std::size_t aga_align_rows(const Eigen::MatrixBase<WBlock>& w, const Eigen::MatrixBase<TBlock>& t,
                           const Eigen::MatrixBase<Metric>& c, std::span<aga_outcome> out) {
  const Eigen::Index rows = w.rows();
  TERNQ_ASSERT(t.rows() == rows && t.cols() == w.cols() && c.rows() == w.cols() && c.cols() == w.cols());
  TERNQ_ASSERT(out.size() == static_cast<std::size_t>(rows));
  const Eigen::MatrixXd tc = t * c;                                // T C
  const Eigen::VectorXd c1 = c.rowwise().sum();                    // C 1
  const double a22 = c1.sum();                                     // 1^T C 1
  const Eigen::VectorXd a11 = tc.cwiseProduct(t).rowwise().sum();  // t C t^T per row
  const Eigen::VectorXd a12 = tc.rowwise().sum();                  // t C 1 per row
  const Eigen::VectorXd b1 = tc.cwiseProduct(w).rowwise().sum();   // w C t^T per row (C symmetric)
  const Eigen::VectorXd b2 = w * c1;                               // w C 1 per row
  std::size_t fallbacks = 0;
  for (Eigen::Index r = 0; r < rows; ++r) {
    auto& o = out[static_cast<std::size_t>(r)];
    o = aga_solve({a11(r), a12(r), a22, b1(r), b2(r)}, o.grid);
    fallbacks += o.fallback ? 1 : 0;
  }
  return fallbacks;
}

}  // namespace ternq
