// SPDX-License-Identifier: MIT
// The forward pass of a model read block by block: each decoder block is loaded (widened to fp32) once and run
// over every batch before the next is loaded, so evaluating a model needs one block and the batches' hidden states
// in memory, never the whole model.
#pragma once

#include <cstddef>
#include <vector>

#include <ternq/core/parallel.hpp>

#include "llama/assemble.hpp"
#include "llama/forward.hpp"
#include "llama/model.hpp"
#include "llama/source.hpp"

namespace ternq::llama {

/// The final normed hidden states of each batch of `batches` (`tokens x dim` each), block `l` being
/// `load_block(l)` (a `layer`, or a `packed_layer` of packed_model.hpp), held only while it runs. Every batch keeps
/// its own shapes through every product, so each result equals `final_hidden` of the whole model on that batch,
/// bit for bit.
template <class LoadBlock>
std::vector<matrix> final_hidden_streaming(const model_source& source, const std::vector<batch>& batches,
                                           const cpu_exec& exec, LoadBlock&& load_block) {
  std::vector<matrix> h;
  h.reserve(batches.size());
  for (const batch& b : batches) h.push_back(embed(source, b));
  for (std::size_t l = 0; l < source.cfg().n_layers; ++l) {
    auto w = load_block(l);
    for (std::size_t k = 0; k < batches.size(); ++k) {
      block_forward(source.cfg(), l, w, h[k], batches[k], no_observer{}, exec);
    }
  }
  const vector norm = source.final_norm();
  for (matrix& x : h) x = rms_norm(x, norm, source.cfg().norm_eps, exec);
  return h;
}

/// The same with each block widened to fp32 (`model_source::block`).
inline std::vector<matrix> final_hidden_streaming(const model_source& source, const std::vector<batch>& batches,
                                                  const cpu_exec& exec = {}) {
  return final_hidden_streaming(source, batches, exec, [&](std::size_t l) { return source.block(l); });
}

/// The output matrix, `vocab x dim`: the classifier, or the embedding when they are tied.
inline matrix output_matrix(const model_source& source) {
  if (auto c = source.classifier()) return std::move(*c);
  return source.embedding();
}

}  // namespace ternq::llama
