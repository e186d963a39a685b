// SPDX-License-Identifier: MIT
// AGA: the closed form against a generic weighted least-squares solve, the vectorized rows, degenerate systems.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <Eigen/Dense>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;

/// A Gram block from LLM-like activations (outlier channels, non-zero means) or from Gaussian ones.
Eigen::MatrixXd gram_block(std::size_t n, std::uint64_t seed, bool llm_like) {
  const row_matrix x =
      llm_like ? ternq::testing::llm_like_activations(4 * n, n, seed) : ternq::testing::gaussian_matrix(4 * n, n, seed);
  const Eigen::MatrixXd xd = x.cast<double>();
  return xd.transpose() * xd;
}

/// The generic weighted least-squares fit: C = R^T R, minimize ||R (w - [t 1] x)|| by QR.
Eigen::VectorXd weighted_fit(const Eigen::VectorXd& w, const std::vector<std::int8_t>& t, const Eigen::MatrixXd& c) {
  const auto n = w.size();
  Eigen::MatrixXd a(n, 2);
  for (Eigen::Index j = 0; j < n; ++j) {
    a(j, 0) = t[static_cast<std::size_t>(j)];
    a(j, 1) = 1.0;
  }
  const Eigen::MatrixXd r = c.llt().matrixU();
  const Eigen::Vector2d x = (r * a).colPivHouseholderQr().solve(r * w);
  return a * x;  // the fitted group alpha t + mu
}

double weighted_error(const Eigen::VectorXd& w, std::span<const std::int8_t> t, ternq::atq_grid g,
                      const Eigen::MatrixXd& c) {
  Eigen::VectorXd e(w.size());
  for (Eigen::Index j = 0; j < w.size(); ++j) e(j) = w(j) - (g.alpha * t[static_cast<std::size_t>(j)] + g.mu);
  return e.dot(c * e);
}

}  // namespace

TEST_CASE("AGA's closed form equals a generic weighted least-squares solve with the Gram block") {
  for (std::uint64_t seed : {1ULL, 2ULL, 3ULL}) {
    for (bool llm : {true, false}) {
      const std::size_t n = 96;
      const Eigen::MatrixXd c = gram_block(n, seed, llm);
      const row_matrix w =
          llm ? ternq::testing::llm_like_weights(5, n, seed) : ternq::testing::gaussian_matrix(5, n, seed);
      for (Eigen::Index i = 0; i < w.rows(); ++i) {
        const std::span<const float> x(&w(i, 0), n);
        std::vector<std::int8_t> t(n);
        const ternq::itf_group_result fit = ternq::itf_fit_group(x, std::span(t));
        const Eigen::VectorXd wd = w.row(i).transpose().cast<double>();
        const Eigen::VectorXd expected = weighted_fit(wd, t, c);
        const ternq::aga_outcome out = ternq::aga_closed_form(x, std::span(t), c, fit.grid);
        CHECK_FALSE(out.fallback);
        const double scale = expected.cwiseAbs().maxCoeff();
        for (Eigen::Index j = 0; j < wd.size(); ++j) {
          const double got = out.grid.alpha * t[static_cast<std::size_t>(j)] + out.grid.mu;
          CHECK(std::abs(got - expected(j)) <= 1e-8 * scale);
        }
        // the optimum for frozen codes can only lower the weighted error of the ITF grid
        CHECK(weighted_error(wd, t, out.grid, c) <= weighted_error(wd, t, fit.grid, c) * (1 + 1e-12));
      }
    }
  }
}

TEST_CASE("aga_align_rows (T C, C 1, W C products) equals the per-row closed form") {
  const std::size_t n = 64;
  const Eigen::MatrixXd c = gram_block(n, 7, true);
  const row_matrix w = ternq::testing::llm_like_weights(33, n, 7);
  Eigen::MatrixXd td(w.rows(), static_cast<Eigen::Index>(n));
  std::vector<ternq::aga_outcome> rows(static_cast<std::size_t>(w.rows()));
  std::vector<ternq::aga_outcome> single(rows.size());
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    std::vector<std::int8_t> t(n);
    const auto fit = ternq::itf_fit_group(std::span<const float>(&w(i, 0), n), std::span(t));
    for (std::size_t j = 0; j < n; ++j) td(i, static_cast<Eigen::Index>(j)) = t[j];
    rows[static_cast<std::size_t>(i)].grid = fit.grid;
    single[static_cast<std::size_t>(i)] =
        ternq::aga_solve(ternq::aga_system_of(std::span<const float>(&w(i, 0), n), t, c), fit.grid);
  }
  const Eigen::MatrixXd wd = w.cast<double>();
  CHECK(ternq::aga_align_rows(wd, td, c, std::span(rows)) == 0);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i].grid.alpha == doctest::Approx(single[i].grid.alpha).epsilon(1e-10));
    CHECK(rows[i].grid.mu == doctest::Approx(single[i].grid.mu).epsilon(1e-10).scale(1e-6));
    CHECK(rows[i].flip == single[i].flip);
  }
}

TEST_CASE("AGA degenerate systems fall back to the ITF grid; a negative scale flips the codes") {
  const Eigen::MatrixXd c = gram_block(8, 3, false);
  const std::vector<float> w = {0.5F, -0.1F, 0.2F, 0.9F, -0.7F, 0.0F, 0.3F, -0.4F};
  const ternq::atq_grid itf_grid{0.25, 0.05};
  std::vector<std::int8_t> zero(8, 0);
  CHECK(ternq::aga_closed_form<float>(w, std::span(zero), c, itf_grid).fallback);  // all codes equal: det = 0
  std::vector<std::int8_t> t = {1, 0, 0, 1, -1, 0, 1, -1};
  const Eigen::MatrixXd dead = Eigen::MatrixXd::Zero(8, 8);
  const auto out = ternq::aga_closed_form<float>(w, std::span(t), dead, itf_grid);  // dead channels: 1^T C 1 = 0
  CHECK(out.fallback);
  CHECK(out.grid.alpha == itf_grid.alpha);
  CHECK(out.grid.mu == itf_grid.mu);
  // codes anti-correlated with the weights: the solve gives alpha < 0
  std::vector<std::int8_t> anti = {-1, 0, 0, -1, 1, 0, -1, 1};
  const auto flipped = ternq::aga_closed_form<float>(w, std::span(anti), c, itf_grid);
  CHECK(flipped.flip);
  CHECK(flipped.grid.alpha > 0.0);
  CHECK(anti == t);
  const auto direct = ternq::aga_closed_form<float>(w, std::span(t), c, itf_grid);
  CHECK(direct.grid.alpha == doctest::Approx(flipped.grid.alpha));
  CHECK(direct.grid.mu == doctest::Approx(flipped.grid.mu));
  CHECK_THROWS_WITH_AS(ternq::aga_system_of<float>(w, t, Eigen::MatrixXd::Identity(7, 7)),
                       "[ternq.shape_mismatch] aga_system_of: 8 weights, 8 codes and a 7x7 metric", ternq::error);
}

TEST_CASE("quantize(itf_aga): ITF codes (sign-aligned), AGA grids per group, thread-count independent") {
  const std::size_t m = 300;
  const row_matrix w = ternq::testing::llm_like_weights(70, m, 4);
  const row_matrix x = ternq::testing::llm_like_activations(600, m, 4);
  ternq::gram_accumulator acc(m);
  acc.add(x);
  const Eigen::MatrixXd& c = acc.matrix();
  const auto r = ternq::itf_aga_quantize(ternq::cpu_exec{.threads = 1}, w, c, ternq::itf_aga{.group_size = 128});
  const auto itf = ternq::quantize(w, ternq::itf{.group_size = 128});
  CHECK(r.matrix.has_offsets());
  CHECK(r.stats.groups == 70 * 3);
  for (std::size_t i = 0; i < 70; ++i) {
    for (std::size_t k = 0; k < 3; ++k) {
      const std::size_t b = k * 128;
      const std::size_t n = std::min<std::size_t>(128, m - b);
      const bool same = r.matrix.code(i, b) == itf.code(i, b);
      std::vector<std::int8_t> t(n);
      for (std::size_t j = 0; j < n; ++j) {
        CHECK(r.matrix.code(i, b + j) == (same ? 1 : -1) * itf.code(i, b + j));
        t[j] = itf.code(i, b + j);
      }
      std::vector<std::int8_t> expected_codes = t;
      const auto nb = static_cast<Eigen::Index>(n);
      const auto expected = ternq::aga_closed_form(
          std::span<const float>(&w(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(b)), n),
          std::span(expected_codes), c.block(static_cast<Eigen::Index>(b), static_cast<Eigen::Index>(b), nb, nb),
          ternq::atq_grid{itf.scale(i, k), itf.offset(i, k)});
      CHECK(r.matrix.scale(i, k) == doctest::Approx(expected.grid.alpha).epsilon(1e-6));
      CHECK(r.matrix.offset(i, k) == doctest::Approx(expected.grid.mu).epsilon(1e-6).scale(1e-4));
    }
  }
  for (unsigned threads : {2U, 3U}) {
    const auto other = ternq::quantize(ternq::cpu_exec{.threads = threads}, w, ternq::itf_aga{}, c);
    CHECK(std::equal(r.matrix.codes().begin(), r.matrix.codes().end(), other.codes().begin()));
    CHECK(std::equal(r.matrix.scales().begin(), r.matrix.scales().end(), other.scales().begin()));
    CHECK(std::equal(r.matrix.offsets().begin(), r.matrix.offsets().end(), other.offsets().begin()));
  }
}

TEST_CASE("quantize(itf_aga): bad Gram matrices are refused with the id and message") {
  const row_matrix w = ternq::testing::llm_like_weights(4, 16, 1);
  Eigen::MatrixXd c = Eigen::MatrixXd::Identity(16, 16);
  c(3, 4) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::itf_aga{}, c),
                       "[ternq.non_finite] quantize(itf_aga): NaN in gram matrix at (3, 4)", ternq::error);
  const Eigen::MatrixXd small = Eigen::MatrixXd::Identity(15, 15);
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::itf_aga{}, small),
                       "[ternq.shape_mismatch] quantize(itf_aga): gram matrix is 15x15 but the weights have 16 "
                       "columns (expected 16x16)",
                       ternq::error);
  const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(16, 16);
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::itf_aga{.group_size = 0}, identity),
                       "[ternq.zero_group_size] ternary_matrix: group size must be at least 1 (got 0)", ternq::error);
}
