// SPDX-License-Identifier: MIT
// One layer's quantization problem for the grid tests: weights and the Gram matrix of their inputs, either
// Gaussian or LLM-like (outlier input channels, channel means, heavy tails).
#pragma once

#include <cstddef>
#include <cstdint>

#include <Eigen/Core>

#include "llm_like.hpp"
#include "ternq/linalg/gram.hpp"

namespace ternq::testing {

/// The Gram matrix `X^T X` of `tokens` input rows of width `n`.
inline Eigen::MatrixXd gram_of(std::size_t tokens, std::size_t n, std::uint64_t seed, bool llm_like) {
  const row_matrix x = llm_like ? llm_like_activations(tokens, n, seed) : gaussian_matrix(tokens, n, seed + 500);
  gram_accumulator acc(n);
  acc.add(x);
  return acc.matrix();
}

/// `rows x cols` weights: LLM-like, or Gaussian with standard deviation 0.05.
inline row_matrix weights_of(std::size_t rows, std::size_t cols, std::uint64_t seed, bool llm_like) {
  return llm_like ? llm_like_weights(rows, cols, seed) : gaussian_matrix(rows, cols, seed, 0.05);
}

}  // namespace ternq::testing
