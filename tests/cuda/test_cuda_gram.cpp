// SPDX-License-Identifier: MIT
// The device Gram accumulator against the CPU's gram_accumulator, within the error bound both satisfy. Part of
// ternq_tests_cuda, which exits 77 (skipped) without a device.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <doctest/doctest.h>

#include <ternq/adapters/eigen.hpp>
#include <ternq/linalg.hpp>

#include "cuda_quant_runner.hpp"
#include "llm_like.hpp"

namespace {

using ternq::testing::row_matrix;

/// Counts the entries of `a` and `b` further apart than `bound_per_unit * sqrt(C_ii C_jj)` (of `b`).
std::size_t outside_bound(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, double bound_per_unit) {
  std::size_t bad = 0;
  for (Eigen::Index j = 0; j < b.cols(); ++j) {
    for (Eigen::Index i = 0; i < b.rows(); ++i) {
      if (!(std::abs(a(i, j) - b(i, j)) <= bound_per_unit * std::sqrt(b(i, i) * b(j, j)) + 1e-300)) ++bad;
    }
  }
  return bad;
}

/// The runner's `features x features` result as an Eigen matrix.
Eigen::MatrixXd square(const std::vector<double>& c, std::size_t features) {
  const auto m = static_cast<Eigen::Index>(features);
  return Eigen::Map<const Eigen::MatrixXd>(c.data(), m, m);
}

ternq::matrix_view<const float> view_of(const row_matrix& x) {
  return ternq::row_major(x.data(), static_cast<std::size_t>(x.rows()), static_cast<std::size_t>(x.cols()));
}

}  // namespace

TEST_CASE("CUDA Gram accumulation equals the CPU's within the bound both satisfy, over several batches and chunks") {
  for (const std::size_t features : {1, 300, 1024}) {
    CAPTURE(features);
    // 700 + 1500 + 3 tokens: batches that end inside a chunk of 1024 and a tiny one; LLM-like outlier channels
    const row_matrix a = ternq::testing::llm_like_activations(700, features, 1);
    const row_matrix b = ternq::testing::llm_like_activations(1500, features, 2);
    const row_matrix c = ternq::testing::llm_like_activations(3, features, 3);
    const std::vector<ternq::matrix_view<const float>> batches{view_of(a), view_of(b), view_of(c)};
    for (const auto products : {ternq::gram_products::float_chunks, ternq::gram_products::double_products}) {
      ternq::gram_accumulator cpu(features, {.products = products});
      for (const auto& x : batches) cpu.add(x);
      const Eigen::MatrixXd gpu = square(ternq::testing::cuda::gram_on_device(batches, products), features);
      // float chunks: |dC_ij| <= 1025 * 2^-24 sqrt(C_ii C_jj) each; double: (tokens + 1) * 2^-53 each
      const double bound = products == ternq::gram_products::float_chunks ? 2.0 * 1025.0 * std::ldexp(1.0, -24)
                                                                          : 2.0 * 2204.0 * std::ldexp(1.0, -53);
      CHECK(outside_bound(gpu, cpu.matrix(), bound) == 0);
      CHECK((gpu - gpu.transpose()).cwiseAbs().maxCoeff() == 0.0);
    }
  }
}

TEST_CASE("CUDA Gram accumulation from a device batch with padded rows") {
  const std::size_t tokens = 1100, features = 257, ld = 260;
  const row_matrix x = ternq::testing::llm_like_activations(tokens, features, 9);
  std::vector<float> padded(tokens * ld, 1e30F);  // the padding must never be read
  for (std::size_t t = 0; t < tokens; ++t) {
    for (std::size_t j = 0; j < features; ++j) {
      padded[t * ld + j] = x(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(j));
    }
  }
  ternq::gram_accumulator cpu(features);
  cpu.add(x);
  const Eigen::MatrixXd gpu = square(
      ternq::testing::cuda::gram_from_device_batch(padded, tokens, features, ld, ternq::gram_products::float_chunks),
      features);
  CHECK(outside_bound(gpu, cpu.matrix(), 2.0 * 1025.0 * std::ldexp(1.0, -24)) == 0);
}

TEST_CASE("CUDA Gram accumulation refuses bad batches with the place named") {
  row_matrix x = ternq::testing::llm_like_activations(40, 16, 4);
  x(33, 5) = std::numeric_limits<float>::infinity();
  const std::vector<ternq::matrix_view<const float>> host{view_of(x)};
  CHECK_THROWS_AS(ternq::testing::cuda::gram_on_device(host, ternq::gram_products::float_chunks), ternq::error);
  const std::span<const float> flat(x.data(), 40 * 16);
  CHECK_THROWS_WITH_AS(
      ternq::testing::cuda::gram_from_device_batch(flat, 40, 16, 16, ternq::gram_products::float_chunks),
      doctest::Contains("(33, 5)"), ternq::error);
  // A refused device batch adds nothing, even where its first chunk is finite (2000 tokens: the NaN is in the
  // second chunk of 1024).
  const row_matrix good = ternq::testing::llm_like_activations(2000, 16, 6);
  row_matrix bad = good;
  bad(1500, 3) = std::numeric_limits<float>::quiet_NaN();
  bool refused = false;
  std::uint64_t tokens_after = 0;
  const std::vector<double> after = ternq::testing::cuda::gram_after_refused_batch(
      std::span<const float>(good.data(), 2000 * 16), std::span<const float>(bad.data(), 2000 * 16), 2000, 16, refused,
      tokens_after);
  CHECK(refused);
  CHECK(tokens_after == 2000);
  CHECK(after == ternq::testing::cuda::gram_from_device_batch(std::span<const float>(good.data(), 2000 * 16), 2000, 16,
                                                              16, ternq::gram_products::float_chunks));
  const row_matrix finite = x.topRows(2);
  const row_matrix y = ternq::testing::llm_like_activations(4, 17, 5);
  const std::vector<ternq::matrix_view<const float>> mixed{view_of(finite), view_of(y)};
  CHECK_THROWS_AS(ternq::testing::cuda::gram_on_device(mixed, ternq::gram_products::float_chunks), ternq::error);
}
