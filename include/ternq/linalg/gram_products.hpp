// SPDX-License-Identifier: MIT
// How a Gram accumulator forms the products of a batch (standard library only, so the CUDA accumulator shares it
// without Eigen).
#pragma once

namespace ternq {

/// How `gram_accumulator` forms the products of a batch.
enum class gram_products {
  /// The tokens of a batch in chunks of 1024: each chunk's `X_c^T X_c` in
  /// float (products and the chunk's sums; activations rounded to float),
  /// added to the double sum. About twice the speed of `double_products`
  /// (float SIMD lanes are twice as many). Error: each chunk's float sums give
  /// `|dC_ij| <= gamma_1025 sum_t |x_ti x_tj| <= 1025 * 2^-24 sqrt(C_ii C_jj)`
  /// (Cauchy-Schwarz, summed over chunks), at most `6.1e-5 sqrt(C_ii C_jj)`
  /// whatever the number of tokens and the outliers; measured on LLM-like
  /// activations with 25x outlier channels, below `3e-7 sqrt(C_ii C_jj)`
  /// and `1e-7 ||C||_F` (tests/unit/linalg/test_gram.cpp).
  float_chunks,
  /// Every product in double (exact for float activations) and every sum in
  /// double: for a realistic calibration run (1e6 tokens) the relative error
  /// of `C` stays near 1e-10 of its norm.
  double_products,
};

}  // namespace ternq
