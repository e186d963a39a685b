// SPDX-License-Identifier: MIT
// CAT-Q's calibration loop as bookkeeping, whatever computes the steps: the sharpness schedule, the report,
// keep-best of the hard loss, the early stop, progress and the monitor (ALGORITHMS.md §4). Standard library only,
// so the CPU calibrator and the CUDA one run the same loop.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/progress.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/optim/schedule.hpp"
#include "ternq/quant/catq/options.hpp"

namespace ternq {

/// Which ternarization a pass uses: the soft step at sharpness `s`, or the hard step.
struct catq_phase {
  double sharpness = 0.0;  ///< `s >= 0` of the soft step; ignored when `hard`
  bool hard = false;

  static constexpr catq_phase soft(double s) noexcept { return {s, false}; }
  static constexpr catq_phase hard_step() noexcept { return {0.0, true}; }
};

/// What one pass returns.
struct catq_pass {
  double loss = 0.0;                ///< the loss at the pass's phase
  std::optional<double> hard_loss;  ///< the loss of the hard ternarization, when asked for
};

/// One evaluation of the hard solution during calibration.
struct catq_evaluation {
  std::size_t step = 0;    ///< updates behind the evaluated logits (0: the initialization)
  double hard_loss = 0.0;  ///< the loss of the hard ternarization (`E_x` for the Gram loss)
};

/// What a calibration did (the numerical outcome, as data).
struct catq_report {
  std::vector<double> loss;                  ///< per step: the loss the gradient was taken of
  std::vector<double> sharpness;             ///< per step: `s` (+inf in the hard phase)
  std::size_t first_hard_step = 0;           ///< the first step of the hard phase (`steps` if none)
  std::vector<catq_evaluation> evaluations;  ///< every hard-loss evaluation, in order
  double initial_loss = 0.0;                 ///< hard loss at the initialization (compute precision)
  double best_loss = 0.0;                    ///< best hard loss seen (compute precision)
  std::size_t best_step = 0;                 ///< updates behind the best logits (0: the initialization)
  double initial_error = 0.0;                ///< loss of the initialization, in double
  double learned_error = 0.0;                ///< loss of the chosen codes with the learned scales, in double
  double final_error = 0.0;                  ///< loss of the returned matrix, in double (<= learned_error)
  bool kept_initialization = false;          ///< true when the initialization's codes are returned
  bool stopped_early = false;                ///< the hard phase ended by `patience` (`loss.size()` steps ran)
  std::size_t refit_rows = 0;                ///< rows whose scales the closed form replaced (`refit_scales`)
};

/// A calibrated matrix and its report.
struct catq_result {
  ternary_matrix matrix;
  catq_report report;
};

/// The loop's bookkeeping. A calibrator asks `next()` for the step to
/// compute (its phase, and whether the hard loss is evaluated), computes
/// the loss, its gradient and that hard loss, tells `record` (which keeps
/// the best hard loss and says when the caller must keep its logits as the
/// best), applies its optimizer update, then calls `finish_step`.
class catq_loop {
 public:
  /// What a step computes.
  struct step_plan {
    std::size_t step = 0;  ///< updates behind the logits of this step
    catq_phase phase;
    bool evaluate = false;  ///< the hard loss is evaluated (always in the hard phase)
  };

  /// `options` are validated (throws `invalid_argument` prefixed by `context`).
  catq_loop(const catq& options, std::string_view context)
      : options_(checked(options, context)), context_(context), schedule_{.peak = options.s0, .end = options.gamma} {
    report_.first_hard_step = options_.steps;
  }

  [[nodiscard]] const catq& options() const noexcept { return options_; }
  [[nodiscard]] const std::string& context() const noexcept { return context_; }
  /// All steps ran, or the hard phase stopped early (`patience`).
  [[nodiscard]] bool done() const noexcept { return step_ == options_.steps || report_.stopped_early; }
  /// Steps taken so far.
  [[nodiscard]] std::size_t steps_done() const noexcept { return step_; }
  [[nodiscard]] const catq_report& report() const noexcept { return report_; }
  [[nodiscard]] catq_report& report() noexcept { return report_; }

  /// The phase of step `step` under the schedule: soft at `s = (t / gamma) s0`, hard once `t > gamma`,
  /// `t = step / steps`.
  [[nodiscard]] catq_phase phase_of(std::size_t step) const noexcept {
    const optim::ramp_point p = schedule_.at_step(step, options_.steps);
    return p.after ? catq_phase::hard_step() : catq_phase::soft(p.value);
  }

  /// The next step; throws `invalid_argument` once the loop is done.
  [[nodiscard]] step_plan next() const {
    if (done()) fail(errc::invalid_argument, context_, ": the calibration is done (", step_, " steps)");
    const catq_phase phase = phase_of(step_);
    return {step_, phase, phase.hard || step_ % options_.eval_every == 0};
  }

  /// Records the step's pass; true when its hard loss is the new best (the
  /// caller then keeps the logits it was computed from). Throws `numerical`
  /// for a loss that is not finite.
  bool record(const step_plan& plan, const catq_pass& pass) {
    if (!std::isfinite(pass.loss)) {
      fail(errc::numerical, context_, ": the loss is not finite at step ", plan.step, " (", pass.loss, ")");
    }
    report_.loss.push_back(pass.loss);
    report_.sharpness.push_back(plan.phase.hard ? std::numeric_limits<double>::infinity() : plan.phase.sharpness);
    if (plan.phase.hard && plan.step < report_.first_hard_step) report_.first_hard_step = plan.step;
    const bool improved = pass.hard_loss && offer(plan.step, *pass.hard_loss);
    if (plan.phase.hard) {
      hard_steps_since_best_ = improved ? 0 : hard_steps_since_best_ + 1;
      // An early stop skips steps: reaching the count at the last step is no stop.
      if (options_.patience && hard_steps_since_best_ >= *options_.patience && plan.step + 1 < options_.steps) {
        report_.stopped_early = true;
      }
    }
    return improved;
  }

  /// Keep-best: the hard loss of the logits after `step` updates; true when it is the new best.
  bool offer(std::size_t step, double hard_loss) {
    report_.evaluations.push_back({step, hard_loss});
    if (step == 0) report_.initial_loss = hard_loss;
    if (report_.evaluations.size() == 1 || hard_loss < report_.best_loss) {
      report_.best_loss = hard_loss;
      report_.best_step = step;
      return true;
    }
    return false;
  }

  /// Ends the step after the optimizer's update: reports progress, asks the
  /// monitor (throws `cancelled` when it says stop), returns its event.
  catq_step_event finish_step(const step_plan& plan, const catq_pass& pass) {
    ++step_;
    catq_step_event event{.step = step_,
                          .steps = options_.steps,
                          .sharpness = plan.phase.sharpness,
                          .hard = plan.phase.hard,
                          .loss = pass.loss,
                          .hard_loss = pass.hard_loss,
                          .best_hard_loss = report_.best_loss,
                          .best_step = report_.best_step,
                          .stopped = report_.stopped_early};
    report_progress(options_.progress, {"catq.step", step_, options_.steps, report_.best_loss});
    if (options_.monitor && !options_.monitor(event)) {
      fail(errc::cancelled, context_, ": cancelled by the monitor after ", step_, " of ", options_.steps, " steps");
    }
    return event;
  }

 private:
  static const catq& checked(const catq& options, std::string_view context) {
    validate(options, context);
    return options;
  }

  catq options_;
  std::string context_;
  optim::ramp_schedule schedule_;
  catq_report report_;
  std::size_t step_ = 0;
  std::size_t hard_steps_since_best_ = 0;
};

namespace detail {

/// The end of a calibration: the best hard solution seen or the
/// initialization, whichever has the smaller loss in double (`error`, a
/// matrix's loss), so the result never has a larger loss than the
/// initialization. `best_matrix()` builds the best logits' matrix; it is
/// not called when the initialization was the best. Fills the report's
/// `initial_error`, `learned_error`, `final_error` and `kept_initialization`.
template <class BestMatrix, class Error>
ternary_matrix catq_choose(catq_report& report, ternary_matrix q_init, BestMatrix best_matrix, Error error) {
  report.initial_error = error(q_init);
  ternary_matrix out;
  if (report.best_step == 0) {
    out = std::move(q_init);
    report.final_error = report.initial_error;
    report.kept_initialization = true;
  } else {
    ternary_matrix q_best = best_matrix();
    const double e_best = error(q_best);
    if (e_best < report.initial_error) {
      out = std::move(q_best);
      report.final_error = e_best;
    } else {
      out = std::move(q_init);
      report.final_error = report.initial_error;
      report.kept_initialization = true;
    }
  }
  report.learned_error = report.final_error;
  return out;
}

}  // namespace detail

}  // namespace ternq
