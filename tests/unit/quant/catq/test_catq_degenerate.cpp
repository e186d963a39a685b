// SPDX-License-Identifier: MIT
// CAT-Q on degenerate groups: constant rows, one column, groups of one, denormal weights: exact, as every method is.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <vector>

#include <Eigen/Core>

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

ternq::catq short_catq(ternq::group_size_option g) {
  ternq::catq c{.group_size = g};
  c.steps = 60;
  return c;
}

/// `E_w` of CAT-Q (calibrated and its initialization) and of absmean, each relative to `||W||^2`.
struct errors {
  double catq = 0.0;
  double catq_initial = 0.0;
  double absmean = 0.0;
};

template <class W>
errors errors_of(const W& w, const Eigen::MatrixXd& gram, ternq::group_size_option g) {
  errors e;
  e.catq = ternq::relative_weight_error(w, ternq::catq_calibrate(w, gram, short_catq(g)).matrix);
  e.catq_initial = ternq::relative_weight_error(w, ternq::catq_initial_matrix(ternq::cpu_exec{}, w, short_catq(g)));
  e.absmean = ternq::relative_weight_error(w, ternq::quantize(w, ternq::absmean{.group_size = g}));
  return e;
}

}  // namespace

TEST_CASE("CAT-Q is exact on constant rows, as absmean is (the centred prior used to zero them: E_w = 1)") {
  row_matrix w(6, 64);
  const float values[6] = {0.1F, -0.3F, 2.5F, -1e-3F, 7.0F, 0.1F / 3.0F};
  for (Eigen::Index i = 0; i < 6; ++i) w.row(i).setConstant(values[i]);
  const Eigen::MatrixXd gram = gram_of(ternq::testing::llm_like_activations(128, 64, 3));
  for (const ternq::group_size_option g : {ternq::group_size_option(16), ternq::group_size_option(ternq::per_row)}) {
    const errors e = errors_of(w, gram, g);
    CHECK(e.absmean == 0.0);
    CHECK(e.catq_initial == 0.0);
    CHECK(e.catq == 0.0);
  }
}

TEST_CASE("CAT-Q is exact on one column and on groups of one element") {
  const row_matrix one = ternq::testing::llm_like_weights(32, 1, 5);
  const Eigen::MatrixXd c1 = gram_of(ternq::testing::llm_like_activations(64, 1, 5));
  const errors e1 = errors_of(one, c1, 128);
  CHECK(e1.absmean == 0.0);
  CHECK(e1.catq == 0.0);

  const row_matrix w = ternq::testing::llm_like_weights(16, 48, 6);
  const Eigen::MatrixXd c = gram_of(ternq::testing::llm_like_activations(256, 48, 6));
  const errors e = errors_of(w, c, 1);
  CHECK(e.absmean == 0.0);
  CHECK(e.catq_initial == 0.0);
  CHECK(e.catq == 0.0);
}

TEST_CASE("a constant row inside an LLM-like matrix is exact; the other rows are as before") {
  row_matrix w = ternq::testing::llm_like_weights(24, 128, 8);
  const row_matrix before = w;
  w.row(5).setConstant(0.02F);
  const Eigen::MatrixXd gram = gram_of(ternq::testing::llm_like_activations(512, 128, 8));
  const auto r = ternq::catq_calibrate(w, gram, short_catq(64));
  const auto q_before = ternq::catq_initial_matrix(ternq::cpu_exec{}, before, short_catq(64));
  const auto q_init = ternq::catq_initial_matrix(ternq::cpu_exec{}, w, short_catq(64));
  for (std::size_t j = 0; j < 128; ++j) CHECK(q_init.value(5, j) == 0.02F);
  for (std::size_t i = 0; i < 24; ++i) {
    if (i == 5) continue;
    for (std::size_t j = 0; j < 128; ++j) REQUIRE(q_init.value(i, j) == q_before.value(i, j));
  }
  CHECK(r.report.final_error <= r.report.initial_error);
  for (std::size_t j = 0; j < 128; ++j) CHECK(r.matrix.value(5, j) == 0.02F);
  // E_w stays near the initialization's in §4's setup (60 steps at lr 5e-3, learned scales). The defaults'
  // closed-form scales minimize E_x alone and on this generator's low-rank activations trade E_w for it.
  ternq::catq paper = ternq::catq::paper();
  paper.group_size = 64;
  paper.steps = 60;
  CHECK(ternq::relative_weight_error(w, ternq::catq_calibrate(w, gram, paper).matrix) < 0.5);
}

TEST_CASE("CAT-Q on denormal weights: exact where absmean is, and as good as on the same weights scaled up") {
  const float d = 1e-40F;  // a float denormal
  REQUIRE(std::fpclassify(d) == FP_SUBNORMAL);
  row_matrix signs = ternq::testing::gaussian_matrix(8, 64, 11);
  for (Eigen::Index i = 0; i < signs.rows(); ++i) {
    for (Eigen::Index j = 0; j < signs.cols(); ++j) signs(i, j) = signs(i, j) < 0 ? -d : d;
  }
  const Eigen::MatrixXd gram = gram_of(ternq::testing::llm_like_activations(256, 64, 11));
  const errors e = errors_of(signs, gram, 32);
  CHECK(e.absmean == 0.0);
  // CAT-Q centres each group on its mean, so +-d is not exact for it at any scale; on denormals it must
  // do what it does on the same signs scaled up exactly by 2^133 (it zeroed every code before: E_w = 1).
  row_matrix up(8, 64);
  for (Eigen::Index i = 0; i < 8; ++i) {
    for (Eigen::Index j = 0; j < 64; ++j) up(i, j) = std::ldexp(signs(i, j), 133);
  }
  const auto q_d = ternq::catq_calibrate(signs, gram, short_catq(32)).matrix;
  const auto q_up = ternq::catq_calibrate(up, gram, short_catq(32)).matrix;
  CHECK(std::equal(q_d.codes().begin(), q_d.codes().end(), q_up.codes().begin()));
  CHECK(e.catq == doctest::Approx(ternq::relative_weight_error(up, q_up)).epsilon(1e-3));
  CHECK(e.catq < 0.5);
  CHECK(e.catq_initial < 0.5);

  // LLM-like weights scaled down by 2^-140 in float (denormals, with precision lost), against the same
  // values scaled back up (exactly): the same relative errors up to CAT-Q's scale-dependent epsilons.
  const row_matrix big = ternq::testing::llm_like_weights(16, 64, 12);
  row_matrix tiny(16, 64), back(16, 64);
  for (Eigen::Index i = 0; i < 16; ++i) {
    for (Eigen::Index j = 0; j < 64; ++j) {
      tiny(i, j) = std::ldexp(big(i, j), -140);
      back(i, j) = std::ldexp(tiny(i, j), 140);
    }
  }
  const auto q_tiny = ternq::catq_calibrate(tiny, gram, short_catq(32));
  const auto q_back = ternq::catq_calibrate(back, gram, short_catq(32));
  const double e_tiny = ternq::relative_weight_error(tiny, q_tiny.matrix);
  const double e_back = ternq::relative_weight_error(back, q_back.matrix);
  CHECK(e_back < 0.6);
  CHECK(e_tiny == doctest::Approx(e_back).epsilon(0.02));
  // The report is in the weights' own units: E_x scales with the square of the weights.
  CHECK(q_tiny.report.final_error == doctest::Approx(std::ldexp(q_back.report.final_error, -280)).epsilon(0.05));
  CHECK(q_tiny.report.final_error > 0.0);
}
