// SPDX-License-Identifier: MIT
// CAT-Q on very small weights: the power-of-two prescaling that keeps the priors meaningful, and its undoing in the
// result. Standard library only (the CUDA calibrator prescales too).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "ternq/core/view.hpp"
#include "ternq/quant/catq/loop.hpp"

namespace ternq::detail {

/// Weights this small (`max |w| < 2^-20`; denormals among them) are
/// calibrated scaled by a power of two: CAT-Q's additive `epsilon` prior and
/// the grid's floor at the smallest normal number would otherwise swamp
/// their scale and zero every code. Returns the exponent `k` bringing
/// `max |w|` into `[1, 2)` (scaling by `2^k` is exact), 0 for other weights.
template <class T>
int catq_prescale_exponent(const matrix_view<const T>& w) {
  double largest = 0.0;
  for (std::size_t i = 0; i < w.rows(); ++i) {
    for (std::size_t j = 0; j < w.cols(); ++j) largest = std::max(largest, std::abs(static_cast<double>(w(i, j))));
  }
  return largest == 0.0 || largest >= 0x1p-20 ? 0 : -std::ilogb(largest);
}

/// `w` times `2^k`, row-major.
template <class T>
std::vector<T> catq_scaled_copy(const matrix_view<const T>& w, int k) {
  std::vector<T> out(w.rows() * w.cols());
  for (std::size_t i = 0; i < w.rows(); ++i) {
    for (std::size_t j = 0; j < w.cols(); ++j) out[i * w.cols() + j] = std::ldexp(w(i, j), k);
  }
  return out;
}

/// Undoes `catq_prescale_exponent`: scales times `2^-k`, losses (quadratic in the weights) times `2^-2k`.
inline void catq_unscale(catq_result& r, int k) {
  for (float& s : r.matrix.scales()) s = static_cast<float>(std::ldexp(static_cast<double>(s), -k));
  const auto loss = [k](double& x) { x = std::ldexp(x, -2 * k); };
  for (double& x : r.report.loss) loss(x);
  for (catq_evaluation& e : r.report.evaluations) loss(e.hard_loss);
  loss(r.report.initial_loss);
  loss(r.report.best_loss);
  loss(r.report.initial_error);
  loss(r.report.learned_error);
  loss(r.report.final_error);
}

}  // namespace ternq::detail
