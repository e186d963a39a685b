// SPDX-License-Identifier: MIT
// Quantization error metrics E_w and E_x, absolute and relative (ALGORITHMS.md §0).
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/dequantize.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq {

namespace detail {

template <class T>
void require_same_shape(const matrix_view<const T>& w, const ternary_matrix& q, const char* context) {
  require_nonempty(w, context, "weight matrix");
  if (w.rows() != q.rows() || w.cols() != q.cols()) {
    fail(errc::shape_mismatch, context, ": weights are ", w.rows(), "x", w.cols(), " but the ternary matrix is ",
         q.rows(), "x", q.cols());
  }
}

/// `num / den`, with 0/0 = 0 and x/0 = +inf for x > 0 (a zero reference
/// matrix is reproduced exactly or not at all).
inline double relative(double num, double den) noexcept {
  if (den > 0.0) return num / den;
  return num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
}

/// Rows per block of the E_x evaluation: bounds scratch memory to
/// `2 * block * m` doubles whatever the layer height.
inline constexpr std::size_t metric_row_block = 256;

/// `sum_i e_i C e_i^T` over the rows `e_i` of `rows_of(i0, n)` (a dense
/// double block), computed block by block with one GEMM each. The blocks are
/// shared out over `threads` threads and their sums added in block order, so
/// the result does not depend on the thread count.
template <class C, class RowBlock>
double trace_quadratic(const matrix_view<const C>& gram, std::size_t rows, RowBlock&& rows_of, unsigned threads = 1) {
  const auto c = linalg::map(gram);
  const Eigen::MatrixXd cd = c.template cast<double>();
  const std::size_t blocks = (rows + metric_row_block - 1) / metric_row_block;
  std::vector<double> sums(blocks, 0.0);
  parallel_for(blocks, threads, [&](std::size_t b0, std::size_t b1) {
    Eigen::MatrixXd e, ec;
    for (std::size_t b = b0; b < b1; ++b) {
      const std::size_t i0 = b * metric_row_block;
      const std::size_t n = std::min(metric_row_block, rows - i0);
      rows_of(i0, n, e);
      ec.noalias() = e * cd;
      sums[b] = ec.cwiseProduct(e).sum();
    }
  });
  double total = 0.0;
  for (const double x : sums) total += x;
  return total;
}

}  // namespace detail

/// `E_w = ||W - What||_F^2`.
template <class W>
double weight_error(const W& w, const ternary_matrix& q) {
  const auto v = as_const_view(w);
  detail::require_same_shape(v, q, "weight_error");
  double total = 0.0;
  for (std::size_t i = 0; i < q.rows(); ++i) {
    for (std::size_t j = 0; j < q.cols(); ++j) {
      const double d = static_cast<double>(v(i, q.original_column(j))) - static_cast<double>(q.value(i, j));
      total += d * d;
    }
  }
  return total;
}

/// `E_w / ||W||_F^2`.
template <class W>
double relative_weight_error(const W& w, const ternary_matrix& q) {
  const auto v = as_const_view(w);
  const double num = weight_error(v, q);
  double den = 0.0;
  for (std::size_t i = 0; i < v.rows(); ++i) {
    for (std::size_t j = 0; j < v.cols(); ++j) den += static_cast<double>(v(i, j)) * static_cast<double>(v(i, j));
  }
  return detail::relative(num, den);
}

/// `E_x = tr((W - What) C (W - What)^T) = ||(W - What) X||_F^2` for the Gram matrix `C = X X^T`, on `exec`'s
/// threads (one unless given; the result does not depend on their number).
template <class W, class G>
double output_error(const W& w, const ternary_matrix& q, const G& gram, const cpu_exec& exec = cpu_exec{.threads = 1}) {
  const auto v = as_const_view(w);
  const auto c = as_const_view(gram);
  detail::require_same_shape(v, q, "output_error");
  require_gram_for(c, v.cols(), "output_error");
  const auto wm = linalg::map(v);
  return detail::trace_quadratic(
      c, q.rows(),
      [&](std::size_t i0, std::size_t n, Eigen::MatrixXd& e) {
        e = wm.middleRows(static_cast<Eigen::Index>(i0), static_cast<Eigen::Index>(n)).template cast<double>();
        for (std::size_t r = 0; r < n; ++r) {
          for (std::size_t j = 0; j < q.cols(); ++j) {
            e(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(q.original_column(j))) -=
                static_cast<double>(q.value(i0 + r, j));
          }
        }
      },
      exec.thread_count());
}

/// `tr(W C W^T) = ||W X||_F^2`, the denominator of the relative output error.
template <class W, class G>
double output_energy(const W& w, const G& gram, const cpu_exec& exec = cpu_exec{.threads = 1}) {
  const auto v = as_const_view(w);
  const auto c = as_const_view(gram);
  require_gram_for(c, v.cols(), "output_energy");
  const auto wm = linalg::map(v);
  return detail::trace_quadratic(
      c, v.rows(),
      [&](std::size_t i0, std::size_t n, Eigen::MatrixXd& e) {
        e = wm.middleRows(static_cast<Eigen::Index>(i0), static_cast<Eigen::Index>(n)).template cast<double>();
      },
      exec.thread_count());
}

/// `E_x / tr(W C W^T)`.
template <class W, class G>
double relative_output_error(const W& w, const ternary_matrix& q, const G& gram, const cpu_exec& exec = cpu_exec{.threads = 1}) {
  return detail::relative(output_error(w, q, gram, exec), output_energy(w, gram, exec));
}

}  // namespace ternq
