// SPDX-License-Identifier: MIT
// gram_accumulator: exact sums, batching invariance, layouts, merging, errors.
#include <doctest/doctest.h>

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
  ternq::gram_accumulator acc(m);
  acc.add(x);
  CHECK(acc.tokens() == tokens);
  for (Eigen::Index a = 0; a < 6; ++a) {
    for (Eigen::Index b = 0; b < 6; ++b) {
      std::int64_t exact = 0;
      for (Eigen::Index t = 0; t < x.rows(); ++t) exact += std::int64_t(x(t, a)) * std::int64_t(x(t, b));
      CHECK(acc.matrix()(a, b) == static_cast<double>(exact));
    }
  }
}

TEST_CASE("batching, layout and merging do not change C") {
  const auto x = ternq::testing::llm_like_activations(3000, 40, 4);  // > one internal chunk
  ternq::gram_accumulator whole(40), batched(40), transposed(40), left(40), right(40);
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
