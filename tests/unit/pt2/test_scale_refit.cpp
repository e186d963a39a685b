// SPDX-License-Identifier: MIT
// refit_scales_to_output against a generic weighted least-squares solve (QR of the whitened design), its
// monotonicity, permutations, degenerate groups, fp16 grids and refusals.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "layer_problems.hpp"
#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;

using ternq::testing::gram_of;
using ternq::testing::weights_of;

/// Row i's scales by an independent formulation: the design matrix X (cols x groups) holds the row's codes of
/// group g in column g, at the original columns; minimize ||R (w - X a)|| with C = R^T R by Householder QR.
Eigen::VectorXd least_squares_scales(const ternq::ternary_matrix& q, const row_matrix& w, const Eigen::MatrixXd& c,
                                     std::size_t i) {
  const auto n = static_cast<Eigen::Index>(q.cols());
  const std::size_t groups = q.groups_per_row();
  Eigen::MatrixXd x = Eigen::MatrixXd::Zero(n, static_cast<Eigen::Index>(groups));
  for (std::size_t j = 0; j < q.cols(); ++j) {
    x(static_cast<Eigen::Index>(q.original_column(j)), static_cast<Eigen::Index>(q.layout().group_of(j))) =
        q.row_codes(i)[j];
  }
  const Eigen::MatrixXd r = c.llt().matrixU();
  const Eigen::VectorXd wi = w.row(static_cast<Eigen::Index>(i)).transpose().cast<double>();
  return (r * x).householderQr().solve(r * wi);
}

double output_error(const row_matrix& w, const ternq::ternary_matrix& q, const Eigen::MatrixXd& c) {
  return ternq::output_error(w, q, c);
}

}  // namespace

TEST_CASE("the joint scales equal a generic weighted least-squares solve, and E_x never increases") {
  for (std::uint64_t seed : {1ULL, 2ULL, 3ULL}) {
    for (bool llm : {false, true}) {
      CAPTURE(seed);
      CAPTURE(llm);
      const std::size_t rows = 150, cols = 96;  // two chunks of rows; groups of 32
      const row_matrix w = weights_of(rows, cols, seed, llm);
      const Eigen::MatrixXd c = gram_of(400, cols, seed, llm);
      for (const ternq::block_order& order : std::vector<ternq::block_order>{ternq::sequential{}, ternq::act_order{}}) {
        ternq::ternary_matrix q =
            ternq::quantize(w, ternq::gptq{.grid = ternq::optimal_symmetric{.group_size = 32}, .order = order}, c);
        const ternq::ternary_matrix original = q;
        const double before = output_error(w, q, c);
        const auto report = ternq::refit_scales_to_output(q, w, c);
        const double after = output_error(w, q, c);
        CHECK(report.output_error_before == doctest::Approx(before).epsilon(1e-8));
        CHECK(report.output_error_after == doctest::Approx(after).epsilon(1e-8));
        CHECK(after <= before);
        CHECK(after < before);  // it finds something: the driver never fits a row's groups together
        CHECK(report.rows_changed > 0);
        // codes, layout and order kept
        CHECK(std::equal(q.codes().begin(), q.codes().end(), original.codes().begin()));
        CHECK(q.has_permutation() == original.has_permutation());
        for (std::size_t i = 0; i < rows; i += 37) {
          const Eigen::VectorXd expected = least_squares_scales(q, w, c, i);
          for (std::size_t g = 0; g < q.groups_per_row(); ++g) {
            CHECK(q.scale(i, g) == doctest::Approx(expected(static_cast<Eigen::Index>(g))).epsilon(1e-5));
          }
        }
      }
    }
  }
}

TEST_CASE("a row step by step: no row's error increases; a fitted matrix is a fixed point") {
  const row_matrix w = weights_of(20, 64, 9, true);
  const Eigen::MatrixXd c = gram_of(300, 64, 9, true);
  ternq::ternary_matrix q = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 16});
  const ternq::ternary_matrix start = q;
  (void)ternq::refit_scales_to_output(q, w, c);
  const auto row_error = [&](const ternq::ternary_matrix& m, std::size_t i) {
    Eigen::VectorXd e(64);
    for (std::size_t j = 0; j < 64; ++j) {
      e(static_cast<Eigen::Index>(j)) =
          static_cast<double>(w(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j))) - m.value(i, j);
    }
    return e.dot(c * e);
  };
  for (std::size_t i = 0; i < 20; ++i) CHECK(row_error(q, i) <= row_error(start, i) * (1 + 1e-12));
  const ternq::ternary_matrix fitted = q;
  const auto again = ternq::refit_scales_to_output(q, w, c);
  CHECK(again.output_error_after == doctest::Approx(again.output_error_before).epsilon(1e-9));
  for (std::size_t k = 0; k < q.scales().size(); ++k) {
    CHECK(q.scales()[k] == doctest::Approx(fitted.scales()[k]).epsilon(1e-5));
  }
}

TEST_CASE("degenerate input: all-zero groups and rows, dead Gram columns, a last short group") {
  row_matrix w = weights_of(12, 70, 4, false);  // groups 32, 32, 6
  w.row(3).setZero();
  w.block(5, 32, 1, 32).setZero();
  Eigen::MatrixXd c = gram_of(200, 70, 4, false);
  c.row(10).setZero();  // a dead input channel
  c.col(10).setZero();
  ternq::ternary_matrix q = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 32});
  const double before = output_error(w, q, c);
  const auto report = ternq::refit_scales_to_output(q, w, c);
  CHECK(report.output_error_after <= before * (1 + 1e-12));
  for (const float s : q.scales()) CHECK(std::isfinite(s));
  for (std::size_t j = 0; j < 70; ++j) CHECK(q.value(3, j) == 0.0F);   // the zero row stays zero
  for (std::size_t j = 32; j < 64; ++j) CHECK(q.value(5, j) == 0.0F);  // and the zero group
}

TEST_CASE("fp16 grids: the stored scales are fp16 values and the error is judged at them") {
  const row_matrix w = weights_of(40, 128, 6, true);
  const Eigen::MatrixXd c = gram_of(300, 128, 6, true);
  ternq::ternary_matrix q = ternq::quantize(
      w, ternq::gptq{.grid = ternq::optimal_aga{.group_size = 64}, .precision = ternq::grid_precision::fp16}, c);
  const double before = output_error(w, q, c);
  (void)ternq::refit_scales_to_output(q, w, c, ternq::grid_precision::fp16);
  CHECK(output_error(w, q, c) <= before);
  for (const float s : q.scales()) CHECK(s == ternq::round_to(ternq::grid_precision::fp16, s));
}

TEST_CASE("offsets and mismatched shapes are refused") {
  const row_matrix w = weights_of(8, 64, 2, false);
  const Eigen::MatrixXd c = gram_of(100, 64, 2, false);
  ternq::ternary_matrix asym = ternq::quantize(w, ternq::itf{.group_size = 32});
  CHECK_THROWS_WITH_AS(ternq::refit_scales_to_output(asym, w, c), doctest::Contains("offsets"), ternq::error);
  ternq::ternary_matrix q = ternq::quantize(w, ternq::twn{.group_size = 32});
  const Eigen::MatrixXd small = c.topLeftCorner(32, 32);
  CHECK_THROWS_WITH_AS(ternq::refit_scales_to_output(q, w, small), doctest::Contains("Gram matrix 32x32"),
                       ternq::error);
  const row_matrix other = weights_of(9, 64, 2, false);
  CHECK_THROWS_WITH_AS(ternq::refit_scales_to_output(q, other, c), doctest::Contains("weights 9x64"), ternq::error);
}
