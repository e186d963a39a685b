// SPDX-License-Identifier: MIT
// The GPTQ-style blockwise driver on the CPU (ALGORITHMS.md §3): the loop of pass.hpp on cpu_gptq_steps.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/progress.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/gram_checks.hpp"
#include "ternq/quant/gptq/options.hpp"
#include "ternq/quant/gptq/order.hpp"
#include "ternq/quant/gptq/pass.hpp"
#include "ternq/quant/gptq/report.hpp"
#include "ternq/quant/gptq/steps.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq {

/// `gptq_quantize_with` with the CPU's check of the Gram matrix (`linalg::require_psd`).
template <class Steps, class T, class G>
gptq_result gptq_quantize_with(Steps& steps, const matrix_view<const T>& w, const matrix_view<const G>& gram,
                               const gptq& options) {
  return gptq_quantize_with(steps, w, gram, options, [](const matrix_view<const G>& c, const char* context) {
    linalg::require_psd(c, context);
  });
}

/// `gptq_quantize_with` on the CPU steps, with `exec`'s threads.
template <class T, class G>
gptq_result gptq_quantize(const cpu_exec& exec, const matrix_view<const T>& w, const matrix_view<const G>& gram,
                          const gptq& options) {
  cpu_gptq_steps<T> steps(exec.thread_count(), cpu_gptq_steps<T>::hessian_form::automatic, options.factor,
                          exec.simd_variant());
  return gptq_quantize_with(steps, w, gram, options);
}

/// `gptq_quantize` for any adaptable weights and Gram matrix (Eigen, xtensor, views).
template <class W, class G>
requires(!a_matrix_view<W> || !a_matrix_view<G>) gptq_result
    gptq_quantize(const cpu_exec& exec, const W& w, const G& gram, const gptq& options) {
  return gptq_quantize(exec, as_const_view(w), as_const_view(gram), options);
}

/// `quantize` entry for the GPTQ driver (see ternq/quant/quantize.hpp).
template <class T, class G>
ternary_matrix quantize_view(const cpu_exec& exec, const matrix_view<const T>& w, const gptq& options,
                             const matrix_view<const G>& gram) {
  return gptq_quantize(exec, w, gram, options).matrix;
}

}  // namespace ternq
