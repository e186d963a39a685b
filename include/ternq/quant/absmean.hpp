// SPDX-License-Identifier: MIT
// BitNet b1.58 absmean ternarization (ALGORITHMS.md §1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/quant/detail/reduce.hpp"
#include "ternq/quant/detail/threshold.hpp"
#include "ternq/quant/groupwise.hpp"

namespace ternq {

/// BitNet b1.58 absmean: `gamma = mean|w|` per group, `T = clamp(round(w / gamma), -1, 1)`,
/// `alpha = gamma`. Symmetric; needs no calibration data.
struct absmean {
  group_size_option group_size = 128;  ///< columns per group, or `per_row`
};

/// Fits one group in place: writes `codes` and returns the scale `gamma = mean|w|`.
///
/// Rounding is half away from zero (as ggml's `lroundf`): the step sits at
/// `|w| = gamma / 2` and `|w| = gamma / 2` itself maps to +-1. The comparison
/// is made against the exact double threshold, so float and double inputs
/// holding the same values get the same codes. An all-zero group gives
/// zero codes and scale 0.
template <class T>
TERNQ_ALWAYS_INLINE float absmean_fit_group(std::span<const T> w, std::span<std::int8_t> codes) {
  if (codes.size() != w.size()) {
    fail(errc::shape_mismatch, "absmean_fit_group: ", codes.size(), " codes for ", w.size(), " weights");
  }
  if (w.empty()) return 0.0F;
  const double gamma = detail::sum_abs(w) / static_cast<double>(w.size());
  const T step = detail::at_least<T>(0.5 * gamma);  // x >= step  <=>  x >= gamma/2 exactly
  const std::size_t n = w.size();
  for (std::size_t j = 0; j < n; ++j) {
    const T x = w[j];
    // For gamma == 0 every x is 0 and both comparisons hold: code 0.
    codes[j] = static_cast<std::int8_t>(static_cast<int>(x >= step) - static_cast<int>(x <= -step));
  }
  return static_cast<float>(gamma);
}

/// `quantize` entry for absmean (see ternq/quant/quantize.hpp).
template <class T>
ternary_matrix quantize_view(const cpu_exec& exec, const matrix_view<const T>& w, const absmean& method) {
  return quantize_groups(exec, w, method.group_size, false, "quantize(absmean)", [] {
    return [](std::span<const T> group, std::span<std::int8_t> codes) TERNQ_ALWAYS_INLINE_LAMBDA {
      return group_grid{absmean_fit_group(group, codes), 0.0F};
    };
  });
}

}  // namespace ternq
