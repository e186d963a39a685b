// SPDX-License-Identifier: MIT
// CAT-Q's calibration loop: sharpness schedule, Adam on the logits, keep-best of the hard solution (ALGORITHMS.md §4).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/progress.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/optim/adam.hpp"
#include "ternq/optim/schedule.hpp"
#include "ternq/quant/catq/gradient.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/options.hpp"

namespace ternq {

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

/// The calibration loop, one step at a time (`catq_calibrate` runs it to the
/// end). Each step: the schedule's phase (soft at `s = (t / gamma) s0`, hard
/// once `t > gamma`, `t = step / steps`), the loss and its gradient, a
/// hard-loss evaluation every `eval_every` steps in the soft phase (every
/// step in the hard phase, where it is the loss itself), keep-best of the
/// logits, then one Adam update of all logits. With `patience`, the loop is
/// done once that many hard steps in a row have not lowered the best hard
/// loss. Deterministic: the same inputs give bit-identical results for any
/// thread count.
template <class S, class Loss>
class catq_calibrator {
 public:
  template <class T>
  catq_calibrator(const cpu_exec& exec, const matrix_view<const T>& w, Loss loss, const catq& options,
                  std::string_view context = "catq_calibrator")
      : options_(checked(options, context)),
        context_(context),
        exec_(exec),
        objective_(exec, w, std::move(loss)),
        mod_(exec, objective_.weights(), options.group_size, options.priors),
        adam_(mod_.logits().size(), adam_options_of(options)),
        schedule_{.peak = options.s0, .end = options.gamma},
        grad_(mod_.logits().size(), S(0)),
        best_logits_(mod_.logits().begin(), mod_.logits().end()) {
    report_.first_hard_step = options_.steps;
  }

  /// All steps ran, or the hard phase stopped early (`patience`).
  [[nodiscard]] bool done() const noexcept { return step_ == options_.steps || report_.stopped_early; }
  /// Steps taken so far.
  [[nodiscard]] std::size_t steps_done() const noexcept { return step_; }
  [[nodiscard]] const catq_modulation<S>& modulation() const noexcept { return mod_; }
  [[nodiscard]] const catq_objective<S, Loss>& objective() const noexcept { return objective_; }
  [[nodiscard]] const catq_report& report() const noexcept { return report_; }
  /// The phase of step `step` under the schedule.
  [[nodiscard]] catq_phase phase_of(std::size_t step) const noexcept {
    const optim::ramp_point p = schedule_.at_step(step, options_.steps);
    return p.after ? catq_phase::hard_step() : catq_phase::soft(p.value);
  }

  /// One calibration step; returns what the monitor is told.
  catq_step_event step() {
    if (done()) fail(errc::invalid_argument, context_, ": the calibration is done (", step_, " steps)");
    const std::size_t k = step_;
    const catq_phase phase = phase_of(k);
    const bool evaluate = phase.hard || k % options_.eval_every == 0;
    const catq_pass pass = objective_.gradient(mod_, phase, grad_, evaluate);
    if (!std::isfinite(pass.loss)) {
      fail(errc::numerical, context_, ": the loss is not finite at step ", k, " (", pass.loss, ")");
    }
    report_.loss.push_back(pass.loss);
    report_.sharpness.push_back(phase.hard ? std::numeric_limits<double>::infinity() : phase.sharpness);
    if (phase.hard && k < report_.first_hard_step) report_.first_hard_step = k;
    const bool improved = pass.hard_loss && offer(k, *pass.hard_loss);
    if (phase.hard) {
      hard_steps_since_best_ = improved ? 0 : hard_steps_since_best_ + 1;
      // An early stop skips steps: reaching the count at the last step is no stop.
      if (options_.patience && hard_steps_since_best_ >= *options_.patience && k + 1 < options_.steps) {
        report_.stopped_early = true;
      }
    }

    adam_.step(exec_, mod_.logits(), grad_);
    ++step_;

    catq_step_event event{.step = step_,
                          .steps = options_.steps,
                          .sharpness = phase.sharpness,
                          .hard = phase.hard,
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

  /// Evaluates the logits after the last update, then returns the best hard
  /// solution seen. The choice between it and the initialization is
  /// confirmed in double (`Loss::exact_error`), so the returned matrix never
  /// has a larger loss than the initialization, whatever the compute type.
  /// With `refit_scales` (and a loss that has them), the chosen codes then
  /// take each row's closed-form scales, which never raise the loss.
  catq_result finish() {
    offer(step_, objective_.value(mod_, catq_phase::hard_step()));
    catq_modulation<S> best = mod_;
    std::copy(best_logits_.begin(), best_logits_.end(), best.logits().begin());
    catq_modulation<S> init = mod_;
    std::fill(init.logits().begin(), init.logits().end(), S(0));
    const matrix_view<const S> w = objective_.weights();

    catq_result out;
    const ternary_matrix q_init = catq_hard_matrix(exec_, w, init);
    report_.initial_error = objective_.loss().exact_error(w, q_init);
    if (report_.best_step == 0) {
      out.matrix = q_init;
      report_.final_error = report_.initial_error;
      report_.kept_initialization = true;
    } else {
      ternary_matrix q_best = catq_hard_matrix(exec_, w, best);
      const double e_best = objective_.loss().exact_error(w, q_best);
      if (e_best < report_.initial_error) {
        out.matrix = std::move(q_best);
        report_.final_error = e_best;
      } else {
        out.matrix = q_init;
        report_.final_error = report_.initial_error;
        report_.kept_initialization = true;
      }
    }
    report_.learned_error = report_.final_error;
    if (options_.refit_scales && objective_.loss().has_closed_form_scales()) {
      ternary_matrix refit = out.matrix;
      const std::size_t rows = objective_.loss().refit_scales(w, refit, exec_).rows_changed;
      // Judged in the same measure as the choice above, so the result never has a larger loss than the
      // learned scales (the closed form's own bookkeeping could differ from it by rounding).
      const double e_refit = rows == 0 ? report_.learned_error : objective_.loss().exact_error(w, refit);
      if (rows != 0 && e_refit < report_.learned_error) {
        out.matrix = std::move(refit);
        report_.final_error = e_refit;
        report_.refit_rows = rows;
      }
    }
    out.report = report_;
    return out;
  }

 private:
  static const catq& checked(const catq& options, std::string_view context) {
    validate(options, context);
    return options;
  }

  /// Keep-best: the hard loss of the current logits (after `k` updates); true when it is the new best.
  bool offer(std::size_t k, double hard_loss) {
    report_.evaluations.push_back({k, hard_loss});
    if (k == 0) report_.initial_loss = hard_loss;
    if (report_.evaluations.size() == 1 || hard_loss < report_.best_loss) {
      report_.best_loss = hard_loss;
      report_.best_step = k;
      std::copy(mod_.logits().begin(), mod_.logits().end(), best_logits_.begin());
      return true;
    }
    return false;
  }

  catq options_;
  std::string context_;
  cpu_exec exec_;
  catq_objective<S, Loss> objective_;
  catq_modulation<S> mod_;
  optim::adam<S> adam_;
  optim::ramp_schedule schedule_;
  std::vector<S> grad_;
  std::vector<S> best_logits_;
  catq_report report_;
  std::size_t step_ = 0;
  std::size_t hard_steps_since_best_ = 0;
};

}  // namespace ternq
