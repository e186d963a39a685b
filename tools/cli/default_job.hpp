// SPDX-License-Identifier: MIT
// The embedded default of ternq-quantize: a generated LLM-like layer and its activations, quantized and tabulated.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "cli/methods.hpp"
#include "llm_like.hpp"

namespace ternq::cli {

/// The methods the default job runs when none is named.
inline std::vector<std::string> default_job_methods() {
  return {"absmean",          "twn",  "optimal", "itf", "itf_aga", "gptq_itf_aga", "gptq_act_itf_aga",
          "gptq_ssr_itf_aga", "catq", "catq_std"};
}

/// Quantizes a generated 512 x 1024 LLM-like layer (non-zero row means,
/// heavy tails, outlier input channels; 2048 calibration tokens with outlier
/// channels) with `method`, or with every default method when it is empty,
/// and prints rel E_w, rel E_x and time per method. A CUDA device in `exec` must have been checked
/// (`require_device`).
inline int run_default_job(const std::string& method, std::size_t group_size, std::uint64_t seed,
                           const executor& exec) {
  constexpr std::size_t rows = 512, cols = 1024, tokens = 2048;
  const auto w = testing::llm_like_weights(rows, cols, seed);
  gram_accumulator gram(cols);
  gram.add(testing::llm_like_activations(tokens, cols, seed));
  const group_size_option g = group_size == 0 ? per_row : group_size_option(group_size);
  std::printf("ternq-quantize: embedded LLM-like layer %zux%zu (seed %llu), %zu calibration tokens, group size %s\n",
              rows, cols, static_cast<unsigned long long>(seed), tokens,
              group_size == 0 ? "per row" : std::to_string(group_size).c_str());
  std::printf("(quantize a real model with --model; see --help)\n\n");
  std::printf("%-20s %10s %10s %10s\n", "method", "rel E_w", "rel E_x", "time s");
  const auto names = method.empty() ? default_job_methods() : std::vector<std::string>{method};
  for (const auto& name : names) {
    const method_choice choice = parse_method(name, g, seed);
    const auto start = std::chrono::steady_clock::now();
    const ternary_matrix q = run_method(exec, choice, w, gram.matrix());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%-20s %10.5f %10.5f %10.3f\n", name.c_str(), relative_weight_error(w, q),
                relative_output_error(w, q, gram.matrix()), seconds);
  }
  return 0;
}

}  // namespace ternq::cli
