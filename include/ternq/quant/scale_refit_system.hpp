// SPDX-License-Identifier: MIT
// One row's system of the scale refit (`A a = b`, see quant/scale_refit.hpp) as the device solves it, in host and
// device code, so the CPU tests check the arithmetic the kernels run.
//
// The CPU solves the subsystem of the groups that have a say (`A(g, g) > 0`). A batched solver needs one size for
// every row, so the device pads instead: an inactive group's row and column become zero with `pad` on the
// diagonal, and its right-hand side zero. The padded system is block diagonal, so its solution is the active
// subsystem's with zeros elsewhere, by Cholesky where the active part is positive definite and by the
// pseudo-inverse where it is not. `pad` is the largest active diagonal, which keeps the padded matrix's scale (and
// so the pseudo-inverse's cut) the active part's.
#pragma once

#include <cstddef>

#include "ternq/config.hpp"
#include "ternq/core/host_device_math.hpp"

namespace ternq::detail {

/// Whether a group with the diagonal entry `a_gg` has a say in its row's error (the CPU's test).
TERNQ_HOST_DEVICE inline bool refit_group_active(double a_gg) noexcept { return a_gg > 0.0; }

/// The padded system's diagonal for inactive groups: the largest active diagonal, or 1 when none is active.
TERNQ_HOST_DEVICE inline double refit_pad(double largest_active_diagonal) noexcept {
  return largest_active_diagonal > 0.0 ? largest_active_diagonal : 1.0;
}

/// Entry `(g, h)` of the padded system from `A(g, h)`.
TERNQ_HOST_DEVICE inline double refit_padded_entry(double a_gh, bool active_g, bool active_h, bool diagonal,
                                                   double pad) noexcept {
  if (active_g && active_h) return a_gh;
  return diagonal ? pad : 0.0;
}

/// The bound below which a row leaves Cholesky for the pseudo-inverse (the CPU's LDLT `rcond > 1e-12`).
inline constexpr double refit_min_rcond = 1e-12;

/// Whether a Cholesky factor whose diagonal spans `[lo, hi]` is conditioned well enough to solve with, the device's
/// stand-in for LDLT's rcond estimate: `A = L L^T` has the condition number `cond(L)^2 >= (hi / lo)^2`, so a row
/// this rejects is surely ill-conditioned. One it passes may still be worse than the CPU's cut; the choice per row
/// (new scales only where they lower the row's error) guards the result either way.
TERNQ_HOST_DEVICE inline bool refit_factor_usable(double lo, double hi) noexcept {
  if (!(lo > 0.0) || !finite_value(hi)) return false;
  const double ratio = lo / hi;
  return ratio * ratio > refit_min_rcond;
}

/// The pseudo-inverse's cut for `n` eigenvalues whose largest magnitude is `largest`: eigenvalues at or below
/// `n eps largest` count as zero (the usual rank tolerance, as the complete orthogonal decomposition's).
TERNQ_HOST_DEVICE inline double refit_pseudo_inverse_cut(double largest, std::size_t n) noexcept {
  return static_cast<double>(n) * 2.220446049250313e-16 * largest;
}

/// A row's output error `wcw - 2 b^T s + s^T A s` for the scales `s` (`A`: `groups x groups`, column-major), summed
/// in the device's order.
TERNQ_HOST_DEVICE inline double refit_row_error(const double* a, const double* b, double wcw, const double* s,
                                                std::size_t groups) noexcept {
  double linear = 0.0, quadratic = 0.0;
  for (std::size_t h = 0; h < groups; ++h) {
    linear += b[h] * s[h];
    double column = 0.0;
    for (std::size_t g = 0; g < groups; ++g) column += a[h * groups + g] * s[g];
    quadratic += s[h] * column;
  }
  return wcw - 2.0 * linear + quadratic;
}

}  // namespace ternq::detail
