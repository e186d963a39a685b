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
#include "ternq/quant/catq/gradient.hpp"
#include "ternq/quant/catq/loop.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/options.hpp"

namespace ternq {

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
      : loop_(options, context),
        exec_(exec),
        objective_(exec, w, std::move(loss)),
        mod_(exec, objective_.weights(), options.group_size, options.priors),
        adam_(mod_.logits().size(), adam_options_of(options)),
        grad_(mod_.logits().size(), S(0)),
        best_logits_(mod_.logits().begin(), mod_.logits().end()) {}

  /// All steps ran, or the hard phase stopped early (`patience`).
  [[nodiscard]] bool done() const noexcept { return loop_.done(); }
  /// Steps taken so far.
  [[nodiscard]] std::size_t steps_done() const noexcept { return loop_.steps_done(); }
  [[nodiscard]] const catq_modulation<S>& modulation() const noexcept { return mod_; }
  [[nodiscard]] const catq_objective<S, Loss>& objective() const noexcept { return objective_; }
  [[nodiscard]] const catq_report& report() const noexcept { return loop_.report(); }
  /// The phase of step `step` under the schedule.
  [[nodiscard]] catq_phase phase_of(std::size_t step) const noexcept { return loop_.phase_of(step); }

  /// One calibration step; returns what the monitor is told.
  catq_step_event step() {
    const catq_loop::step_plan plan = loop_.next();
    const catq_pass pass = objective_.gradient(mod_, plan.phase, grad_, plan.evaluate);
    if (loop_.record(plan, pass)) keep_best();
    adam_.step(exec_, mod_.logits(), grad_);
    return loop_.finish_step(plan, pass);
  }

  /// Evaluates the logits after the last update, then returns the best hard
  /// solution seen. The choice between it and the initialization is
  /// confirmed in double (`Loss::exact_error`), so the returned matrix never
  /// has a larger loss than the initialization, whatever the compute type.
  /// With `refit_scales` (and a loss that has them), the chosen codes then
  /// take each row's closed-form scales, which never raise the loss.
  catq_result finish() {
    if (loop_.offer(loop_.steps_done(), objective_.value(mod_, catq_phase::hard_step()))) keep_best();
    catq_modulation<S> init = mod_;
    std::fill(init.logits().begin(), init.logits().end(), S(0));
    const matrix_view<const S> w = objective_.weights();
    catq_report& report = loop_.report();

    catq_result out;
    out.matrix = detail::catq_choose(
        report, catq_hard_matrix(exec_, w, init),
        [&] {
          catq_modulation<S> best = mod_;
          std::copy(best_logits_.begin(), best_logits_.end(), best.logits().begin());
          return catq_hard_matrix(exec_, w, best);
        },
        [&](const ternary_matrix& q) { return objective_.loss().exact_error(w, q); });
    if (loop_.options().refit_scales && objective_.loss().has_closed_form_scales()) {
      ternary_matrix refit = out.matrix;
      const std::size_t rows = objective_.loss().refit_scales(w, refit, exec_).rows_changed;
      // Judged in the same measure as the choice above, so the result never has a larger loss than the
      // learned scales (the closed form's own bookkeeping could differ from it by rounding).
      const double e_refit = rows == 0 ? report.learned_error : objective_.loss().exact_error(w, refit);
      if (rows != 0 && e_refit < report.learned_error) {
        out.matrix = std::move(refit);
        report.final_error = e_refit;
        report.refit_rows = rows;
      }
    }
    out.report = report;
    return out;
  }

 private:
  void keep_best() { std::copy(mod_.logits().begin(), mod_.logits().end(), best_logits_.begin()); }

  catq_loop loop_;
  cpu_exec exec_;
  catq_objective<S, Loss> objective_;
  catq_modulation<S> mod_;
  optim::adam<S> adam_;
  std::vector<S> grad_;
  std::vector<S> best_logits_;
};

}  // namespace ternq
