// SPDX-License-Identifier: MIT
// The full-precision target of sequential calibration: each layer aims at the unquantized model's output.
//
// Sequential calibration quantizes a layer from `X`, its inputs in the model whose earlier layers are already
// quantized, and minimizes `||X W^T - X Q^T||`: the layer copies its own weights on inputs that have drifted.
// With the unquantized model's inputs `R` for the same tokens, the layer can instead aim at what the full-precision
// model computes there, `||R W^T - X Q^T||`. Expanding in `Q`,
//
//     ||R W^T - X Q^T||^2 = tr(Q C Q^T) - 2 tr(Q X^T R W^T) + const,   C = X^T X,
//
// which is the ordinary objective `||(W' - Q) C^{1/2}||^2` (up to a constant) for the shifted weights
// `W' = W R^T X C^-1 = W + W (R - X)^T X C^-1`. So any quantizer that minimizes `tr((W - Q) C (W - Q)^T)` (the
// GPTQ driver, AGA, the scale fit) solves the new problem when given `W'` and the same `C`. `C` is damped as the
// driver damps it, `C + lambda mean(diag C) I`, and the second form is used, so equal inputs give `W' = W`
// exactly and the damping only shrinks the correction, never `W` itself.
#pragma once

#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <ternq/core/error.hpp>
#include <ternq/core/parallel.hpp>
#include <ternq/linalg/tasks.hpp>
#include <ternq/linalg/tiled_products.hpp>

#include "llama/model.hpp"

namespace ternq::llama {

/// The retarget of the layers that read one activation site: built once from `x` (`tokens x in`, the quantized
/// model's inputs), `reference` (the unquantized model's inputs for the same tokens) and `gram` (`x^T x`, as
/// accumulated for the quantizer), it holds `(R - X)^T X` and the factor of the damped Gram matrix
/// `gram + lambda mean(diag gram) I`, and `apply` moves each weight matrix that reads the site (see the file
/// comment). Equal inputs leave every `w` unchanged; so does an all-zero `x`.
class reference_retarget {
 public:
  reference_retarget(const matrix& reference, const matrix& x, const Eigen::MatrixXd& gram, double lambda,
                     const cpu_exec& exec = {}) {
    if (reference.rows() != x.rows() || reference.cols() != x.cols() || gram.rows() != x.cols() ||
        gram.cols() != x.cols()) {
      fail(errc::shape_mismatch, "reference_retarget: inputs ", x.rows(), "x", x.cols(), ", reference inputs ",
           reference.rows(), "x", reference.cols(), ", Gram ", gram.rows(), "x", gram.cols());
    }
    if (!(lambda > 0.0) || !std::isfinite(lambda)) {
      fail(errc::invalid_argument, "reference_retarget: the damping must be finite and > 0, got ", lambda);
    }
    columns_ = x.cols();
    threads_ = exec.thread_count();
    const double mean = gram.diagonal().mean();
    if (!(mean > 0.0)) return;  // the layers never see a non-zero input: nothing to aim at
    // (R - X)^T X in float GEMM tiles of a fixed shape (the same bits for any thread count), then widened.
    const Eigen::MatrixXf drift_t = (reference - x).transpose();
    Eigen::MatrixXf cross(x.cols(), x.cols());
    linalg::assign_product_by_row_tiles(cross, drift_t, x, threads_);
    cross_t_ = cross.cast<double>().transpose();
    Eigen::MatrixXd damped = gram;
    damped.diagonal().array() += lambda * mean;
    llt_.compute(damped);
    if (llt_.info() != Eigen::Success) {
      fail(errc::numerical, "reference_retarget: the damped Gram matrix of the layer's inputs (", x.cols(),
           " columns) is not positive definite");
    }
    active_ = true;
  }

  /// Replaces `w` (`out x in`) by `W + W (R - X)^T X (C + lambda mean(diag C) I)^-1`: the weights whose output
  /// on `x` is the ridge least-squares fit of `w`'s output on `reference`, pulled toward `w`.
  void apply(matrix& w) const {
    if (w.cols() != columns_) {
      fail(errc::shape_mismatch, "reference_retarget: weights with ", w.cols(), " columns for inputs of ", columns_);
    }
    if (!active_) return;
    // W' - W = W cross C_damped^-1, solved as C_damped (W' - W)^T = cross^T W^T (C_damped is symmetric): the
    // product by fixed row tiles, the two triangular solves by fixed bands of columns (output rows), in parallel
    // with the same bits for any thread count.
    const Eigen::MatrixXd wt = w.cast<double>().transpose();
    Eigen::MatrixXd shift_t(columns_, w.rows());
    linalg::assign_product_by_row_tiles(shift_t, cross_t_, wt, threads_);
    const Eigen::Index bands = (shift_t.cols() + linalg::product_tile - 1) / linalg::product_tile;
    linalg::parallel_tasks(static_cast<std::size_t>(bands), threads_, [&](std::size_t b) {
      const Eigen::Index c0 = static_cast<Eigen::Index>(b) * linalg::product_tile;
      auto band = shift_t.middleCols(c0, std::min(linalg::product_tile, shift_t.cols() - c0));
      llt_.solveInPlace(band);
    });
    w = (wt + shift_t).transpose().cast<float>();
  }

 private:
  Eigen::MatrixXd cross_t_;  ///< ((R - X)^T X)^T
  Eigen::LLT<Eigen::MatrixXd> llt_;
  Eigen::Index columns_ = 0;
  unsigned threads_ = 1;
  bool active_ = false;
};

/// One-shot `reference_retarget(reference, x, gram, lambda, exec).apply(w)`.
inline void retarget_to_reference(matrix& w, const matrix& reference, const matrix& x, const Eigen::MatrixXd& gram,
                                  double lambda, const cpu_exec& exec = {}) {
  if (w.cols() != x.cols()) {
    fail(errc::shape_mismatch, "retarget_to_reference: weights ", w.rows(), "x", w.cols(), " for inputs ", x.rows(),
         "x", x.cols());
  }
  reference_retarget(reference, x, gram, lambda, exec).apply(w);
}

/// `||x q^T - reference w^T||^2 / ||reference w^T||^2`: the output error of the quantized layer `q` on the
/// quantized model's inputs against the full-precision layer `w` on the full-precision inputs (0 when `w`'s
/// output is zero). Float products over fixed tiles of tokens, each tile's sums in double, added in tile order:
/// the same figure for any thread count, without the `tokens x out` outputs ever held whole.
inline double reference_output_error(const matrix& q, const matrix& x, const matrix& w, const matrix& reference,
                                     const cpu_exec& exec = {}) {
  if (q.rows() != w.rows() || q.cols() != w.cols() || x.cols() != q.cols() || reference.rows() != x.rows() ||
      reference.cols() != x.cols()) {
    fail(errc::shape_mismatch, "reference_output_error: quantized ", q.rows(), "x", q.cols(), ", original ", w.rows(),
         "x", w.cols(), ", inputs ", x.rows(), "x", x.cols(), ", reference inputs ", reference.rows(), "x",
         reference.cols());
  }
  const Eigen::Index tokens = x.rows();
  const auto tiles = static_cast<std::size_t>((tokens + linalg::product_tile - 1) / linalg::product_tile);
  std::vector<std::pair<double, double>> sums(tiles);  // (||target||^2, ||error||^2) per tile
  const Eigen::MatrixXf qt = q.transpose(), wt = w.transpose();
  linalg::for_each_row_tile(tokens, exec.thread_count(), [&](Eigen::Index r0, Eigen::Index h) {
    const Eigen::MatrixXf target = reference.middleRows(r0, h) * wt;
    const Eigen::MatrixXf got = x.middleRows(r0, h) * qt;
    sums[static_cast<std::size_t>(r0 / linalg::product_tile)] = {target.cast<double>().squaredNorm(),
                                                                 (got - target).cast<double>().squaredNorm()};
  });
  double norm = 0.0, error = 0.0;
  for (const auto& [n, e] : sums) {
    norm += n;
    error += e;
  }
  return norm > 0.0 ? error / norm : 0.0;
}

}  // namespace ternq::llama
