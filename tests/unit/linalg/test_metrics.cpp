// SPDX-License-Identifier: MIT
// E_w and E_x: against an independent formulation from the activations, with permutations and zero norms.
#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include <Eigen/Core>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

TEST_CASE("E_x from the Gram matrix equals ||(W - What) X||^2 computed from X") {
  const auto w = ternq::testing::llm_like_weights(300, 96, 12);  // more rows than one metric block
  const auto x = ternq::testing::llm_like_activations(400, 96, 12);
  ternq::gram_accumulator acc(96, {.products = ternq::gram_products::double_products});  // C to 1e-15
  acc.add(x);
  const auto q = ternq::quantize(w, ternq::twn{.group_size = 32});
  const Eigen::MatrixXd what = ternq::eigen::dequantize(q).cast<double>();
  const Eigen::MatrixXd e = w.cast<double>() - what;
  const double direct = (e * x.cast<double>().transpose()).squaredNorm();
  const double energy = (w.cast<double>() * x.cast<double>().transpose()).squaredNorm();
  CHECK(ternq::output_error(w, q, acc.view()) == doctest::Approx(direct).epsilon(1e-10));
  CHECK(ternq::output_energy(w, acc.view()) == doctest::Approx(energy).epsilon(1e-10));
  CHECK(ternq::relative_output_error(w, q, acc.matrix()) == doctest::Approx(direct / energy).epsilon(1e-10));
  CHECK(ternq::weight_error(w, q) == doctest::Approx(e.squaredNorm()).epsilon(1e-12));
  CHECK(ternq::relative_weight_error(w, q) ==
        doctest::Approx(e.squaredNorm() / w.cast<double>().squaredNorm()).epsilon(1e-12));
}

TEST_CASE("metrics follow the permutation back to the original columns") {
  const auto w = ternq::testing::llm_like_weights(5, 8, 2);
  ternq::ternary_matrix q(5, 8, 4);
  // Quantize the column-reversed matrix by hand, then record the permutation.
  std::vector<std::size_t> perm = {7, 6, 5, 4, 3, 2, 1, 0};
  for (std::size_t i = 0; i < 5; ++i) {
    for (std::size_t j = 0; j < 8; ++j) {
      q.row_codes(i)[j] = w(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(perm[j])) > 0 ? 1 : -1;
    }
    q.scale(i, 0) = 0.02F;
    q.scale(i, 1) = 0.03F;
  }
  q.set_permutation(perm);
  const Eigen::MatrixXd d = ternq::eigen::dequantize(q).cast<double>();
  CHECK(ternq::weight_error(w, q) == doctest::Approx((w.cast<double>() - d).squaredNorm()).epsilon(1e-12));
  const Eigen::MatrixXd c = Eigen::MatrixXd::Identity(8, 8) * 2.0;
  CHECK(ternq::output_error(w, q, c) == doctest::Approx(2.0 * (w.cast<double>() - d).squaredNorm()).epsilon(1e-12));
}

TEST_CASE("relative errors of a zero matrix: 0 when reproduced, infinite otherwise") {
  const Eigen::MatrixXf zero = Eigen::MatrixXf::Zero(3, 8);
  const auto q = ternq::quantize(zero, ternq::absmean{});
  CHECK(ternq::relative_weight_error(zero, q) == 0.0);
  const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(8, 8);
  CHECK(ternq::relative_output_error(zero, q, identity) == 0.0);
  ternq::ternary_matrix off(3, 8, ternq::per_row);
  off.scale(0, 0) = 1.0F;
  off.row_codes(0)[0] = 1;
  CHECK(ternq::relative_weight_error(zero, off) == std::numeric_limits<double>::infinity());
}

TEST_CASE("metric shape errors") {
  const Eigen::MatrixXf w = Eigen::MatrixXf::Ones(3, 8);
  const ternq::ternary_matrix q(3, 7, ternq::per_row);
  CHECK_THROWS_WITH_AS(ternq::weight_error(w, q),
                       "[ternq.shape_mismatch] weight_error: weights are 3x8 but the ternary matrix is 3x7",
                       ternq::error);
  const auto good = ternq::quantize(w, ternq::absmean{});
  Eigen::MatrixXd c = Eigen::MatrixXd::Identity(8, 8);
  c(1, 1) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(ternq::output_error(w, good, c), "[ternq.non_finite] output_error: NaN in gram matrix at (1, 1)",
                       ternq::error);
}

TEST_CASE("E_x on several threads is the single-threaded value, bit for bit") {
  // 600 rows: three row blocks of the evaluation, shared out differently for each thread count.
  const auto w = ternq::testing::llm_like_weights(600, 96, 3);
  const auto x = ternq::testing::llm_like_activations(400, 96, 3);
  const Eigen::MatrixXd c = (x.transpose() * x).cast<double>();
  const ternq::ternary_matrix q = ternq::quantize(w, ternq::twn{.group_size = 32});
  const double one = ternq::relative_output_error(w, q, c);
  CHECK(one > 0.0);
  for (const unsigned threads : {2U, 3U, 8U}) {
    CAPTURE(threads);
    const ternq::cpu_exec exec{.threads = threads};
    CHECK(ternq::relative_output_error(w, q, c, exec) == one);
    CHECK(ternq::output_error(w, q, c, exec) == ternq::output_error(w, q, c));
    CHECK(ternq::output_energy(w, c, exec) == ternq::output_energy(w, c));
  }
}
