// SPDX-License-Identifier: MIT
// CAT-Q's hard phase: the early stop (patience) step by step, and the closed-form scales once the codes are chosen.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <vector>

#include <Eigen/Core>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;

struct problem {
  row_matrix w;
  Eigen::MatrixXd gram;
};

problem llm_problem(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  ternq::gram_accumulator acc(cols);
  acc.add(ternq::testing::llm_like_activations(512, cols, seed));
  return {ternq::testing::llm_like_weights(rows, cols, seed), acc.matrix()};
}

using calibrator = ternq::catq_calibrator<float, ternq::gram_loss<float>>;

calibrator make_calibrator(const problem& p, const ternq::catq& options) {
  return calibrator(ternq::cpu_exec{.threads = 1}, ternq::as_const_view(p.w),
                    ternq::gram_loss<float>(ternq::as_const_view(p.gram)), options);
}

/// Every event of a run to the end, step by step.
std::vector<ternq::catq_step_event> run_events(calibrator& c) {
  std::vector<ternq::catq_step_event> events;
  while (!c.done()) events.push_back(c.step());
  return events;
}

/// Where a run with `patience` must stop, read off the events of the same run without it: after the first
/// hard step that completes `patience` hard steps in a row whose evaluation did not become the best. A step's
/// evaluation is of the logits before its update (`e.step - 1` updates), so it became the best exactly when
/// `best_step == e.step - 1`. Returns the number of steps that run.
std::size_t expected_stop(const std::vector<ternq::catq_step_event>& full, std::size_t patience) {
  std::size_t since_best = 0;
  for (const auto& e : full) {
    if (!e.hard) continue;
    since_best = e.best_step == e.step - 1 ? 0 : since_best + 1;
    if (since_best == patience) return e.step;
  }
  return full.size();
}

}  // namespace

TEST_CASE("early stop, step by step: the run ends after `patience` hard steps without a new best, nothing else") {
  struct test_case {
    problem p;
    ternq::group_size_option g;
    const char* name;
  };
  std::vector<test_case> cases;
  cases.push_back({llm_problem(48, 256, 21), 128, "llm-like 48x256 g128"});
  cases.push_back({llm_problem(40, 200, 22), 64, "llm-like 40x200 g64 (short last group)"});
  for (const auto& tc : cases) {
    INFO(tc.name);
    // A large step size for the step budget, so that the hard phase stalls.
    ternq::catq options{.group_size = tc.g, .steps = 60, .lr = 0.1, .eval_every = 4};
    options.patience = std::nullopt;
    calibrator whole = make_calibrator(tc.p, options);
    const std::vector<ternq::catq_step_event> full = run_events(whole);
    const ternq::catq_result full_result = whole.finish();
    REQUIRE(full.size() == 60);
    CHECK_FALSE(full_result.report.stopped_early);
    for (const auto& e : full) CHECK_FALSE(e.stopped);

    for (const std::size_t patience : {1, 2, 3, 10}) {
      INFO("patience ", patience);
      const std::size_t stop = expected_stop(full, patience);
      if (patience <= 3) REQUIRE(stop < 60);  // the case exercises the stop
      options.patience = patience;
      calibrator c = make_calibrator(tc.p, options);
      std::vector<ternq::catq_step_event> events;
      while (!c.done()) {
        events.push_back(c.step());
        // The run is the unstopped run, step for step, until it stops.
        const auto& e = events.back();
        const auto& f = full[events.size() - 1];
        CHECK(e.loss == f.loss);
        CHECK(e.hard_loss == f.hard_loss);
        CHECK(e.best_hard_loss == f.best_hard_loss);
        CHECK(e.best_step == f.best_step);
        CHECK(e.stopped == (events.size() == stop && stop < 60));
      }
      REQUIRE(events.size() == stop);
      CHECK(c.steps_done() == stop);
      CHECK_THROWS_AS(c.step(), ternq::error);
      const ternq::catq_result r = c.finish();
      CHECK(r.report.stopped_early == (stop < 60));
      CHECK(r.report.loss.size() == stop);
      // Its evaluations are the unstopped run's up to the stop (the last: the logits after the last update).
      std::vector<ternq::catq_evaluation> prefix;
      for (const auto& e : full_result.report.evaluations) {
        if (e.step <= stop) prefix.push_back(e);
      }
      REQUIRE(r.report.evaluations.size() == prefix.size());
      for (std::size_t i = 0; i < prefix.size(); ++i) {
        CHECK(r.report.evaluations[i].step == prefix[i].step);
        CHECK(r.report.evaluations[i].hard_loss == prefix[i].hard_loss);
      }
      // Keep-best over what ran: the best of those evaluations, never worse than the initialization.
      double best = prefix.front().hard_loss;
      for (const auto& e : prefix) best = std::min(best, e.hard_loss);
      CHECK(r.report.best_loss == best);
      CHECK(r.report.final_error <= r.report.initial_error);
    }
  }
}

TEST_CASE("early stop: soft-phase evaluations never stop the run, and patience 0 is refused") {
  const problem p = llm_problem(16, 128, 23);
  // gamma = 1: no hard phase, so even patience 1 runs every step whatever the soft evaluations do.
  const auto r =
      ternq::catq_calibrate(ternq::cpu_exec{.threads = 1}, p.w, p.gram,
                            ternq::catq{.steps = 40, .lr = 0.1, .gamma = 1.0, .eval_every = 1, .patience = 1});
  CHECK(r.report.loss.size() == 40);
  CHECK_FALSE(r.report.stopped_early);
  CHECK(r.report.first_hard_step == 40);
  CHECK_THROWS_WITH_AS(ternq::quantize(p.w, ternq::catq{.patience = 0}, p.gram),
                       "[ternq.invalid_argument] quantize(catq): patience must be >= 1 (got 0)", ternq::error);
}

TEST_CASE("closed-form scales: the chosen codes with each row's least-squares scales under C") {
  struct test_case {
    problem p;
    ternq::group_size_option g;
    const char* name;
  };
  std::vector<test_case> cases;
  cases.push_back({llm_problem(64, 256, 31), 128, "llm-like 64x256 g128"});
  cases.push_back({llm_problem(48, 200, 32), 64, "llm-like 48x200 g64"});
  cases.push_back({llm_problem(32, 96, 33), ternq::per_row, "llm-like 32x96 per row"});
  for (const auto& tc : cases) {
    INFO(tc.name);
    ternq::catq options{.group_size = tc.g, .steps = 80, .lr = 0.05, .refit_scales = false};
    const auto learned = ternq::catq_calibrate(ternq::cpu_exec{.threads = 2}, tc.p.w, tc.p.gram, options);
    options.refit_scales = true;
    const auto refit = ternq::catq_calibrate(ternq::cpu_exec{.threads = 2}, tc.p.w, tc.p.gram, options);
    // The same calibration; only the scales of the returned matrix differ.
    CHECK(refit.report.loss == learned.report.loss);
    CHECK(refit.report.best_step == learned.report.best_step);
    CHECK(std::equal(refit.matrix.codes().begin(), refit.matrix.codes().end(), learned.matrix.codes().begin()));
    CHECK(learned.report.refit_rows == 0);
    CHECK(learned.report.learned_error == learned.report.final_error);
    // The scales are refit_scales_to_output's on the learned matrix.
    ternq::ternary_matrix expected = learned.matrix;
    const auto fit = ternq::refit_scales_to_output(expected, tc.p.w, tc.p.gram);
    REQUIRE(refit.report.refit_rows > 0);
    CHECK(refit.report.refit_rows == fit.rows_changed);
    CHECK(std::equal(refit.matrix.scales().begin(), refit.matrix.scales().end(), expected.scales().begin()));
    CHECK(refit.report.learned_error == learned.report.final_error);
    CHECK(refit.report.final_error < refit.report.learned_error);
    CHECK(refit.report.final_error ==
          doctest::Approx(ternq::output_error(tc.p.w, refit.matrix, tc.p.gram)).epsilon(1e-12));
    CHECK(refit.report.final_error <= refit.report.initial_error);
    CHECK(refit.matrix.is_symmetric());
  }
}

TEST_CASE("closed-form scales on raw activations: the mean squared loss has them, the Huber loss keeps its own") {
  const row_matrix w = ternq::testing::llm_like_weights(32, 128, 34);
  const row_matrix x = ternq::testing::llm_like_activations(256, 128, 34);
  const ternq::catq options{.steps = 60, .lr = 0.05, .refit_scales = true};
  const auto mse = ternq::catq_calibrate_activations(ternq::cpu_exec{}, w, x, options,
                                                     {.kind = ternq::activation_loss_kind::mean_squared});
  CHECK(mse.report.refit_rows > 0);
  CHECK(mse.report.final_error < mse.report.learned_error);
  const auto huber =
      ternq::catq_calibrate_activations(ternq::cpu_exec{}, w, x, options, {.kind = ternq::activation_loss_kind::huber});
  CHECK(huber.report.refit_rows == 0);
  CHECK(huber.report.final_error == huber.report.learned_error);
  CHECK(huber.report.final_error <= huber.report.initial_error);
}
