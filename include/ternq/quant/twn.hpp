// SPDX-License-Identifier: MIT
// Ternary Weight Networks threshold rule (ALGORITHMS.md §1).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/quant/detail/reduce.hpp"
#include "ternq/quant/detail/select.hpp"
#include "ternq/quant/detail/threshold.hpp"
#include "ternq/quant/groupwise.hpp"

namespace ternq {

/// TWN: `Delta = threshold_ratio * mean|w|`, `T = sign(w) [|w| > Delta]`,
/// `alpha = sum(T w) / sum|T|` (the least-squares scale for those codes).
struct twn {
  group_size_option group_size = 128;  ///< columns per group, or `per_row`
  double threshold_ratio = 0.75;       ///< TWN's approximation of the optimal threshold
};

/// Fits one group in place: writes `codes` and returns the least-squares scale.
/// The comparison `|w| > Delta` is strict and exact (made against the double
/// threshold). A group with no weight above the threshold (all zero, or a
/// ratio above the group's max/mean) gives zero codes and scale 0.
template <class T>
TERNQ_ALWAYS_INLINE float twn_fit_group(std::span<const T> w, std::span<std::int8_t> codes, double threshold_ratio = 0.75) {
  if (codes.size() != w.size()) {
    fail(errc::shape_mismatch, "twn_fit_group: ", codes.size(), " codes for ", w.size(), " weights");
  }
  if (!std::isfinite(threshold_ratio) || threshold_ratio < 0.0) {
    fail(errc::invalid_argument, "twn_fit_group: threshold_ratio must be finite and >= 0 (got ", threshold_ratio, ")");
  }
  if (w.empty()) return 0.0F;
  const std::size_t n = w.size();
  const double delta = threshold_ratio * detail::sum_abs(w) / static_cast<double>(n);
  // x > at_most(delta)  <=>  x > delta exactly, so the float loop decides as the double rule does.
  return detail::ternarize_above(w, codes, detail::at_most<T>(delta));
}

/// `quantize` entry for TWN (see ternq/quant/quantize.hpp).
template <class T>
ternary_matrix quantize_view(const cpu_exec& exec, const matrix_view<const T>& w, const twn& method) {
  if (!std::isfinite(method.threshold_ratio) || method.threshold_ratio < 0.0) {
    fail(errc::invalid_argument, "quantize(twn): threshold_ratio must be finite and >= 0 (got ", method.threshold_ratio,
         ")");
  }
  return quantize_groups(exec, w, method.group_size, false, "quantize(twn)", [&] {
    return [ratio = method.threshold_ratio](std::span<const T> group,
                                            std::span<std::int8_t> codes) TERNQ_ALWAYS_INLINE_LAMBDA {
      return group_grid{twn_fit_group(group, codes, ratio), 0.0F};
    };
  });
}

}  // namespace ternq
