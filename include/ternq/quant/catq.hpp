// SPDX-License-Identifier: MIT
// The catq method (ALGORITHMS.md §4): quantize(w, catq{}, gram), catq_calibrate with its report, the initialization.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string_view>
#include <vector>

#include "ternq/core/adapt.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/gram_checks.hpp"
#include "ternq/quant/catq/calibrator.hpp"
#include "ternq/quant/catq/gradient.hpp"
#include "ternq/quant/catq/loss.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/options.hpp"
#include "ternq/quant/catq/prescale.hpp"
#include "ternq/quant/catq/soft_ternarize.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq {

namespace detail {

template <class T, class C>
catq_result catq_run_gram(const cpu_exec& exec, const matrix_view<const T>& w, const matrix_view<const C>& gram,
                          const catq& options, std::string_view context) {
  validate(options, context);
  require_weights(w, context);
  require_gram_for(gram, w.cols(), context);
  linalg::require_psd(gram, context);  // the loss tr(D C D^T) is bounded below only for a PSD C
  if (const int k = catq_prescale_exponent(w); k != 0) {
    const std::vector<T> scaled = catq_scaled_copy(w, k);
    catq_result r = catq_run_gram(exec, row_major(scaled.data(), w.rows(), w.cols()), gram, options, context);
    catq_unscale(r, k);
    return r;
  }
  catq_calibrator<T, gram_loss<T>> calibrator(exec, w, gram_loss<T>(gram, context), options, context);
  while (!calibrator.done()) calibrator.step();
  return calibrator.finish();
}

}  // namespace detail

/// Calibrates `w` (`n x m`, any adaptable matrix) against the Gram matrix
/// `gram` (`m x m`, `C = X X^T`) and returns the symmetric ternary matrix
/// with the report (loss curve, evaluations, best step). Computes in the
/// weights' type (float weights: float GEMMs); the final choice against
/// the initialization is made in double.
template <class W, class G>
catq_result catq_calibrate(const cpu_exec& exec, const W& w, const G& gram, const catq& options) {
  return detail::catq_run_gram(exec, as_const_view(w), as_const_view(gram), options, "catq_calibrate");
}

/// `catq_calibrate` on all hardware threads.
template <class W, class G>
catq_result catq_calibrate(const W& w, const G& gram, const catq& options) {
  return catq_calibrate(cpu_exec{}, w, gram, options);
}

/// Calibrates on raw activations `x` (`tokens x m`, one row per token) with
/// a mean squared error or Huber loss on the output residual (see
/// `activation_loss`); keep-best and the report use that loss.
template <class W, class X>
catq_result catq_calibrate_activations(const cpu_exec& exec, const W& w, const X& x, const catq& options,
                                       const activation_loss_options& loss = {}) {
  constexpr std::string_view context = "catq_calibrate_activations";
  const auto wv = as_const_view(w);
  const auto xv = as_const_view(x);
  using T = typename decltype(wv)::value_type;
  validate(options, context);
  require_weights(wv, context);
  if (xv.cols() != wv.cols()) {
    fail(errc::shape_mismatch, context, ": activations have ", xv.cols(), " features but the weights have ", wv.cols(),
         " columns");
  }
  if (const int k = detail::catq_prescale_exponent(wv); k != 0) {
    // The Huber transition scales with the residual, so the scaled problem is the same problem.
    const std::vector<T> scaled = detail::catq_scaled_copy(wv, k);
    activation_loss_options scaled_loss = loss;
    scaled_loss.huber_delta = std::ldexp(loss.huber_delta, k);
    catq_result r =
        catq_calibrate_activations(exec, row_major(scaled.data(), wv.rows(), wv.cols()), x, options, scaled_loss);
    detail::catq_unscale(r, k);
    return r;
  }
  catq_calibrator<T, activation_loss<T>> calibrator(exec, wv, activation_loss<T>(xv, wv.rows(), loss, context), options,
                                                    context);
  while (!calibrator.done()) calibrator.step();
  return calibrator.finish();
}

/// CAT-Q's initialization: the hard ternarization of the priors (all logits
/// 0: `mu = mu0`, `alpha = alpha0`, `Delta = Delta0`), deployed as `alpha0 T`.
template <class W>
ternary_matrix catq_initial_matrix(const cpu_exec& exec, const W& w, const catq& options) {
  constexpr std::string_view context = "catq_initial_matrix";
  const auto wv = as_const_view(w);
  using T = typename decltype(wv)::value_type;
  validate(options, context);
  require_weights(wv, context);
  if (const int k = detail::catq_prescale_exponent(wv); k != 0) {
    const std::vector<T> scaled = detail::catq_scaled_copy(wv, k);
    ternary_matrix q = catq_initial_matrix(exec, row_major(scaled.data(), wv.rows(), wv.cols()), options);
    for (float& s : q.scales()) s = static_cast<float>(std::ldexp(static_cast<double>(s), -k));
    return q;
  }
  const catq_modulation<T> mod(exec, wv, options.group_size, options.priors);
  return catq_hard_matrix(exec, wv, mod);
}

/// `quantize` entry for catq (see ternq/quant/quantize.hpp): the calibrated matrix alone.
template <class T, class C>
ternary_matrix quantize_view(const cpu_exec& exec, const matrix_view<const T>& w, const catq& method,
                             const matrix_view<const C>& gram) {
  return detail::catq_run_gram(exec, w, gram, method, "quantize(catq)").matrix;
}

}  // namespace ternq
