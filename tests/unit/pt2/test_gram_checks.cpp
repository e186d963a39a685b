// SPDX-License-Identifier: MIT
// Gram matrices the methods rely on: symmetric, finite, PSD within a tolerance; an all-zero Gram gives the data-free
// answer.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <string>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;

Eigen::MatrixXd gram_of(const row_matrix& x) {
  ternq::gram_accumulator acc(static_cast<std::size_t>(x.cols()));
  acc.add(x);
  return acc.matrix();
}

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const ternq::error& e) {
    return e.what();
  }
  return "(no error)";
}

/// A symmetric matrix with eigenvalues `1 .. m` except the last, `negative` (the finding: an indefinite "Gram").
Eigen::MatrixXd indefinite(Eigen::Index m, double negative, std::uint64_t seed) {
  const row_matrix g = ternq::testing::gaussian_matrix(static_cast<std::size_t>(m), static_cast<std::size_t>(m), seed);
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(g.cast<double>());
  const Eigen::MatrixXd q = qr.householderQ();
  Eigen::VectorXd lambda = Eigen::VectorXd::LinSpaced(m, 1.0, static_cast<double>(m));
  lambda(m - 1) = negative;
  Eigen::MatrixXd c = q * lambda.asDiagonal() * q.transpose();
  return (c + c.transpose()) / 2;
}

}  // namespace

TEST_CASE("require_psd: a real Gram matrix and the all-zero one pass; an indefinite one is named") {
  const Eigen::MatrixXd c = gram_of(ternq::testing::llm_like_activations(64, 32, 1));
  CHECK_NOTHROW(ternq::linalg::require_psd(ternq::as_const_view(c), "t"));
  const Eigen::MatrixXd rank_deficient = gram_of(ternq::testing::llm_like_activations(8, 32, 2));  // rank 8 < 32
  CHECK_NOTHROW(ternq::linalg::require_psd(ternq::as_const_view(rank_deficient), "t"));
  const Eigen::MatrixXd zero = Eigen::MatrixXd::Zero(5, 5);
  CHECK_NOTHROW(ternq::linalg::require_psd(ternq::as_const_view(zero), "t"));
  // Just inside and just outside the tolerance: mean eigenvalue 16.5 - 0.5 / 32, so -1% is about -0.165.
  CHECK_NOTHROW(ternq::linalg::require_psd(ternq::as_const_view(indefinite(32, -0.15, 3)), "t"));
  CHECK_THROWS_WITH_AS(ternq::linalg::require_psd(ternq::as_const_view(indefinite(32, -0.2, 3)), "t"),
                       doctest::Contains("[ternq.invalid_argument] t: gram matrix is not positive semi-definite"),
                       ternq::error);
  Eigen::MatrixXd hollow = Eigen::MatrixXd::Zero(3, 3);
  hollow(2, 0) = hollow(0, 2) = 1.0;
  CHECK(error_of([&] { ternq::linalg::require_psd(ternq::as_const_view(hollow), "t"); }) ==
        "[ternq.invalid_argument] t: gram matrix is not positive semi-definite: its diagonal is zero but other entries "
        "are not");
}

TEST_CASE("every Gram method refuses a non-symmetric Gram and a negative diagonal, naming the entry") {
  const row_matrix w = ternq::testing::llm_like_weights(8, 16, 4);
  Eigen::MatrixXd c = gram_of(ternq::testing::llm_like_activations(64, 16, 4));
  c(3, 1) += 1e-3 * std::sqrt(c(1, 1) * c(3, 3));
  for (const auto& run :
       {+[](const row_matrix&w, const Eigen::MatrixXd&c) { (void)ternq::quantize(w, ternq::itf_aga{}, c); },
        +[](const row_matrix&w, const Eigen::MatrixXd&c) { (void)ternq::quantize(w, ternq::gptq{}, c); },
        +[](const row_matrix&w, const Eigen::MatrixXd&c) {
          ternq::catq o;
          o.steps = 2;
          (void)ternq::quantize(w, o, c);
        }}) {
    CHECK(error_of([&] { run(w, c); }).find(": gram matrix is not symmetric: (3, 1) = ") != std::string::npos);
  }
  c(3, 1) = c(1, 3);
  c(1, 3) += 1e-6 * std::sqrt(c(1, 1) * c(3, 3));  // rounding-sized asymmetry is accepted
  CHECK_NOTHROW((void)ternq::quantize(w, ternq::itf_aga{}, c));
  c(2, 2) = -1.0;
  CHECK(error_of([&] { (void)ternq::quantize(w, ternq::itf_aga{}, c); }) ==
        "[ternq.invalid_argument] quantize(itf_aga): gram matrix has a negative diagonal entry (2, 2) = -1; a Gram "
        "matrix X X^T has none");
}

TEST_CASE("an indefinite Gram is refused by itf_aga, catq and gptq instead of giving values far outside W") {
  const row_matrix w = ternq::testing::llm_like_weights(16, 32, 5);
  const Eigen::MatrixXd c = indefinite(32, -8.0, 6) * 1e-2;
  CHECK(error_of([&] { (void)ternq::quantize(w, ternq::itf_aga{.group_size = 32}, c); })
            .starts_with("[ternq.invalid_argument] quantize(itf_aga): gram block C[B, B] of group 0 is not positive "
                         "semi-definite"));
  ternq::catq o{.group_size = 32};
  o.steps = 2;
  CHECK(error_of([&] {
          (void)ternq::quantize(w, o, c);
        }).starts_with("[ternq.invalid_argument] quantize(catq): gram matrix is not positive semi-definite"));
  CHECK(error_of([&] {
          (void)ternq::quantize(w, ternq::gptq{.grid = ternq::itf_aga{.group_size = 32}}, c);
        }).starts_with("[ternq.invalid_argument] quantize(gptq): gram matrix is not positive semi-definite"));
  // A larger damping would hide the negative eigenvalue; the explicit check still refuses it.
  CHECK(error_of([&] {
          (void)ternq::quantize(w, ternq::gptq{.grid = ternq::itf_aga{.group_size = 32}, .damping = 20.0}, c);
        }).starts_with("[ternq.invalid_argument] quantize(gptq): gram matrix is not positive semi-definite"));
  // The same weights with a real Gram: every value within the range of W (the finding: max |Q| = 25 for max |W| = 3.2).
  const Eigen::MatrixXd good = gram_of(ternq::testing::llm_like_activations(256, 32, 5));
  const auto q = ternq::quantize(w, ternq::itf_aga{.group_size = 32}, good);
  const double wmax = w.cwiseAbs().maxCoeff();
  for (std::size_t i = 0; i < q.rows(); ++i) {
    for (std::size_t j = 0; j < q.cols(); ++j) REQUIRE(std::abs(q.value(i, j)) <= 2 * wmax);
  }
}

TEST_CASE("an all-zero Gram: gptq returns the grid's data-free answer and says so, never silent zeros") {
  const row_matrix w = ternq::testing::llm_like_weights(12, 64, 7);
  const Eigen::MatrixXd zero = Eigen::MatrixXd::Zero(64, 64);
  const ternq::gptq options{.grid = ternq::itf_aga{.group_size = 32}, .order = ternq::act_order{}};
  const ternq::gptq_result r = ternq::gptq_quantize(ternq::cpu_exec{}, w, zero, options);
  CHECK(r.report.data_free);
  CHECK(r.report.dead_columns == 64);
  const ternq::ternary_matrix itf = ternq::quantize(w, ternq::itf{.group_size = 32});
  REQUIRE(r.matrix.rows() == itf.rows());
  bool any_nonzero = false;
  for (std::size_t i = 0; i < r.matrix.rows(); ++i) {
    for (std::size_t j = 0; j < r.matrix.cols(); ++j) {
      REQUIRE(r.matrix.value(i, j) == itf.value(i, j));
      any_nonzero = any_nonzero || r.matrix.value(i, j) != 0.0F;
    }
  }
  CHECK(any_nonzero);
  CHECK(r.report.weight_error() == doctest::Approx(ternq::weight_error(w, itf)));
  CHECK(r.report.blocks.size() == 2);
  CHECK(r.report.damped_output_error() == 0.0);
  // Standalone itf_aga on the same Gram: AGA has no metric, so every group keeps its ITF grid (counted).
  const ternq::atq_result standalone =
      ternq::itf_aga_quantize(ternq::cpu_exec{}, w, zero, ternq::itf_aga{.group_size = 32});
  CHECK(standalone.stats.aga_fallbacks == 12 * 2);
  // Symmetric grids too: absmean through the driver is absmean.
  const auto a =
      ternq::gptq_quantize(ternq::cpu_exec{}, w, zero, ternq::gptq{.grid = ternq::absmean{.group_size = 16}});
  const auto ref = ternq::quantize(w, ternq::absmean{.group_size = 16});
  CHECK(a.report.data_free);
  CHECK(ternq::weight_error(w, a.matrix) == ternq::weight_error(w, ref));
  // optimal_aga's scale solve has no metric: its data-free answer is the symmetric optimum.
  const auto o =
      ternq::gptq_quantize(ternq::cpu_exec{}, w, zero, ternq::gptq{.grid = ternq::optimal_aga{.group_size = 32}});
  const auto opt = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 32});
  CHECK(o.report.data_free);
  for (std::size_t i = 0; i < o.matrix.rows(); ++i) {
    for (std::size_t j = 0; j < o.matrix.cols(); ++j) REQUIRE(o.matrix.value(i, j) == opt.value(i, j));
  }
}

TEST_CASE("a partly dead Gram is not data-free: the dead columns' weights are zeroed as before") {
  const row_matrix w = ternq::testing::llm_like_weights(8, 32, 9);
  Eigen::MatrixXd c = gram_of(ternq::testing::llm_like_activations(128, 32, 9));
  c.row(4).setZero();
  c.col(4).setZero();
  const auto r = ternq::gptq_quantize(ternq::cpu_exec{}, w, c, ternq::gptq{.grid = ternq::itf{.group_size = 16}});
  CHECK_FALSE(r.report.data_free);
  CHECK(r.report.dead_columns == 1);
}
