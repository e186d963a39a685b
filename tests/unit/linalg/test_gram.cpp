// SPDX-License-Identifier: MIT
// gram_accumulator: exact double products, the float chunks' bound, batching invariance, layouts, threads, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/linalg/gram.hpp"

TEST_CASE("integer activations: C is exact where float accumulation would round") {
  // Products up to 1e6 summed over 40,000 tokens reach 4e10: exact in double,
  // far beyond float's 24-bit significand.
  const std::size_t tokens = 40000, m = 6;
  ternq::testing::rng r(3);
  ternq::testing::row_matrix x(tokens, m);
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    for (Eigen::Index j = 0; j < x.cols(); ++j) x(t, j) = static_cast<float>(static_cast<int>(r.below(2001)) - 1000);
  }
  ternq::gram_accumulator acc(m, {.products = ternq::gram_products::double_products});
  ternq::gram_accumulator chunks(m);  // float_chunks: within the stated bound
  acc.add(x);
  chunks.add(x);
  CHECK(acc.tokens() == tokens);
  for (Eigen::Index a = 0; a < 6; ++a) {
    for (Eigen::Index b = 0; b < 6; ++b) {
      std::int64_t exact = 0;
      for (Eigen::Index t = 0; t < x.rows(); ++t) exact += std::int64_t(x(t, a)) * std::int64_t(x(t, b));
      CHECK(acc.matrix()(a, b) == static_cast<double>(exact));
      const double bound = 1025.0 * 0x1.0p-24 * std::sqrt(acc.matrix()(a, a) * acc.matrix()(b, b));
      CHECK(std::abs(chunks.matrix()(a, b) - static_cast<double>(exact)) <= bound);
    }
  }
}

TEST_CASE("float chunks against double products on LLM-like activations with outlier channels") {
  // 25x outlier channels, correlated channels, non-zero means; 600 features (2x2 tiles), 5000 tokens (5 chunks)
  const auto x = ternq::testing::llm_like_activations(5000, 600, 12);
  ternq::gram_accumulator exact(600, {.products = ternq::gram_products::double_products});
  ternq::gram_accumulator chunks(600, {.exec = ternq::cpu_exec{.threads = 1}});
  exact.add(x);
  chunks.add(x);
  const Eigen::MatrixXd& c = exact.matrix();
  const Eigen::MatrixXd d = chunks.matrix() - c;
  const Eigen::ArrayXd root = c.diagonal().array().sqrt();
  const Eigen::MatrixXd scaled = (d.array().abs() / (root.matrix() * root.matrix().transpose()).array()).matrix();
  MESSAGE("float chunks: max |dC_ij| / sqrt(C_ii C_jj) = ", scaled.maxCoeff(),
          ", ||dC||_F / ||C||_F = ", d.norm() / c.norm());
  CHECK(scaled.maxCoeff() <= 1025.0 * 0x1.0p-24);  // the bound of gram_products::float_chunks
  CHECK(scaled.maxCoeff() <= 1e-6);                // what is measured: a few 1e-7
  CHECK(d.norm() <= 3e-7 * c.norm());
  CHECK((chunks.matrix() - chunks.matrix().transpose()).norm() == 0.0);  // exactly symmetric
}

TEST_CASE("C does not depend on the thread count") {
  const auto x = ternq::testing::llm_like_activations(2100, 1100, 13);  // 3x3 tiles, three chunks
  for (auto products : {ternq::gram_products::float_chunks, ternq::gram_products::double_products}) {
    ternq::gram_accumulator one(1100, {.products = products, .exec = ternq::cpu_exec{.threads = 1}});
    one.add(x);
    for (unsigned threads : {2U, 3U}) {
      ternq::gram_accumulator other(1100, {.products = products, .exec = ternq::cpu_exec{.threads = threads}});
      other.add(x);
      CHECK(other.matrix() == one.matrix());
    }
  }
}

TEST_CASE("batching, layout and merging do not change C") {
  const auto x = ternq::testing::llm_like_activations(3000, 40, 4);  // > one internal chunk
  const ternq::gram_options exact{.products = ternq::gram_products::double_products};
  ternq::gram_accumulator whole(40, exact), batched(40, exact), transposed(40, exact), left(40, exact),
      right(40, exact);
  whole.add(x);
  for (Eigen::Index t0 = 0; t0 < x.rows(); t0 += 700) {
    batched.add(x.middleRows(t0, std::min<Eigen::Index>(700, x.rows() - t0)));
  }
  const Eigen::MatrixXf xt = x.transpose();  // features x tokens
  transposed.add_transposed(xt);
  left.add(x.topRows(1234));
  right.add(x.bottomRows(x.rows() - 1234));
  left.merge(right);

  const Eigen::MatrixXd reference = x.cast<double>().transpose() * x.cast<double>();
  const double scale = reference.norm();
  for (const auto* acc : {&whole, &batched, &transposed, &left}) {
    CHECK(acc->tokens() == 3000);
    CHECK((acc->matrix() - reference).norm() <= 1e-12 * scale);
    CHECK((acc->matrix() - acc->matrix().transpose()).norm() == 0.0);  // exactly symmetric
  }
  const auto v = whole.view();
  CHECK(v.rows() == 40);
  CHECK(v(3, 7) == whole.matrix()(3, 7));
}

TEST_CASE("a dead input channel gives a zero row and column") {
  ternq::testing::activation_spec spec;
  spec.dead_fraction = 0.2;
  const auto x = ternq::testing::llm_like_activations(500, 30, 6, spec);
  ternq::gram_accumulator acc(30);
  acc.add(x);
  int dead = 0;
  for (Eigen::Index j = 0; j < 30; ++j) {
    if (x.col(j).isZero(0)) {
      ++dead;
      CHECK(acc.matrix().row(j).isZero(0));
      CHECK(acc.matrix().col(j).isZero(0));
    }
  }
  CHECK(dead > 0);
}

TEST_CASE("gram_accumulator errors name the problem") {
  ternq::gram_accumulator acc(4);
  const Eigen::MatrixXf wrong = Eigen::MatrixXf::Ones(10, 5);
  CHECK_THROWS_WITH_AS(acc.add(wrong), "[ternq.shape_mismatch] gram_accumulator::add: batch has 5 features, expected 4",
                       ternq::error);
  Eigen::MatrixXf bad = Eigen::MatrixXf::Ones(10, 4);
  bad(7, 2) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(acc.add(bad), "[ternq.non_finite] gram_accumulator::add: Inf in activations at (7, 2)",
                       ternq::error);
  CHECK(acc.tokens() == 0);
  ternq::gram_accumulator other(3);
  CHECK_THROWS_WITH_AS(acc.merge(other), "[ternq.shape_mismatch] gram_accumulator::merge: 3 features, expected 4",
                       ternq::error);
  CHECK_THROWS_WITH_AS(ternq::gram_accumulator(0), "[ternq.empty_matrix] gram_accumulator: zero input features",
                       ternq::error);
}
