// SPDX-License-Identifier: MIT
// The scales of a symmetric ternary matrix re-fitted jointly per row to the layer's output error, codes fixed.
//
// The blockwise driver fits each group's scale when the group is quantized, against weights that later error
// compensation keeps changing; the groups of a row are never fitted together against the original weights.
// With the codes fixed, the output error of row i, (w - sum_g a_g t_g)^T C (w - sum_g a_g t_g), is a quadratic in
// the row's scales a: A a = b with A_gh = t_g^T C t_h and b_g = t_g^T C w (t_g: the row's codes on group g, zero
// elsewhere). Its solution is the best symmetric grid for those codes under the full Gram matrix, so the
// layer's output error E_x never increases (a row whose solution is not better keeps its scales).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/QR>

#include "ternq/core/adapt.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/grid_precision.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/quant/scale_refit_report.hpp"

namespace ternq {

namespace detail {
/// Rows re-fitted together: bounds the `rows x cols` temporaries and the `rows x groups^2` systems.
inline constexpr std::size_t scale_refit_rows = 128;
}  // namespace detail

/// Re-fits every scale of the symmetric ternary matrix `q` (codes, groups
/// and column permutation kept) to minimize the output error
/// `tr((W - Q) C (W - Q)^T)` for the weights `w` (`rows x cols`) and the
/// Gram matrix `gram` (`cols x cols`, of the original column order). The
/// scales of a row are solved jointly (`A a = b`, see the file comment);
/// with `precision` fp16 they are rounded after the solve. A row keeps its
/// scales unless the new ones lower its error, so E_x never increases.
/// Rows run on `exec`'s threads, each computed as on one thread.
/// Refused: offsets (`unsupported`), shapes that disagree (`shape_mismatch`).
template <class T, class G>
scale_refit_report refit_scales_to_output(ternary_matrix& q, const matrix_view<const T>& w,
                                          const matrix_view<const G>& gram,
                                          grid_precision precision = grid_precision::fp32, const cpu_exec& exec = {}) {
  detail::require_refit_shapes(q, w.rows(), w.cols(), gram.rows(), gram.cols());
  using mat = Eigen::MatrixXd;
  const std::size_t rows = q.rows(), n = q.cols();
  const group_layout& layout = q.layout();
  const std::size_t groups = layout.count();
  // Everything in stored column order, where groups are contiguous.
  mat cp(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  for (std::size_t a = 0; a < n; ++a) {
    for (std::size_t b = 0; b < n; ++b) {
      cp(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) =
          static_cast<double>(gram(q.original_column(a), q.original_column(b)));
    }
  }
  scale_refit_report report;
  std::vector<double> before(rows, 0.0), after(rows, 0.0);
  std::vector<char> changed(rows, 0);
  const std::size_t chunks = (rows + detail::scale_refit_rows - 1) / detail::scale_refit_rows;
  parallel_for(chunks, exec.thread_count(), [&](std::size_t c0, std::size_t c1) {
    for (std::size_t c = c0; c < c1; ++c) {
      const std::size_t r0 = c * detail::scale_refit_rows;
      const std::size_t rn = std::min(rows, r0 + detail::scale_refit_rows) - r0;
      const auto rr = static_cast<Eigen::Index>(rn);
      mat wp(rr, static_cast<Eigen::Index>(n)), tp(rr, static_cast<Eigen::Index>(n));
      for (std::size_t i = 0; i < rn; ++i) {
        const auto codes = q.row_codes(r0 + i);
        for (std::size_t j = 0; j < n; ++j) {
          wp(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) =
              static_cast<double>(w(r0 + i, q.original_column(j)));
          tp(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = static_cast<double>(codes[j]);
        }
      }
      const mat wc = wp * cp;  // rows x n
      // a[i] is row i's system, b its right-hand side.
      std::vector<mat> a(rn, mat::Zero(static_cast<Eigen::Index>(groups), static_cast<Eigen::Index>(groups)));
      std::vector<Eigen::VectorXd> b(rn, Eigen::VectorXd::Zero(static_cast<Eigen::Index>(groups)));
      for (std::size_t h = 0; h < groups; ++h) {
        const auto hb = static_cast<Eigen::Index>(layout.begin(h)), hs = static_cast<Eigen::Index>(layout.size(h));
        const mat m = tp.middleCols(hb, hs) * cp.middleRows(hb, hs);  // rows x n: (C t_h)^T per row
        for (std::size_t g = 0; g < groups; ++g) {
          const auto gb = static_cast<Eigen::Index>(layout.begin(g)), gs = static_cast<Eigen::Index>(layout.size(g));
          const Eigen::VectorXd v = tp.middleCols(gb, gs).cwiseProduct(m.middleCols(gb, gs)).rowwise().sum();
          for (std::size_t i = 0; i < rn; ++i) {
            a[i](static_cast<Eigen::Index>(g), static_cast<Eigen::Index>(h)) = v(static_cast<Eigen::Index>(i));
          }
        }
        const Eigen::VectorXd bh = tp.middleCols(hb, hs).cwiseProduct(wc.middleCols(hb, hs)).rowwise().sum();
        for (std::size_t i = 0; i < rn; ++i) b[i](static_cast<Eigen::Index>(h)) = bh(static_cast<Eigen::Index>(i));
      }
      const Eigen::VectorXd wcw = wp.cwiseProduct(wc).rowwise().sum();
      for (std::size_t i = 0; i < rn; ++i) {
        const std::size_t row = r0 + i;
        Eigen::VectorXd old(static_cast<Eigen::Index>(groups));
        for (std::size_t g = 0; g < groups; ++g) old(static_cast<Eigen::Index>(g)) = q.scale(row, g);
        const auto error = [&](const Eigen::VectorXd& s) {
          return wcw(static_cast<Eigen::Index>(i)) - 2.0 * b[i].dot(s) + s.dot(a[i] * s);
        };
        before[row] = error(old);
        after[row] = before[row];
        // Groups whose codes are all zero have no say (their row and column of A vanish): solve the others.
        std::vector<Eigen::Index> active;
        for (std::size_t g = 0; g < groups; ++g) {
          if (a[i](static_cast<Eigen::Index>(g), static_cast<Eigen::Index>(g)) > 0.0) {
            active.push_back(static_cast<Eigen::Index>(g));
          }
        }
        if (active.empty()) continue;
        const auto k = static_cast<Eigen::Index>(active.size());
        mat as(k, k);
        Eigen::VectorXd bs(k);
        for (Eigen::Index x = 0; x < k; ++x) {
          bs(x) = b[i](active[static_cast<std::size_t>(x)]);
          for (Eigen::Index y = 0; y < k; ++y) {
            as(x, y) = a[i](active[static_cast<std::size_t>(x)], active[static_cast<std::size_t>(y)]);
          }
        }
        Eigen::VectorXd solved;
        const Eigen::LDLT<mat> ldlt(as);
        if (ldlt.info() == Eigen::Success && ldlt.isPositive() && ldlt.rcond() > 1e-12) {
          solved = ldlt.solve(bs);
        } else {
          solved = as.completeOrthogonalDecomposition().solve(bs);  // a singular metric: the least-norm optimum
        }
        Eigen::VectorXd next = old;
        for (Eigen::Index x = 0; x < k; ++x) {
          // the error is judged at the value that will be stored
          const double s = static_cast<double>(round_to(precision, static_cast<float>(solved(x))));
          next(active[static_cast<std::size_t>(x)]) = s;
        }
        if (!next.allFinite()) continue;
        const double e = error(next);
        if (!(e < before[row])) continue;
        after[row] = e;
        changed[row] = 1;
        for (std::size_t g = 0; g < groups; ++g) q.scale(row, g) = static_cast<float>(next(static_cast<Eigen::Index>(g)));
      }
    }
  });
  for (std::size_t r = 0; r < rows; ++r) {
    report.output_error_before += before[r];
    report.output_error_after += after[r];
    report.rows_changed += changed[r] != 0 ? 1 : 0;
  }
  return report;
}

/// `refit_scales_to_output` for any matrix backend the library adapts (Eigen, xtensor, spans, views).
template <class W, class G>
requires(!a_matrix_view<W>)
scale_refit_report refit_scales_to_output(ternary_matrix& q, const W& w, const G& gram,
                                          grid_precision precision = grid_precision::fp32, const cpu_exec& exec = {}) {
  return refit_scales_to_output(q, as_const_view(w), as_const_view(gram), precision, exec);
}

}  // namespace ternq
