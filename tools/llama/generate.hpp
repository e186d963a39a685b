// SPDX-License-Identifier: MIT
// Greedy decoding (for checking a model end to end against known output).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "llama/forward.hpp"

namespace ternq::llama {

/// Extends `prompt` by `steps` tokens, each the arg-max of the next-token
/// logits. The whole prefix is recomputed at every step: quadratic, but the
/// models this is for are tiny and the code stays obviously right.
inline std::vector<std::int32_t> greedy_decode(const model& m, std::vector<std::int32_t> prompt, std::size_t steps) {
  for (std::size_t s = 0; s < steps && prompt.size() < m.cfg.seq_len; ++s) {
    batch b;
    b.sequences = 1;
    b.length = prompt.size();
    b.tokens = prompt;
    const matrix h = final_hidden(m, b, no_observer{});
    const Eigen::VectorXf last = m.output() * h.row(h.rows() - 1).transpose();
    Eigen::Index best = 0;
    last.maxCoeff(&best);
    prompt.push_back(static_cast<std::int32_t>(best));
  }
  return prompt;
}

}  // namespace ternq::llama
