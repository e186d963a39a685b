// SPDX-License-Identifier: MIT
// CAT-Q calibration: keep-best step by step, never worse than the initialization, determinism, quality, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
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

struct problem {
  row_matrix w;
  Eigen::MatrixXd gram;
};

problem llm_problem(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  return {ternq::testing::llm_like_weights(rows, cols, seed),
          gram_of(ternq::testing::llm_like_activations(512, cols, seed))};
}

void check_identical(const ternq::ternary_matrix& a, const ternq::ternary_matrix& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  CHECK(std::equal(a.codes().begin(), a.codes().end(), b.codes().begin()));
  CHECK(std::equal(a.scales().begin(), a.scales().end(), b.scales().begin()));
}

}  // namespace

TEST_CASE("keep-best, step by step: the best hard E_x never rises and the result is never worse than the init") {
  struct test_case {
    problem p;
    ternq::group_size_option g;
    const char* name;
  };
  std::vector<test_case> cases;
  cases.push_back({llm_problem(64, 256, 1), 128, "llm-like 64x256 g128"});
  cases.push_back({llm_problem(48, 200, 2), 64, "llm-like 48x200 g64 (short last group)"});
  cases.push_back({llm_problem(32, 96, 3), ternq::per_row, "llm-like 32x96 per row"});
  {
    const row_matrix x = ternq::testing::gaussian_matrix(300, 128, 4);
    cases.push_back({{ternq::testing::gaussian_matrix(40, 128, 5, 0.02), gram_of(x)}, 32, "gaussian 40x128 g32"});
  }
  for (const auto& tc : cases) {
    INFO(tc.name);
    std::vector<ternq::catq_step_event> events;
    const ternq::catq options{
        .group_size = tc.g, .steps = 120, .eval_every = 7, .monitor = [&](const ternq::catq_step_event& e) {
          events.push_back(e);
          return true;
        }};
    const auto result = ternq::catq_calibrate(ternq::cpu_exec{.threads = 2}, tc.p.w, tc.p.gram, options);
    const auto& report = result.report;
    REQUIRE(events.size() <= 120);  // the default patience may end the hard phase early
    REQUIRE(events.size() == report.loss.size());
    CHECK(events.back().stopped == report.stopped_early);
    double best = std::numeric_limits<double>::infinity();
    for (const auto& e : events) {
      CHECK(e.best_hard_loss <= best);  // non-increasing
      CHECK(e.best_hard_loss <= report.initial_loss);
      if (e.hard_loss) CHECK(*e.hard_loss >= e.best_hard_loss);
      best = e.best_hard_loss;
    }
    // The returned matrix, measured independently, is never worse than the initialization.
    const auto init = ternq::catq_initial_matrix(ternq::cpu_exec{}, tc.p.w, options);
    const double e_init = ternq::output_error(tc.p.w, init, tc.p.gram);
    const double e_result = ternq::output_error(tc.p.w, result.matrix, tc.p.gram);
    CHECK(e_result <= e_init);
    CHECK(report.initial_error == doctest::Approx(e_init).epsilon(1e-12));
    CHECK(report.final_error == doctest::Approx(e_result).epsilon(1e-12));
    CHECK(report.initial_loss == doctest::Approx(e_init).epsilon(1e-4));
    CHECK(result.matrix.is_symmetric());
    CHECK_FALSE(result.matrix.has_permutation());
    CHECK_NOTHROW(result.matrix.validate());
  }
}

TEST_CASE("the report: loss curve, schedule, evaluations, best step") {
  const problem p = llm_problem(16, 128, 6);
  const auto r = ternq::catq_calibrate(
      ternq::cpu_exec{.threads = 1}, p.w, p.gram,
      ternq::catq{.steps = 50, .s0 = 30.0, .gamma = 0.8, .eval_every = 10, .patience = std::nullopt});
  const auto& report = r.report;
  REQUIRE(report.loss.size() == 50);
  REQUIRE(report.sharpness.size() == 50);
  // t = step / 50: soft while t <= 0.8 (steps 0..40) with s = (t / 0.8) 30, hard from step 41.
  CHECK(report.first_hard_step == 41);
  CHECK(report.sharpness[0] == 0.0);
  CHECK(report.sharpness[20] == doctest::Approx(15.0));
  CHECK(report.sharpness[40] == doctest::Approx(30.0));
  CHECK(std::isinf(report.sharpness[41]));
  // Evaluations: steps 0, 10, 20, 30, 40 (soft phase), every hard step 41..49, and the final logits (50).
  std::vector<std::size_t> steps;
  for (const auto& e : report.evaluations) steps.push_back(e.step);
  std::vector<std::size_t> expected = {0, 10, 20, 30, 40};
  for (std::size_t k = 41; k <= 50; ++k) expected.push_back(k);
  CHECK(steps == expected);
  // In the hard phase the loss of the step is the hard loss itself.
  for (const auto& e : report.evaluations) {
    if (e.step >= 41 && e.step < 50) CHECK(report.loss[e.step] == e.hard_loss);
  }
  double best = std::numeric_limits<double>::infinity();
  std::size_t best_step = 0;
  for (const auto& e : report.evaluations) {
    if (e.hard_loss < best) {
      best = e.hard_loss;
      best_step = e.step;
    }
  }
  CHECK(report.best_loss == best);
  CHECK(report.best_step == best_step);
  CHECK(report.initial_loss == report.evaluations.front().hard_loss);
}

TEST_CASE("the returned matrix is the hard ternarization of the best logits (learned scales kept)") {
  const problem p = llm_problem(24, 256, 7);
  const ternq::catq options{.steps = 60, .refit_scales = false};
  const auto w = ternq::as_const_view(p.w);
  ternq::catq_calibrator<float, ternq::gram_loss<float>> calibrator(
      ternq::cpu_exec{}, w, ternq::gram_loss<float>(ternq::as_const_view(p.gram)), options);
  std::vector<std::vector<float>> logits;  // logits after each step
  logits.emplace_back(calibrator.modulation().logits().begin(), calibrator.modulation().logits().end());
  while (!calibrator.done()) {
    calibrator.step();
    logits.emplace_back(calibrator.modulation().logits().begin(), calibrator.modulation().logits().end());
  }
  const auto result = calibrator.finish();
  REQUIRE_FALSE(result.report.kept_initialization);
  ternq::catq_modulation<float> best = calibrator.modulation();
  std::copy(logits[result.report.best_step].begin(), logits[result.report.best_step].end(), best.logits().begin());
  check_identical(result.matrix, ternq::catq_hard_matrix(ternq::cpu_exec{}, w, best));
  for (std::size_t i = 0; i < result.matrix.rows(); ++i) {
    for (std::size_t k = 0; k < result.matrix.groups_per_row(); ++k) {
      CHECK(result.matrix.scale(i, k) == best.grid(i, k).alpha);
    }
  }
}

TEST_CASE("calibration is bit-identical for threads 1, 2 and 3") {
  const problem p = llm_problem(300, 128, 8);  // three row blocks
  const ternq::catq options{.group_size = 64, .steps = 40, .eval_every = 4};
  const auto one = ternq::catq_calibrate(ternq::cpu_exec{.threads = 1}, p.w, p.gram, options);
  for (unsigned t : {2U, 3U}) {
    const auto many = ternq::catq_calibrate(ternq::cpu_exec{.threads = t}, p.w, p.gram, options);
    check_identical(many.matrix, one.matrix);
    CHECK(many.report.loss == one.report.loss);
    CHECK(many.report.best_step == one.report.best_step);
  }
}

TEST_CASE("quantize(w, catq, gram) is catq_calibrate's matrix, from any backend") {
  const problem p = llm_problem(20, 128, 9);
  const ternq::catq options{.group_size = 64, .steps = 30};
  const auto direct = ternq::catq_calibrate(ternq::cpu_exec{.threads = 1}, p.w, p.gram, options);
  check_identical(ternq::quantize(ternq::cpu_exec{.threads = 1}, p.w, options, p.gram), direct.matrix);
  const Eigen::MatrixXf col_major = p.w;
  check_identical(ternq::quantize(ternq::cpu_exec{.threads = 1}, col_major, options, p.gram), direct.matrix);
  const Eigen::MatrixXf gram_f = p.gram.cast<float>();
  CHECK(ternq::quantize(ternq::cpu_exec{.threads = 1}, p.w, options, gram_f).rows() == 20);
}

TEST_CASE("the initialization without centring is absmean (scale mean|w|, step at half of it)") {
  const Eigen::MatrixXd w = ternq::testing::llm_like_weights(16, 256, 10).cast<double>();
  ternq::catq options{};
  options.priors.centre = false;
  const auto init = ternq::catq_initial_matrix(ternq::cpu_exec{}, w, options);
  const auto reference = ternq::quantize(w, ternq::absmean{});
  CHECK(std::equal(init.codes().begin(), init.codes().end(), reference.codes().begin()));
  for (std::size_t k = 0; k < init.scales().size(); ++k) {
    CHECK(init.scales()[k] == doctest::Approx(reference.scales()[k]).epsilon(1e-7));
  }
}

TEST_CASE("on the LLM-like generator the calibrated result beats absmean and TWN in E_x") {
  // The library's defaults (100 steps; test_catq_defaults.cpp compares them with catq::paper()).
  for (std::uint64_t seed : {1ULL, 2ULL, 3ULL, 4ULL}) {
    const problem p = llm_problem(64, 256, seed);
    const auto result = ternq::catq_calibrate(ternq::cpu_exec{.threads = 2}, p.w, p.gram, ternq::catq{});
    const double e_catq = ternq::relative_output_error(p.w, result.matrix, p.gram);
    const double e_absmean = ternq::relative_output_error(p.w, ternq::quantize(p.w, ternq::absmean{}), p.gram);
    const double e_twn = ternq::relative_output_error(p.w, ternq::quantize(p.w, ternq::twn{}), p.gram);
    INFO("seed ", seed, ": catq ", e_catq, ", absmean ", e_absmean, ", twn ", e_twn);
    CHECK(e_catq < e_absmean);
    CHECK(e_catq < e_twn);
  }
}

TEST_CASE("calibration on raw activations (MSE, Huber) never ends worse than its initialization") {
  const row_matrix w = ternq::testing::llm_like_weights(32, 128, 11);
  const row_matrix x = ternq::testing::llm_like_activations(256, 128, 11);
  for (auto kind : {ternq::activation_loss_kind::mean_squared, ternq::activation_loss_kind::huber}) {
    const auto r = ternq::catq_calibrate_activations(ternq::cpu_exec{}, w, x, ternq::catq{.steps = 100},
                                                     {.kind = kind, .huber_delta = 0.5});
    CHECK(r.report.final_error <= r.report.initial_error);
    CHECK(r.report.best_step > 0);
    CHECK(r.matrix.is_symmetric());
  }
}

TEST_CASE("progress and monitor callbacks report each step and can cancel") {
  const problem p = llm_problem(8, 128, 12);
  std::vector<ternq::progress_event> seen;
  ternq::catq options{.steps = 20};
  options.progress = [&](const ternq::progress_event& e) {
    seen.push_back(e);
    return e.done < 5;
  };
  CHECK_THROWS_WITH_AS(ternq::catq_calibrate(p.w, p.gram, options),
                       "[ternq.cancelled] catq.step: cancelled by the progress callback after 5 of 20", ternq::error);
  REQUIRE(seen.size() == 5);
  CHECK(seen[0].stage == "catq.step");
  CHECK(seen[0].total == 20);
  CHECK(seen[0].error.has_value());
  options.progress = {};
  options.monitor = [](const ternq::catq_step_event& e) { return e.step < 3; };
  CHECK_THROWS_WITH_AS(ternq::catq_calibrate(p.w, p.gram, options),
                       "[ternq.cancelled] catq_calibrate: cancelled by the monitor after 3 of 20 steps", ternq::error);
}

TEST_CASE("bad options and bad input are refused with the id and a message naming the problem") {
  row_matrix w = ternq::testing::llm_like_weights(4, 16, 1);
  Eigen::MatrixXd gram = Eigen::MatrixXd::Identity(16, 16);
  const auto run = [&](const ternq::catq& options) { return ternq::quantize(w, options, gram); };
  CHECK_THROWS_WITH_AS(run({.lr = 0.0}), "[ternq.invalid_argument] quantize(catq): lr must be finite and > 0 (got 0)",
                       ternq::error);
  CHECK_THROWS_WITH_AS(run({.lr = -1e-3}),
                       "[ternq.invalid_argument] quantize(catq): lr must be finite and > 0 (got -0.001)", ternq::error);
  CHECK_THROWS_WITH_AS(run({.steps = 0}), "[ternq.invalid_argument] quantize(catq): steps must be >= 1 (got 0)",
                       ternq::error);
  CHECK_THROWS_WITH_AS(run({.gamma = 0.0}), "[ternq.invalid_argument] quantize(catq): gamma must be in (0, 1] (got 0)",
                       ternq::error);
  CHECK_THROWS_WITH_AS(run({.gamma = 1.5}),
                       "[ternq.invalid_argument] quantize(catq): gamma must be in (0, 1] (got 1.5)", ternq::error);
  CHECK_THROWS_WITH_AS(run({.s0 = -1.0}),
                       "[ternq.invalid_argument] quantize(catq): s0 must be finite and >= 0 (got -1)", ternq::error);
  CHECK_THROWS_WITH_AS(run({.eval_every = 0}),
                       "[ternq.invalid_argument] quantize(catq): eval_every must be >= 1 (got 0)", ternq::error);
  CHECK_THROWS_WITH_AS(run({.group_size = 0}),
                       "[ternq.zero_group_size] quantize(catq): group size must be at least 1 (got 0)", ternq::error);
  ternq::catq bad_prior{};
  bad_prior.priors.threshold = 0.0;
  CHECK_THROWS_WITH_AS(run(bad_prior),
                       "[ternq.invalid_argument] quantize(catq): prior threshold Delta0 must be finite and > 0 (got 0)",
                       ternq::error);
  CHECK_THROWS_WITH_AS(ternq::catq_calibrate(w, gram, ternq::catq{.beta2 = 1.0}),
                       "[ternq.invalid_argument] catq_calibrate: beta2 must be in [0, 1) (got 1)", ternq::error);

  w(1, 7) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(run({}), "[ternq.non_finite] quantize(catq): NaN in weights at (1, 7)", ternq::error);
  w(1, 7) = 0.0F;
  gram(3, 2) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(run({}), "[ternq.non_finite] quantize(catq): Inf in gram matrix at (3, 2)", ternq::error);
  const Eigen::MatrixXd small = Eigen::MatrixXd::Identity(15, 15);
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::catq{}, small),
                       "[ternq.shape_mismatch] quantize(catq): gram matrix is 15x15 but the weights have 16 columns "
                       "(expected 16x16)",
                       ternq::error);
  const row_matrix empty(0, 16);
  CHECK_THROWS_WITH_AS(ternq::quantize(empty, ternq::catq{}, Eigen::MatrixXd::Identity(16, 16).eval()),
                       "[ternq.empty_matrix] quantize(catq): weight matrix is empty (0x16)", ternq::error);
  const row_matrix x(10, 12);
  CHECK_THROWS_WITH_AS(ternq::catq_calibrate_activations(ternq::cpu_exec{}, w, x, ternq::catq{}),
                       "[ternq.shape_mismatch] catq_calibrate_activations: activations have 12 features but the "
                       "weights have 16 columns",
                       ternq::error);
}
