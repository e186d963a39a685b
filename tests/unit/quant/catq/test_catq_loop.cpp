// SPDX-License-Identifier: MIT
// CAT-Q's loop bookkeeping (catq_loop), which the CPU and the CUDA calibrators share, driven by scripted passes
// step by step: the schedule, the evaluation steps, keep-best, the early stop, the report, progress, the monitor,
// and the final choice (detail::catq_choose).
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <vector>

#include "ternq/quant/catq/loop.hpp"

namespace {

ternq::catq scripted_options(std::size_t steps) {
  return {.steps = steps, .s0 = 10.0, .gamma = 0.5, .eval_every = 2, .patience = 3};
}

/// Runs `loop` on the hard losses `hard` (the loss itself in the hard phase; on soft steps the loss is `hard + 1`
/// and the hard loss is reported only when the step evaluates); returns the steps `record` called a new best.
std::vector<std::size_t> run(ternq::catq_loop& loop, const std::vector<double>& hard) {
  std::vector<std::size_t> best;
  while (!loop.done()) {
    const ternq::catq_loop::step_plan plan = loop.next();
    ternq::catq_pass pass;
    pass.loss = plan.phase.hard ? hard[plan.step] : hard[plan.step] + 1.0;
    if (plan.evaluate) pass.hard_loss = hard[plan.step];
    if (loop.record(plan, pass)) best.push_back(plan.step);
    (void)loop.finish_step(plan, pass);
  }
  return best;
}

}  // namespace

TEST_CASE("catq_loop: the schedule, the evaluation steps and keep-best, step by step") {
  ternq::catq_loop loop(scripted_options(10), "test");
  for (std::size_t k = 0; k < 10; ++k) {
    CAPTURE(k);
    const ternq::catq_phase p = loop.phase_of(k);
    CHECK(p.hard == (k > 5));  // t = k / 10 > gamma = 0.5
    if (!p.hard) CHECK(p.sharpness == doctest::Approx(static_cast<double>(k) / 10.0 / 0.5 * 10.0));
  }
  // soft steps 0..5 evaluate at 0, 2, 4; hard steps 6..9 always. Patience 3 is reached at step 9, the last step:
  // no early stop.
  const std::vector<double> hard{5.0, 9.0, 4.0, 9.0, 4.5, 9.0, 3.0, 3.5, 3.2, 3.1};
  const std::vector<std::size_t> best = run(loop, hard);
  CHECK(best == std::vector<std::size_t>{0, 2, 6});
  const ternq::catq_report& r = loop.report();
  CHECK(loop.steps_done() == 10);
  CHECK(!r.stopped_early);
  CHECK(r.first_hard_step == 6);
  CHECK(r.loss.size() == 10);
  CHECK(r.loss[1] == 10.0);
  CHECK(r.loss[6] == 3.0);
  CHECK(std::isinf(r.sharpness[6]));
  CHECK(r.sharpness[2] == doctest::Approx(4.0));
  REQUIRE(r.evaluations.size() == 7);
  CHECK(r.evaluations[1].step == 2);
  CHECK(r.evaluations[3].step == 6);
  CHECK(r.initial_loss == 5.0);
  CHECK(r.best_loss == 3.0);
  CHECK(r.best_step == 6);
  CHECK_THROWS_AS((void)loop.next(), ternq::error);
}

TEST_CASE("catq_loop: the early stop ends the hard phase after `patience` steps without a new best") {
  ternq::catq_loop loop(scripted_options(20), "test");
  std::vector<double> hard(20, 2.0);
  hard[0] = 4.0;
  hard[11] = 1.0;  // the first hard step (t = 11/20 > 0.5) is the best; 12, 13, 14 are not: stop after 14
  const std::vector<std::size_t> best = run(loop, hard);
  CHECK(best.back() == 11);
  CHECK(loop.report().stopped_early);
  CHECK(loop.steps_done() == 15);
  CHECK(loop.done());
}

TEST_CASE("catq_loop: events, progress, the monitor's cancel and a loss that is not finite") {
  std::vector<std::size_t> progress;
  ternq::catq options = scripted_options(10);
  options.progress = [&](const ternq::progress_event& e) {
    progress.push_back(e.done);
    return true;
  };
  options.monitor = [](const ternq::catq_step_event& e) { return e.step < 3; };
  ternq::catq_loop loop(options, "test");
  for (std::size_t k = 0; k < 2; ++k) {
    const auto plan = loop.next();
    const ternq::catq_pass pass{.loss = 1.0, .hard_loss = plan.evaluate ? std::optional<double>(0.5) : std::nullopt};
    (void)loop.record(plan, pass);
    const ternq::catq_step_event e = loop.finish_step(plan, pass);
    CHECK(e.step == k + 1);
    CHECK(e.steps == 10);
    CHECK(e.best_hard_loss == 0.5);
    CHECK(e.hard_loss.has_value() == plan.evaluate);
  }
  const auto plan = loop.next();
  (void)loop.record(plan, {.loss = 1.0, .hard_loss = std::nullopt});
  CHECK_THROWS_AS(loop.finish_step(plan, {.loss = 1.0, .hard_loss = std::nullopt}), ternq::error);
  CHECK(progress == std::vector<std::size_t>{1, 2, 3});

  ternq::catq_loop nan_loop(scripted_options(10), "test");
  const auto first = nan_loop.next();
  CHECK_THROWS_AS(nan_loop.record(first, {.loss = std::numeric_limits<double>::quiet_NaN(), .hard_loss = std::nullopt}),
                  ternq::error);
  CHECK_THROWS_AS(ternq::catq_loop(ternq::catq{.steps = 0}, "test"), ternq::error);
}

TEST_CASE("catq_choose keeps the initialization unless the best logits' matrix is strictly better") {
  const ternq::ternary_matrix init(2, 4, 4, false);
  ternq::ternary_matrix other(2, 4, 4, false);
  other.scale(0, 0) = 2.0F;
  const auto error = [](const ternq::ternary_matrix& q) { return q.scale(0, 0) == 2.0F ? 1.0 : 3.0; };
  const auto worse = [](const ternq::ternary_matrix& q) { return q.scale(0, 0) == 2.0F ? 5.0 : 3.0; };

  ternq::catq_report at_start;  // best_step 0: the best matrix is never built
  bool built = false;
  const ternq::ternary_matrix a = ternq::detail::catq_choose(
      at_start, init,
      [&] {
        built = true;
        return other;
      },
      error);
  CHECK(!built);
  CHECK(at_start.kept_initialization);
  CHECK(at_start.final_error == 3.0);
  CHECK(a.scale(0, 0) == init.scale(0, 0));

  ternq::catq_report better;
  better.best_step = 4;
  const ternq::ternary_matrix b = ternq::detail::catq_choose(
      better, init, [&] { return other; }, error);
  CHECK(!better.kept_initialization);
  CHECK(better.initial_error == 3.0);
  CHECK(better.final_error == 1.0);
  CHECK(better.learned_error == 1.0);
  CHECK(b.scale(0, 0) == 2.0F);

  ternq::catq_report no_better;
  no_better.best_step = 4;
  const ternq::ternary_matrix c = ternq::detail::catq_choose(
      no_better, init, [&] { return other; }, worse);
  CHECK(no_better.kept_initialization);
  CHECK(no_better.final_error == 3.0);
  CHECK(c.scale(0, 0) == init.scale(0, 0));
}
