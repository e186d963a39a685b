// SPDX-License-Identifier: MIT
// Sequential calibration: quantize every linear layer from the activations of the already-quantized layers before it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "llama/forward.hpp"
#include "llama/model.hpp"

namespace ternq::llama {

/// What happened to one linear layer.
struct layer_result {
  std::size_t layer = 0;
  linear which = linear::q;
  std::size_t rows = 0;
  std::size_t cols = 0;
  double relative_weight_error = 0.0;  ///< E_w / ||W||^2
  double relative_output_error = 0.0;  ///< E_x / tr(W C W^T), C from the calibration activations
  double seconds = 0.0;                ///< time spent quantizing this layer
  ternary_matrix quantized;            ///< codes and grids, for packing (empty when kept)
  bool kept = false;                   ///< kept out of the ternary quantization (see `layer_keeper`)
};

/// The relative errors of replacing `w` by `kept` (dense): `||W - W'||^2 / ||W||^2`, and
/// `tr(D C D^T) / tr(W C W^T)` with `D = W - W'` when a Gram matrix `gram` is given (else 0).
inline void dense_errors(const matrix& w, const matrix& kept, const Eigen::MatrixXd& gram, layer_result& r) {
  const Eigen::MatrixXd wd = w.cast<double>();
  const Eigen::MatrixXd d = wd - kept.cast<double>();
  const double ww = wd.squaredNorm();
  r.relative_weight_error = ww > 0.0 ? d.squaredNorm() / ww : 0.0;
  if (gram.size() == 0) {
    r.relative_output_error = 0.0;
    return;
  }
  const double wcw = (wd * gram).cwiseProduct(wd).sum();
  r.relative_output_error = wcw > 0.0 ? (d * gram).cwiseProduct(d).sum() / wcw : 0.0;
}

/// Quantizes one weight matrix (`out x in`) given the Gram matrix of its
/// input activations (`in x in`).
using layer_quantizer =
    std::function<ternary_matrix(const matrix& w, const Eigen::MatrixXd& gram, std::size_t layer, linear which)>;

/// Decides whether a linear layer is kept out of the ternary quantization
/// (`--keep`). When it is, it replaces `w` in place by the values its stored
/// type holds and returns true; the layer is then not quantized.
using layer_keeper = std::function<bool(matrix& w, std::size_t layer, linear which)>;

/// Called after each layer is quantized, with its result and the count of
/// layers done and in all.
using layer_progress = std::function<void(const layer_result&, std::size_t done, std::size_t total)>;

/// Quantizes every linear layer of `m` in place (the forward pass on `exec`), GPTQ style: one forward
/// pass over the calibration batch, block by block; at each activation site
/// the Gram matrix `C = X^T X` of the inputs is accumulated, the layers that
/// read them (q/k/v, o, gate/up, down) are quantized with `quantize`, and
/// their weights are replaced by the dequantized ternary values before the
/// pass continues. Each layer's statistics therefore come from the model
/// with every earlier layer already quantized. Embeddings, norms and the
/// output head stay in floating point. A layer `keep` claims is rounded by
/// it instead of quantized (its errors are those of the rounding).
inline std::vector<layer_result> quantize_sequential(model& m, const batch& calibration,
                                                     const layer_quantizer& quantize,
                                                     const layer_progress& progress = {},
                                                     const layer_keeper& keep = {},
                                                     const cpu_exec& exec = {}) {
  std::vector<layer_result> results;
  const std::size_t total = m.layers.size() * all_linears.size();
  auto observer = [&](std::size_t index, activation_site site, const matrix& x, layer& weights) {
    gram_accumulator gram(static_cast<std::size_t>(x.cols()));
    gram.add(x);
    for (const linear which : consumers(site)) {
      matrix& w = weights.weight(which);
      if (keep) {
        const matrix original = w;
        if (keep(w, index, which)) {
          layer_result r;
          r.layer = index;
          r.which = which;
          r.rows = static_cast<std::size_t>(w.rows());
          r.cols = static_cast<std::size_t>(w.cols());
          r.kept = true;
          dense_errors(original, w, gram.matrix(), r);
          results.push_back(std::move(r));
          if (progress) progress(results.back(), results.size(), total);
          continue;
        }
      }
      const auto start = std::chrono::steady_clock::now();
      ternary_matrix q = quantize(w, gram.matrix(), index, which);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      layer_result r;
      r.layer = index;
      r.which = which;
      r.rows = static_cast<std::size_t>(w.rows());
      r.cols = static_cast<std::size_t>(w.cols());
      r.relative_weight_error = relative_weight_error(w, q);
      r.relative_output_error = relative_output_error(w, q, gram.matrix());
      r.seconds = seconds;
      ternq::dequantize(q, w);
      r.quantized = std::move(q);
      results.push_back(std::move(r));
      if (progress) progress(results.back(), results.size(), total);
    }
  };
  (void)final_hidden(m, calibration, observer, exec);
  return results;
}

}  // namespace ternq::llama
