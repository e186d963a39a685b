// SPDX-License-Identifier: MIT
// Schedules over calibration progress: a linear ramp that hands over to a final phase.
#pragma once

#include <cstddef>

namespace ternq::optim {

/// Where a ramp schedule stands at one point of the run.
struct ramp_point {
  double value = 0.0;  ///< the ramped value (`peak` once the ramp is over)
  bool after = false;  ///< true past the end of the ramp (the final phase)
};

/// `value(t) = (t / end) * peak` for progress `t <= end`, then the final
/// phase (`after = true`, value held at `peak`). Progress runs over
/// `[0, 1]`; `end` is in `(0, 1]`.
///
/// CAT-Q's sharpness (ALGORITHMS.md §4) is `ramp_schedule{.peak = s0, .end = gamma}`:
/// `s = (t / gamma) s0`, hard ternarization once `t > gamma`.
struct ramp_schedule {
  double peak = 1.0;
  double end = 1.0;

  [[nodiscard]] ramp_point at(double t) const noexcept {
    if (t > end) return {peak, true};
    return {t / end * peak, false};
  }

  /// The point of step `step` (counted from 0) of `steps`: progress `t = step / steps`,
  /// so step 0 sits at the start of the ramp.
  [[nodiscard]] ramp_point at_step(std::size_t step, std::size_t steps) const noexcept {
    return at(steps == 0 ? 1.0 : static_cast<double>(step) / static_cast<double>(steps));
  }
};

}  // namespace ternq::optim
