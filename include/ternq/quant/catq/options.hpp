// SPDX-License-Identifier: MIT
// The catq method: calibration options with ALGORITHMS.md §4's defaults, their validation, progress hooks.
#pragma once

#include <cmath>
#include <cstddef>
#include <functional>
#include <optional>
#include <string_view>

#include "ternq/core/error.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/progress.hpp"
#include "ternq/optim/adam.hpp"
#include "ternq/quant/catq/modulation.hpp"

namespace ternq {

/// What the calibrator tells its monitor after each step.
struct catq_step_event {
  std::size_t step = 0;             ///< steps done (1 after the first)
  std::size_t steps = 0;            ///< steps in all
  double sharpness = 0.0;           ///< `s` of the step (meaningless when `hard`)
  bool hard = false;                ///< the step ran in the hard phase
  double loss = 0.0;                ///< the loss the gradient was taken of, before the update
  std::optional<double> hard_loss;  ///< the hard loss at the same logits, on evaluation steps
  double best_hard_loss = 0.0;      ///< the best hard loss so far (`E_x` for the Gram loss)
  std::size_t best_step = 0;        ///< updates behind the best logits (0: the initialization)
  bool stopped = false;             ///< this step ended the calibration before its last step (`patience`)
};

/// A monitor of the calibration; return `false` to cancel (throws `cancelled`).
using catq_monitor = std::function<bool(const catq_step_event&)>;

/// CAT-Q (ALGORITHMS.md §4): learnable modulation of per-group priors and
/// softened ternarization, calibrated with Adam on the output
/// reconstruction loss `tr((W - What) C (W - What)^T)`. Needs the Gram
/// matrix: `quantize(w, ternq::catq{}, gram)`. The result is symmetric
/// (`What = alpha T`, no offsets) and never has a larger `E_x` than the
/// initialization (the hard ternarization of the priors).
///
/// The defaults are set for 100 steps (docs/algorithms/catq.md, "100 steps
/// instead of 1000"): they reach the output error of §4's setup with 1000
/// steps, `catq::paper()`, the library's default before. Against it: `lr`
/// scaled to the step budget, shorter Adam moment horizons, a final
/// sharpness of 50, an early stop of the hard phase, and each row's scales
/// solved in closed form under `C` once the codes are chosen.
struct catq {
  group_size_option group_size = 128;  ///< columns per group, or `per_row`
  std::size_t steps = 100;             ///< Adam steps (not fixed by §4)
  double lr = 0.1;                     ///< Adam step size (§4: 5e-3, for 1000 steps)
  double s0 = 50.0;                    ///< final sharpness of the soft step (§4: 30)
  double gamma = 0.8;                  ///< share of the steps with the soft step, in (0, 1] (§4)
  std::size_t eval_every = 10;         ///< hard-loss evaluation period of the soft phase (keep-best)
  /// Early stop: the calibration ends once this many hard steps in a row
  /// have not lowered the best hard loss (`nullopt`: every step runs).
  std::optional<std::size_t> patience = 10;
  /// Once the codes are chosen, solve each row's scales jointly in closed
  /// form under `C` (§4's "or solve it in closed form under C",
  /// `refit_scales_to_output`); kept only where it lowers the loss. Needs a
  /// quadratic loss: the Gram loss or the mean squared activation loss (the
  /// Huber loss keeps the learned scales).
  bool refit_scales = true;
  catq_priors priors{};          ///< mu0, alpha0, Delta0
  double beta1 = 0.8;            ///< Adam (§4: 0.9)
  double beta2 = 0.9;            ///< Adam (§4: 0.999)
  double epsilon = 1e-8;         ///< Adam (§4)
  progress_callback progress{};  ///< per step: stage "catq.step", error = best hard loss so far
  catq_monitor monitor{};        ///< per step, with the loss curve's values

  /// ALGORITHMS.md §4's setup with 1000 steps, the library's default
  /// before: `lr` 5e-3, `s0` 30, Adam's betas 0.9 and 0.999, every step
  /// run, the learned scales kept.
  [[nodiscard]] static catq paper() {
    return {.steps = 1000,
            .lr = 5e-3,
            .s0 = 30.0,
            .patience = std::nullopt,
            .refit_scales = false,
            .beta1 = 0.9,
            .beta2 = 0.999};
  }
};

/// Adam's options of a catq configuration.
inline optim::adam_options adam_options_of(const catq& o) noexcept {
  return {.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .epsilon = o.epsilon};
}

/// Throws `invalid_argument` (prefixed by `context`) for options outside their domain.
inline void validate(const catq& o, std::string_view context) {
  optim::validate(adam_options_of(o), context);
  if (o.steps == 0) fail(errc::invalid_argument, context, ": steps must be >= 1 (got 0)");
  if (!(o.gamma > 0.0 && o.gamma <= 1.0)) {
    fail(errc::invalid_argument, context, ": gamma must be in (0, 1] (got ", o.gamma, ")");
  }
  if (!(std::isfinite(o.s0) && o.s0 >= 0.0)) {
    fail(errc::invalid_argument, context, ": s0 must be finite and >= 0 (got ", o.s0, ")");
  }
  if (o.eval_every == 0) fail(errc::invalid_argument, context, ": eval_every must be >= 1 (got 0)");
  if (o.patience && *o.patience == 0) fail(errc::invalid_argument, context, ": patience must be >= 1 (got 0)");
  if (o.group_size && *o.group_size == 0) {
    fail(errc::zero_group_size, context, ": group size must be at least 1 (got 0)");
  }
  validate(o.priors, context);
}

}  // namespace ternq
