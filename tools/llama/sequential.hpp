// SPDX-License-Identifier: MIT
// Sequential calibration: quantize every linear layer from the activations of the already-quantized layers before it.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "llama/forward.hpp"
#include "llama/model.hpp"
#include "llama/reference_target.hpp"

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

/// Seconds one block spent in each stage (the streaming pipeline adds loading and writing).
struct block_times {
  double load = 0.0;      ///< reading and widening the block's weights
  double forward = 0.0;   ///< the forward pass over the calibration batch, Gram and quantization excluded
  double gram = 0.0;      ///< accumulating Gram matrices
  double quantize = 0.0;  ///< the quantizers (and --keep rounding) with the layers' error figures
  double write = 0.0;     ///< storing the block's results

  block_times& operator+=(const block_times& o) noexcept {
    load += o.load;
    forward += o.forward;
    gram += o.gram;
    quantize += o.quantize;
    write += o.write;
    return *this;
  }
};

/// The full-precision reference of sequential calibration (`--fp-target`): the hidden state the unquantized model
/// has entering the next block, carried beside the quantized model's. With it every layer is quantized toward the
/// unquantized layer's output on the unquantized inputs (llama/reference_target.hpp), not toward its own weights
/// on the inputs the quantized layers before it produce.
struct fp_reference {
  matrix h;               ///< tokens x dim, the unquantized model's hidden state, advanced block by block
  double damping = 0.01;  ///< lambda of the damped Gram matrix in the retarget (the driver's damping)
};

namespace detail {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A layer's quantization target when it is not its own weights (the fp reference): `retarget` moves the weights
/// to the target before they are quantized, and `output_error(original, dequantized)` is the relative `E_x` the
/// layer reports, against the unquantized layer.
struct layer_target {
  std::function<void(matrix&)> retarget;
  std::function<double(const matrix& original, const matrix& dequantized)> output_error;
};

/// Quantizes (or keeps) one linear layer of block `index` in place, from the Gram matrix of its inputs (empty
/// for data-free methods, whose output error is then reported as -1).
/// With `target`, a layer that is not kept is first moved to its quantization target, and its errors are against
/// its original weights: `E_w` directly, `E_x` by `target->output_error`.
inline layer_result quantize_one(matrix& w, const Eigen::MatrixXd& gram, std::size_t index, linear which,
                                 const layer_quantizer& quantize, const layer_keeper& keep, const cpu_exec& exec,
                                 const layer_target* target = nullptr) {
  layer_result r;
  r.layer = index;
  r.which = which;
  r.rows = static_cast<std::size_t>(w.rows());
  r.cols = static_cast<std::size_t>(w.cols());
  const auto start = std::chrono::steady_clock::now();
  if (keep) {
    const matrix original = w;
    if (keep(w, index, which)) {
      r.kept = true;
      dense_errors(original, w, gram, r);
      if (gram.size() == 0) r.relative_output_error = -1.0;
      r.seconds = seconds_since(start);
      return r;
    }
  }
  if (target == nullptr) {
    ternary_matrix q = quantize(w, gram, index, which);
    r.seconds = seconds_since(start);
    r.relative_weight_error = relative_weight_error(w, q);
    r.relative_output_error = gram.size() == 0 ? -1.0 : relative_output_error(w, q, gram, exec);
    ternq::dequantize(q, w);
    r.quantized = std::move(q);
    return r;
  }
  const matrix original = w;
  target->retarget(w);
  ternary_matrix q = quantize(w, gram, index, which);
  r.seconds = seconds_since(start);
  r.relative_weight_error = relative_weight_error(original, q);
  ternq::dequantize(q, w);
  r.relative_output_error = target->output_error(original, w);
  r.quantized = std::move(q);
  return r;
}

}  // namespace detail

/// Quantizes the seven linear layers of block `index` (weights `w`, updated in place to their dequantized values)
/// GPTQ style, from the hidden state `h` entering the block (updated in place to the state leaving it): at each
/// activation site the Gram matrix `C = X^T X` of the inputs is accumulated, the layers that read them (q/k/v, o,
/// gate/up, down) are quantized with `quantize`, and their weights are replaced by the dequantized ternary values
/// before the pass continues, so every layer's statistics come from the block with its earlier layers already
/// quantized. A layer `keep` claims is rounded by it instead (its errors are those of the rounding). `progress`
/// is told the running count from `done_before` out of `total`. `times` (optional) receives the split.
///
/// With `reference` the block first runs unquantized on `reference->h` (advancing it), keeping the inputs of each
/// site; every layer that is not kept is then retargeted to the unquantized output before it is quantized, and
/// its errors are against the unquantized layer: `E_w` against its original weights, `E_x` the relative
/// `||X Q^T - R W^T||^2` of `reference_output_error` (R: the unquantized inputs).
inline std::vector<layer_result> quantize_block(const config& cfg, std::size_t index, layer& w, matrix& h,
                                                const batch& calibration, const layer_quantizer& quantize,
                                                const layer_progress& progress = {}, const layer_keeper& keep = {},
                                                const cpu_exec& exec = {}, std::size_t done_before = 0,
                                                std::size_t total = all_linears.size(), block_times* times = nullptr,
                                                fp_reference* reference = nullptr) {
  std::vector<layer_result> results;
  block_times t;
  const auto start = std::chrono::steady_clock::now();
  // The unquantized block's inputs at each site (one calibration batch each), when a reference is carried.
  std::array<matrix, 4> reference_inputs;
  if (reference != nullptr) {
    layer unquantized = w;
    block_forward(
        cfg, index, unquantized, reference->h, calibration,
        [&](std::size_t, activation_site site, const matrix& x, layer&) {
          reference_inputs[static_cast<std::size_t>(site)] = x;
        },
        exec);
  }
  auto observer = [&](std::size_t, activation_site site, const matrix& x, layer& weights) {
    const auto gram_start = std::chrono::steady_clock::now();
    gram_accumulator gram(static_cast<std::size_t>(x.cols()), {.exec = exec});
    gram.add(x);
    const Eigen::MatrixXd& c = gram.matrix();
    t.gram += detail::seconds_since(gram_start);
    const matrix& r = reference_inputs[static_cast<std::size_t>(site)];
    // Built once per site, for every layer that reads it (the factor of the damped Gram matrix is shared).
    std::optional<reference_retarget> retarget_site;
    if (reference != nullptr) retarget_site.emplace(r, x, c, reference->damping, exec);
    for (const linear which : consumers(site)) {
      // The quantizer and the layer's error figures: what the forward pass does not do.
      const auto quantize_start = std::chrono::steady_clock::now();
      if (reference == nullptr) {
        results.push_back(detail::quantize_one(weights.weight(which), c, index, which, quantize, keep, exec));
      } else {
        const detail::layer_target target{
            .retarget = [&](matrix& m) { retarget_site->apply(m); },
            .output_error = [&](const matrix& original,
                                const matrix& q) { return reference_output_error(q, x, original, r, exec); }};
        results.push_back(detail::quantize_one(weights.weight(which), c, index, which, quantize, keep, exec, &target));
      }
      t.quantize += detail::seconds_since(quantize_start);
      if (progress) progress(results.back(), done_before + results.size(), total);
    }
  };
  block_forward(cfg, index, w, h, calibration, observer, exec);
  t.forward = detail::seconds_since(start) - t.gram - t.quantize;
  if (times != nullptr) *times += t;
  return results;
}

/// Quantizes the seven linear layers of block `index` without calibration data (data-free methods): each on its
/// own, in the order of `all_linears`; output errors are reported as -1.
inline std::vector<layer_result> quantize_block_data_free(std::size_t index, layer& w, const layer_quantizer& quantize,
                                                          const layer_progress& progress = {},
                                                          const layer_keeper& keep = {}, std::size_t done_before = 0,
                                                          std::size_t total = all_linears.size(),
                                                          block_times* times = nullptr) {
  std::vector<layer_result> results;
  const Eigen::MatrixXd none;
  for (const linear which : all_linears) {
    const auto start = std::chrono::steady_clock::now();
    results.push_back(detail::quantize_one(w.weight(which), none, index, which, quantize, keep, cpu_exec{.threads = 1}));
    if (times != nullptr) times->quantize += detail::seconds_since(start);
    if (progress) progress(results.back(), done_before + results.size(), total);
  }
  return results;
}

/// Quantizes every linear layer of `m` in place (the forward pass on `exec`): `quantize_block` on each block in
/// turn, the hidden state of the calibration batch passed from block to block. Embeddings, norms and the output
/// head stay in floating point. `fp_target` carries the unquantized model beside it as every block's reference
/// (`quantize_block`), with damping `fp_damping`.
inline std::vector<layer_result> quantize_sequential(model& m, const batch& calibration,
                                                     const layer_quantizer& quantize,
                                                     const layer_progress& progress = {}, const layer_keeper& keep = {},
                                                     const cpu_exec& exec = {}, bool fp_target = false,
                                                     double fp_damping = 0.01) {
  std::vector<layer_result> results;
  const std::size_t total = m.layers.size() * all_linears.size();
  matrix h = embed(m, calibration);
  std::optional<fp_reference> reference;
  if (fp_target) reference = fp_reference{.h = h, .damping = fp_damping};
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    auto block = quantize_block(m.cfg, l, m.layers[l], h, calibration, quantize, progress, keep, exec, results.size(),
                                total, nullptr, reference ? &*reference : nullptr);
    for (auto& r : block) results.push_back(std::move(r));
  }
  return results;
}

}  // namespace ternq::llama
