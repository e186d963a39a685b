// SPDX-License-Identifier: MIT
// ITF: monotone E_w step by step, the closed-form grid against a generic least-squares solve, degenerate groups.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;

/// The rows of an LLM-like and of a Gaussian matrix, for property tests.
std::vector<row_matrix> sample_matrices(std::uint64_t seed, std::size_t cols) {
  return {ternq::testing::llm_like_weights(6, cols, seed), ternq::testing::gaussian_matrix(6, cols, seed, 0.3)};
}

std::span<const float> row_group(const row_matrix& w, Eigen::Index i, std::size_t b, std::size_t n) {
  return {&w(i, static_cast<Eigen::Index>(b)), n};
}

}  // namespace

TEST_CASE("ITF: E_w never increases from one half-step to the next") {
  for (std::uint64_t seed : {1ULL, 2ULL, 3ULL, 4ULL}) {
    for (std::size_t g : {7UL, 64UL, 128UL, 300UL}) {
      for (const row_matrix& w : sample_matrices(seed, 300)) {
        for (Eigen::Index i = 0; i < w.rows(); ++i) {
          for (std::size_t b = 0; b < 300; b += g) {
            const auto x = row_group(w, i, b, std::min(g, 300 - b));
            std::vector<std::int8_t> t(x.size());
            ternq::atq_grid grid = ternq::atq_init_group(x, std::span(t));
            double e = ternq::atq_group_error<float>(x, t, grid);
            for (int step = 0; step < 12; ++step) {
              grid = ternq::itf_solve_grid(x, std::span(t), grid);
              CHECK(grid.alpha >= 0.0);
              const double after_grid = ternq::atq_group_error<float>(x, t, grid);
              CHECK(after_grid <= e * (1 + 1e-12) + 1e-300);
              const std::size_t changed = ternq::itf_round(x, grid, std::span(t));
              const double after_round = ternq::atq_group_error<float>(x, t, grid);
              CHECK(after_round <= after_grid * (1 + 1e-12) + 1e-300);
              e = after_round;
              if (changed == 0) break;
            }
          }
        }
      }
    }
  }
}

TEST_CASE("itf_fit_group is the step sequence: same codes, E_w below the initialization") {
  for (std::uint64_t seed : {5ULL, 6ULL, 7ULL}) {
    for (const row_matrix& w : sample_matrices(seed, 256)) {
      for (Eigen::Index i = 0; i < w.rows(); ++i) {
        const auto x = row_group(w, i, 0, 128);
        std::vector<std::int8_t> fitted(128), manual(128);
        const ternq::itf_group_result r = ternq::itf_fit_group(x, std::span(fitted), 50);
        CHECK(r.stats.converged);
        CHECK(r.stats.iterations >= 1);
        ternq::atq_grid grid = ternq::atq_init_group(x, std::span(manual));
        const double e0 = ternq::atq_group_error<float>(x, manual, grid);
        unsigned steps = 0;
        while (true) {
          ++steps;
          if (ternq::itf_step(x, std::span(manual), grid) == 0) break;
        }
        CHECK(steps == r.stats.iterations);
        CHECK(manual == fitted);
        CHECK(grid.alpha == r.grid.alpha);
        CHECK(grid.mu == r.grid.mu);
        CHECK(ternq::atq_group_error<float>(x, fitted, r.grid) <= e0);
      }
    }
  }
}

TEST_CASE("ITF's grid solve equals a generic least-squares solve of [t 1] x = w") {
  ternq::testing::rng r(99);
  for (std::uint64_t seed : {11ULL, 12ULL, 13ULL}) {
    for (const row_matrix& w : sample_matrices(seed, 128)) {
      for (Eigen::Index i = 0; i < w.rows(); ++i) {
        const auto x = row_group(w, i, 0, 128);
        // arbitrary codes (not from rounding), so alpha may come out negative
        std::vector<std::int8_t> t(128);
        for (auto& c : t) c = static_cast<std::int8_t>(static_cast<int>(r.below(3)) - 1);
        Eigen::MatrixXd a(128, 2);
        Eigen::VectorXd y(128);
        for (Eigen::Index j = 0; j < 128; ++j) {
          a(j, 0) = t[static_cast<std::size_t>(j)];
          a(j, 1) = 1.0;
          y(j) = x[static_cast<std::size_t>(j)];
        }
        const Eigen::Vector2d ls = a.colPivHouseholderQr().solve(y);
        bool degenerate = true;
        const ternq::atq_grid raw =
            ternq::itf_grid_from_sums(ternq::itf_accumulate<float>(x, t), ternq::atq_grid{}, &degenerate);
        CHECK_FALSE(degenerate);
        CHECK(raw.alpha == doctest::Approx(ls(0)).epsilon(1e-9).scale(1e-3));
        CHECK(raw.mu == doctest::Approx(ls(1)).epsilon(1e-9).scale(1e-3));
        // the sign rule: a positive scale with negated codes, the same dequantized group
        std::vector<std::int8_t> flipped = t;
        const ternq::atq_grid solved = ternq::itf_solve_grid(x, std::span(flipped), ternq::atq_grid{});
        CHECK(solved.alpha == std::abs(raw.alpha));
        for (std::size_t j = 0; j < 128; ++j) CHECK(flipped[j] == (raw.alpha < 0 ? -t[j] : t[j]));
      }
    }
  }
}

TEST_CASE("ITF degenerate groups: constant groups come back exactly, den = 0 never raises E_w") {
  for (float c : {0.0F, 0.3F, -0.125F, 1e-30F, -3.4e38F, 7.0F / 3.0F}) {
    for (std::size_t n : {1UL, 2UL, 5UL, 128UL, 1000UL}) {
      const std::vector<float> w(n, c);
      std::vector<std::int8_t> t(n, 1);
      const ternq::itf_group_result r = ternq::itf_fit_group<float>(w, std::span(t));
      CHECK(r.grid.mu == static_cast<double>(c));
      CHECK(r.grid.alpha == 0.0);
      CHECK(ternq::atq_group_error<float>(w, t, r.grid) == 0.0);
      for (auto code : t) CHECK(code == 0);
      CHECK(r.stats.converged);
    }
  }
  // all codes +1: den = 0; the fallback keeps alpha and puts alpha + mu on the mean
  const std::vector<double> w = {1.0, 2.0, 4.0};
  std::vector<std::int8_t> t = {1, 1, 1};
  bool degenerate = false;
  const ternq::atq_grid before{0.5, 3.0};
  const ternq::atq_grid g = ternq::itf_solve_grid<double>(w, std::span(t), before, &degenerate);
  CHECK(degenerate);
  CHECK(g.alpha == 0.5);
  CHECK(g.alpha + g.mu == doctest::Approx(7.0 / 3.0));
  CHECK(ternq::atq_group_error<double>(w, t, g) <= ternq::atq_group_error<double>(w, t, before));
  // a zero-size group and max_iters = 0 (the initialization alone)
  std::vector<std::int8_t> none;
  CHECK(ternq::itf_fit_group<float>(std::span<const float>(), std::span(none)).stats.iterations == 0);
  const std::vector<float> v = {0.9F, -0.2F, 0.1F, -0.5F, 0.3F};
  std::vector<std::int8_t> init(5), zero_iters(5);
  const ternq::atq_grid gi = ternq::atq_init_group<float>(v, std::span(init));
  const auto r0 = ternq::itf_fit_group<float>(v, std::span(zero_iters), 0);
  CHECK(init == zero_iters);
  CHECK(r0.grid.alpha == gi.alpha);
  CHECK(r0.stats.iterations == 0);
  CHECK_FALSE(r0.stats.converged);
}

TEST_CASE("ATQ initialization on a hand-computed group") {
  // mean = 0.1; wc = {0.8, -0.3, 0, -0.6, 0.1}; mean|wc| = 0.36, Delta = 0.27
  // T = {1, -1, 0, -1, 0}; alpha = (0.8 + 0.3 + 0.6) / 3
  const std::vector<double> w = {0.9, -0.2, 0.1, -0.5, 0.2};
  std::vector<std::int8_t> t(5);
  const ternq::atq_grid g = ternq::atq_init_group<double>(w, std::span(t));
  CHECK(t == std::vector<std::int8_t>{1, -1, 0, -1, 0});
  CHECK(g.mu == doctest::Approx(0.1));
  CHECK(g.alpha == doctest::Approx(1.7 / 3.0));
  // the nearest-level rule: ties go away from zero, alpha <= 0 gives code 0
  CHECK(ternq::nearest_level_code(1.5, 1.0, 1.0) == 1);
  CHECK(ternq::nearest_level_code(0.5, 1.0, 1.0) == -1);
  CHECK(ternq::nearest_level_code(1.49, 1.0, 1.0) == 0);
  CHECK(ternq::nearest_level_code(9.0, 0.0, 1.0) == 0);
}

TEST_CASE("quantize(itf): per-group results, asymmetric, thread-count independent, float = double codes") {
  const row_matrix w = ternq::testing::llm_like_weights(70, 300, 21);
  const auto r = ternq::itf_quantize(ternq::cpu_exec{.threads = 1}, w, ternq::itf{.group_size = 128, .max_iters = 10});
  const ternq::ternary_matrix& q = r.matrix;
  REQUIRE(q.groups_per_row() == 3);
  CHECK(q.has_offsets());
  CHECK_NOTHROW(q.validate());
  CHECK(r.stats.groups == 70 * 3);
  CHECK(r.stats.mean_iterations() >= 1.0);
  CHECK(r.stats.max_iterations <= 11);
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    for (std::size_t k = 0; k < 3; ++k) {
      const std::size_t n = k < 2 ? 128 : 44;
      std::vector<std::int8_t> t(n);
      const auto fit = ternq::itf_fit_group(row_group(w, i, k * 128, n), std::span(t), 10);
      const auto ii = static_cast<std::size_t>(i);
      CHECK(q.scale(ii, k) == static_cast<float>(fit.grid.alpha));
      CHECK(q.offset(ii, k) == static_cast<float>(fit.grid.mu));
      CHECK(std::equal(t.begin(), t.end(), q.row_codes(ii).begin() + static_cast<std::ptrdiff_t>(k * 128)));
    }
  }
  for (unsigned threads : {2U, 3U}) {
    const auto other = ternq::quantize(ternq::cpu_exec{.threads = threads}, w, ternq::itf{});
    CHECK(std::equal(q.codes().begin(), q.codes().end(), other.codes().begin()));
    CHECK(std::equal(q.scales().begin(), q.scales().end(), other.scales().begin()));
    CHECK(std::equal(q.offsets().begin(), q.offsets().end(), other.offsets().begin()));
  }
  const Eigen::MatrixXd wd = w.cast<double>();
  const auto qd = ternq::quantize(wd, ternq::itf{});
  CHECK(std::equal(q.codes().begin(), q.codes().end(), qd.codes().begin()));
  // ITF never loses to its own initialization on E_w
  const auto init = ternq::quantize(w, ternq::itf{.max_iters = 0});
  CHECK(ternq::weight_error(w, q) < ternq::weight_error(w, init));
}

TEST_CASE("quantize(itf): zero rows and constant groups are exact; bad input is refused") {
  row_matrix w = ternq::testing::llm_like_weights(6, 256, 8);
  w.row(2).setZero();
  w.block(4, 128, 1, 128).setConstant(-0.125F);
  const auto q = ternq::quantize(w, ternq::itf{});
  for (std::size_t j = 0; j < 256; ++j) {
    CHECK(q.value(2, j) == 0.0F);
    if (j >= 128) CHECK(q.value(4, j) == -0.125F);
  }
  w(3, 7) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::itf{}), "[ternq.non_finite] quantize(itf): NaN in weights at (3, 7)",
                       ternq::error);
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::itf{.group_size = 0}),
                       "[ternq.zero_group_size] ternary_matrix: group size must be at least 1 (got 0)", ternq::error);
  const row_matrix empty(3, 0);
  CHECK_THROWS_WITH_AS(ternq::quantize(empty, ternq::itf{}),
                       "[ternq.empty_matrix] quantize(itf): weight matrix is empty (3x0)", ternq::error);
}

TEST_CASE("Fitting groups several at once gives each group's own fit bit for bit (mixed sizes and convergence)") {
  // Runs of equal sizes longer and shorter than a batch, a size change inside a run, empty groups, and groups that
  // converge at different steps within one batch: constant ones (alpha = 0, the general rounding), ties with the
  // levels, heavy tails, non-zero means.
  const std::vector<std::size_t> sizes = {128, 128, 128, 128, 128, 128, 7,  7,  7,  7,   300, 300, 300, 300,
                                          300, 128, 128, 0,   128, 128, 64, 64, 64, 129, 129, 129, 129};
  ternq::testing::rng r(47);
  std::vector<std::vector<float>> weights;
  for (std::size_t g = 0; g < sizes.size(); ++g) {
    std::vector<float> w(sizes[g]);
    const std::size_t kind = g % 5;
    for (auto& x : w) {
      const double v = kind == 1 ? r.student_t(3) : r.normal();
      x = static_cast<float>(kind == 2 ? 0.7 + 0.1 * v : v);
      if (kind == 3) x = std::round(x * 2.0F) / 2.0F;
    }
    if (kind == 4) std::fill(w.begin(), w.end(), -1.25F);
    weights.push_back(std::move(w));
  }
  for (const ternq::simd_level simd : {ternq::simd_level::portable, ternq::simd_level::avx512}) {
    if (!ternq::simd_supported(simd)) {
      MESSAGE("skipped a variant this processor or build does not have");
      continue;
    }
    for (unsigned max_iters : {0U, 1U, 2U, 10U}) {
      std::vector<std::vector<std::int8_t>> codes;
      std::vector<std::span<const float>> groups;
      std::vector<std::span<std::int8_t>> group_codes;
      for (const auto& w : weights) codes.emplace_back(w.size(), std::int8_t{7});  // stale codes are overwritten
      for (std::size_t g = 0; g < weights.size(); ++g) {
        groups.emplace_back(weights[g]);
        group_codes.emplace_back(codes[g]);
      }
      std::vector<ternq::itf_group_result> fits(weights.size());
      ternq::detail::itf_fit_groups_at<float>(simd, groups, group_codes, max_iters, fits);
      for (std::size_t g = 0; g < weights.size(); ++g) {
        std::vector<std::int8_t> alone(weights[g].size());
        const auto expected = ternq::itf_fit_group<float>(weights[g], alone, max_iters);
        CAPTURE(g);
        CAPTURE(max_iters);
        CHECK(fits[g].grid.alpha == expected.grid.alpha);
        CHECK(fits[g].grid.mu == expected.grid.mu);
        CHECK(codes[g] == alone);
        CHECK(fits[g].stats.iterations == expected.stats.iterations);
        CHECK(fits[g].stats.converged == expected.stats.converged);
        CHECK(fits[g].stats.degenerate == expected.stats.degenerate);
      }
    }
  }
  std::vector<ternq::itf_group_result> too_few(1);
  const std::vector<std::span<const float>> one_group = {weights[0]};
  const std::vector<std::span<std::int8_t>> no_codes;
  CHECK_THROWS_AS(ternq::detail::itf_fit_groups_at<float>(ternq::simd_level::portable, one_group, no_codes, 3, too_few),
                  ternq::error);
}

TEST_CASE("ITF's AVX-512 passes give the portable result bit for bit (grids, codes, counters)") {
  if (!ternq::simd_supported(ternq::simd_level::avx512)) {
    MESSAGE("skipped: this processor or build has no AVX-512 variant");
    return;
  }
  ternq::testing::rng r(31);
  for (std::size_t n : {1U, 7U, 8U, 9U, 44U, 64U, 127U, 128U, 129U, 300U, 1031U}) {
    for (int kind = 0; kind < 7; ++kind) {
      for (unsigned max_iters : {0U, 1U, 3U, 10U, 30U}) {
        std::vector<float> w(n);
        for (auto& x : w) {
          const double v = kind == 1 ? r.student_t(3) : r.normal();
          x = static_cast<float>(kind == 2 ? 0.7 + 0.1 * v : v);  // a non-zero mean
          if (kind == 3) x = std::round(x * 2.0F) / 2.0F;         // many ties with the levels
          if (kind == 4) x *= 1e-35F;                             // tiny and denormal values
        }
        if (kind == 5) std::fill(w.begin(), w.end(), -1.25F);  // constant: den = 0
        if (kind == 6) std::fill(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(n / 2), 0.0F);
        std::vector<std::int8_t> fast(n), portable(n);
        const auto a = ternq::detail::itf_fit_group_at<float>(ternq::simd_level::avx512, w, fast, max_iters);
        const auto b = ternq::itf_fit_group<float>(w, portable, max_iters);
        CAPTURE(n);
        CAPTURE(kind);
        CAPTURE(max_iters);
        CHECK(a.grid.alpha == b.grid.alpha);
        CHECK(a.grid.mu == b.grid.mu);
        CHECK(fast == portable);
        CHECK(a.stats.iterations == b.stats.iterations);
        CHECK(a.stats.converged == b.stats.converged);
        CHECK(a.stats.degenerate == b.stats.degenerate);
      }
    }
  }
}
