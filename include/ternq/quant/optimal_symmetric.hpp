// SPDX-License-Identifier: MIT
// The exact symmetric ternary optimum per group (ALGORITHMS.md §1, sorted-prefix scan).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/finite.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/quant/detail/optimal_symmetric_avx512.hpp"
#include "ternq/quant/detail/prefix_optimum.hpp"
#include "ternq/quant/detail/reduce.hpp"
#include "ternq/quant/detail/select.hpp"
#include "ternq/quant/detail/threshold.hpp"
#include "ternq/quant/groupwise.hpp"

namespace ternq {

/// The exact minimizer of `||w - alpha T||^2` over `alpha` and `T in {-1,0,1}^g`,
/// per group. For `k` non-zeros the best codes take the `k` largest `|w|`
/// and the error drops by `S_k^2 / k`; the optimum scans every `k`.
struct optimal_symmetric {
  group_size_option group_size = 128;  ///< columns per group, or `per_row`
};

namespace detail {

template <class T>
void check_group_sizes(std::span<const T> w, std::span<std::int8_t> codes, const char* context) {
  if (codes.size() != w.size()) {
    fail(errc::shape_mismatch, context, ": ", codes.size(), " codes for ", w.size(), " weights");
  }
}

}  // namespace detail

/// The normative reference: sorts `|w|` and scans every prefix. `O(g log g)`;
/// `optimal_symmetric_fit_group` must agree with it (tested).
template <class T>
float optimal_symmetric_fit_group_sorted(std::span<const T> w, std::span<std::int8_t> codes) {
  detail::check_group_sizes(w, codes, "optimal_symmetric_fit_group_sorted");
  std::vector<T> a(w.size());
  std::transform(w.begin(), w.end(), a.begin(), [](T x) { return std::abs(x); });
  std::sort(a.begin(), a.end(), std::greater<T>());
  detail::prefix_optimum best;
  if (!a.empty() && a.front() > 0) {
    detail::scan_sorted_prefixes<T>(a, 0, 0.0, detail::objective_scale(static_cast<double>(a.front())), best);
  }
  return detail::ternarize_at_least(w, codes, best);
}

/// Scratch memory for `optimal_symmetric_fit_group`, reusable across groups, and the instruction-set variant the
/// search may use (set it from `cpu_exec::simd_variant()`, which checks that the processor has it).
template <class T>
struct optimal_symmetric_workspace {
  /// At `avx512`, float groups of 17 to 128 weights are sorted in registers
  /// (`optimal_symmetric_fit_group_avx512`); the result is the same.
  simd_level simd = simd_level::portable;
  std::vector<std::uint32_t> bucket;  // bucket of each element
  std::vector<std::uint32_t> count;   // elements per bucket
  std::vector<double> sum;            // scaled sum of each bucket
  std::vector<T> members;             // magnitudes of the bucket being refined
  /// A bucket whose interior may hold the optimum: its index, element count,
  /// edges, and the count and scaled sum of all magnitudes above it.
  struct candidate {
    std::uint32_t bucket;
    std::size_t count;
    double low, high;
    std::size_t k_above;
    double s_above;
  };
  std::vector<candidate> candidates;
};

/// Fits one group in place with the exact optimum and returns its scale.
///
/// Equivalent to the sorted scan but linear on average. Magnitudes are
/// bucketed by value (`B ~ g/2` equal-width buckets; the index is monotone
/// in the value, so buckets partition the sorted order) and the objective
/// is evaluated exactly at every bucket boundary. A bucket's interior can
/// only win if the bound `S_j <= S + min(j hi, sum_b - (n_b - j) lo)` (with
/// the bucket's edges `lo`, `hi`) exceeds the best value so far; those few
/// buckets are sorted and scanned, most promising first. The result equals
/// the reference's up to ties of the objective within rounding (different
/// summation orders).
template <class T>
TERNQ_ALWAYS_INLINE float optimal_symmetric_fit_group(std::span<const T> w, std::span<std::int8_t> codes,
                                                      optimal_symmetric_workspace<T>& ws) {
  detail::check_group_sizes(w, codes, "optimal_symmetric_fit_group");
  const std::size_t n = w.size();
  if (n <= 16) return optimal_symmetric_fit_group_sorted(w, codes);
#if TERNQ_HAS_AVX512_VARIANT
  if constexpr (std::is_same_v<T, float>) {
    if (ws.simd == simd_level::avx512 && n <= detail::optimal_avx512_max_group) {
      return detail::optimal_symmetric_fit_group_avx512(w, codes);
    }
  }
#endif

  const T top = detail::max_abs(w);
  std::size_t buckets = 8;
  while (buckets < n / 2 && buckets < 16384) buckets *= 2;
  // Bucket index in T arithmetic: `floor(v * to_bucket)` is monotone in v.
  // Groups whose maximum is too small for B / top to be finite take the
  // reference path.
  const T to_bucket = static_cast<T>(buckets) / top;
  if (!(top >= std::numeric_limits<T>::min()) || !std::isfinite(to_bucket)) {
    return optimal_symmetric_fit_group_sorted(w, codes);
  }
  const double scale = detail::objective_scale(static_cast<double>(top));
  // Bucket b holds magnitudes in [b, b + 1) / to_bucket up to the rounding of
  // the product; the edges are widened by far more than that rounding.
  const double width = scale / static_cast<double>(to_bucket);
  const auto low_edge = [&](std::size_t b) { return static_cast<double>(b) * width * (1.0 - 1e-6); };
  const auto high_edge = [&](std::size_t b) {
    return std::min(static_cast<double>(b + 1) * width * (1.0 + 1e-6), static_cast<double>(top) * scale);
  };

  // Two interleaved histograms (even and odd elements) halve the chains of
  // dependent read-modify-writes when neighbours share a bucket; the sums
  // are combined in a fixed order.
  ws.bucket.resize(n);
  ws.count.assign(2 * buckets, 0);
  ws.sum.assign(2 * buckets, 0.0);
  const auto index = [&](T v) { return std::min(static_cast<std::size_t>(v * to_bucket), buckets - 1); };
  std::size_t j = 0;
  for (; j + 1 < n; j += 2) {
    const T v0 = std::abs(w[j]);
    const T v1 = std::abs(w[j + 1]);
    const std::size_t b0 = index(v0);
    const std::size_t b1 = index(v1) + buckets;
    ws.bucket[j] = static_cast<std::uint32_t>(b0);
    ws.bucket[j + 1] = static_cast<std::uint32_t>(b1 - buckets);
    ws.count[b0] += 1;
    ws.count[b1] += 1;
    ws.sum[b0] += static_cast<double>(v0) * scale;
    ws.sum[b1] += static_cast<double>(v1) * scale;
  }
  if (j < n) {
    const T v = std::abs(w[j]);
    const std::size_t b = index(v);
    ws.bucket[j] = static_cast<std::uint32_t>(b);
    ws.count[b] += 1;
    ws.sum[b] += static_cast<double>(v) * scale;
  }
  for (std::size_t b = 0; b < buckets; ++b) {
    ws.count[b] += ws.count[b + buckets];
    ws.sum[b] += ws.sum[b + buckets];
  }

  // Exact objective at every bucket boundary, largest magnitudes first (the
  // cut is recorded as "bucket >= b" and turned into a magnitude at the end).
  detail::prefix_optimum best;
  std::size_t best_bucket = buckets;
  ws.candidates.clear();
  {
    std::size_t k = 0;
    double s = 0.0;
    for (std::size_t b = buckets; b-- > 0;) {
      const std::size_t nb = ws.count[b];
      if (nb == 0) continue;
      if (nb > 1) ws.candidates.push_back({static_cast<std::uint32_t>(b), nb, low_edge(b), high_edge(b), k, s});
      k += nb;
      s += ws.sum[b];
      const std::size_t k_before = best.k;
      best.offer(s, k, 0.0);
      if (best.k != k_before) best_bucket = b;
    }
  }
  // Refine the buckets whose interior may still win, nearest to the best
  // boundary first (the best bound is usually there, and each refinement
  // raises the bar for the rest). The j largest of a bucket sum to at most
  // min(j hi, sum_b - (nb - j) lo); each of (s + j hi)^2 / (k + j) and
  // (s + sum_b - (nb - j) lo)^2 / (k + j) is convex in j, so its maximum over
  // 1..nb-1 sits at an end, and the bucket can win only if both maxima reach
  // the best value. A relative margin keeps this safe against rounding.
  constexpr double margin = 1.0 + 1e-12;
  const auto may_win = [&](const auto& c) {
    const double sb = ws.sum[c.bucket];
    const auto above = [&](std::size_t j) {
      return best.beats_or_ties(c.s_above + static_cast<double>(j) * c.high, c.k_above + j, margin);
    };
    const auto below = [&](std::size_t j) {
      return best.beats_or_ties(c.s_above + sb - static_cast<double>(c.count - j) * c.low, c.k_above + j, margin);
    };
    return (above(1) || above(c.count - 1)) && (below(1) || below(c.count - 1));
  };
  std::erase_if(ws.candidates, [&](const auto& c) { return !may_win(c); });
  std::sort(ws.candidates.begin(), ws.candidates.end(), [&](const auto& a, const auto& b) {
    const auto da = a.bucket > best_bucket ? a.bucket - best_bucket : best_bucket - a.bucket;
    const auto db = b.bucket > best_bucket ? b.bucket - best_bucket : best_bucket - b.bucket;
    return da != db ? da < db : a.bucket > b.bucket;
  });
  bool interior = false;
  for (const auto& cand : ws.candidates) {
    if (!may_win(cand)) continue;
    ws.members.clear();
    for (std::size_t j = 0; j < n; ++j) {
      if (ws.bucket[j] == cand.bucket) ws.members.push_back(std::abs(w[j]));
    }
    std::sort(ws.members.begin(), ws.members.end(), std::greater<T>());
    const std::size_t k_before = best.k;
    const double s2_before = best.s2;
    detail::scan_sorted_prefixes<T>(ws.members, cand.k_above, cand.s_above, scale, best);
    if (best.k != k_before || best.s2 != s2_before) interior = true;
  }
  if (!interior) {
    // The best cut is the lower boundary of bucket `best_bucket`: the smallest
    // T value whose bucket index reaches it (a binary search over the bit
    // patterns of non-negative values, which order like the values).
    using bits = typename detail::ieee_bits<T>::type;
    const auto bucket_of = [&](bits u) {
      T v;
      std::memcpy(&v, &u, sizeof(T));
      return std::min(static_cast<std::size_t>(v * to_bucket), buckets - 1);
    };
    bits lo = 0;  // bucket_of(lo) < best_bucket whenever best_bucket > 0
    bits hi;      // bucket_of(hi) >= best_bucket
    std::memcpy(&hi, &top, sizeof(T));
    if (best_bucket == 0) hi = 1;  // every non-zero magnitude
    while (hi - lo > 1) {
      const bits mid = lo + (hi - lo) / 2;
      (bucket_of(mid) >= best_bucket ? hi : lo) = mid;
    }
    T boundary;
    std::memcpy(&boundary, &hi, sizeof(T));
    best.tau = static_cast<double>(boundary);
  }
  return detail::ternarize_at_least(w, codes, best);
}

/// Convenience overload with its own scratch memory.
template <class T>
float optimal_symmetric_fit_group(std::span<const T> w, std::span<std::int8_t> codes) {
  optimal_symmetric_workspace<T> ws;
  return optimal_symmetric_fit_group(w, codes, ws);
}

namespace detail {
/// One worker's fitter: the fit with its own scratch memory (a class rather
/// than a mutable lambda so that the call can be forced inline portably).
template <class T>
struct optimal_symmetric_fitter {
  optimal_symmetric_workspace<T> ws;
  explicit optimal_symmetric_fitter(simd_level simd) { ws.simd = simd; }
  TERNQ_ALWAYS_INLINE group_grid operator()(std::span<const T> group, std::span<std::int8_t> codes) {
    return group_grid{optimal_symmetric_fit_group(group, codes, ws), 0.0F};
  }
};
}  // namespace detail

/// `quantize` entry for the exact symmetric optimum (see ternq/quant/quantize.hpp).
template <class T>
ternary_matrix quantize_view(const cpu_exec& exec, const matrix_view<const T>& w, const optimal_symmetric& method) {
  return quantize_groups(exec, w, method.group_size, false, "quantize(optimal_symmetric)",
                         [simd = exec.simd_variant()] { return detail::optimal_symmetric_fitter<T>(simd); });
}

}  // namespace ternq
