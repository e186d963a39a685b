// SPDX-License-Identifier: MIT
// Fixed-order blocked reductions over spans: vectorizable, and the same result on every ISA.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

#include "ternq/config.hpp"

namespace ternq::detail {

/// Lanes of the fixed-order reductions below. Independent partial sums let
/// the compiler vectorize without reassociating: the summation order is part
/// of the definition, so SSE2, AVX2 and AVX-512 builds agree bit for bit.
inline constexpr std::size_t reduce_lanes = 8;
/// Elements per lane summed in the input precision before the lanes are
/// added into double accumulators.
inline constexpr std::size_t reduce_block_per_lane = 16;

/// `sum_j f(w_j)` (with `f` returning `T`), blocked: each of 8 lanes adds at
/// most 16 terms in `T` before flushing into a double lane. For float input
/// the relative error is below `16 u_float` (about 1e-6, typically 1e-7)
/// whatever the length, the same order as storing the result in float, at
/// the speed of float SIMD (converting every term to double costs two to
/// four times more on SSE2). For double input everything is double.
template <class T, class F>
TERNQ_ALWAYS_INLINE double blocked_lane_sum(std::span<const T> w, F f) noexcept {
  constexpr std::size_t block = reduce_lanes * reduce_block_per_lane;
  double total[reduce_lanes] = {};
  const std::size_t n = w.size();
  std::size_t i = 0;
  for (; i + block <= n; i += block) {
    T lane[reduce_lanes] = {};
    for (std::size_t b = 0; b < block; b += reduce_lanes) {
      for (std::size_t l = 0; l < reduce_lanes; ++l) lane[l] += f(w[i + b + l]);
    }
    for (std::size_t l = 0; l < reduce_lanes; ++l) total[l] += static_cast<double>(lane[l]);
  }
  for (std::size_t j = i; j < n; ++j) total[(j - i) % reduce_lanes] += static_cast<double>(f(w[j]));
  double s = 0.0;
  for (double x : total) s += x;
  return s;
}

/// sum |w_j| (blocked, see `blocked_lane_sum`).
template <class T>
TERNQ_ALWAYS_INLINE double sum_abs(std::span<const T> w) noexcept {
  return blocked_lane_sum(w, [](T x) TERNQ_ALWAYS_INLINE_LAMBDA { return std::abs(x); });
}

/// sum w_j (blocked, see `blocked_lane_sum`).
template <class T>
TERNQ_ALWAYS_INLINE double sum(std::span<const T> w) noexcept {
  return blocked_lane_sum(w, [](T x) TERNQ_ALWAYS_INLINE_LAMBDA { return x; });
}

/// max |w_j| (0 for an empty span), in eight lanes so that it vectorizes.
template <class T>
TERNQ_ALWAYS_INLINE T max_abs(std::span<const T> w) noexcept {
  T lane[reduce_lanes] = {};
  const std::size_t n = w.size();
  const std::size_t body = n - n % reduce_lanes;
  for (std::size_t i = 0; i < body; i += reduce_lanes) {
    for (std::size_t l = 0; l < reduce_lanes; ++l) {
      const T x = std::abs(w[i + l]);
      lane[l] = x > lane[l] ? x : lane[l];
    }
  }
  for (std::size_t i = body; i < n; ++i) {
    const T x = std::abs(w[i]);
    lane[0] = x > lane[0] ? x : lane[0];
  }
  T m = 0;
  for (T x : lane) m = x > m ? x : m;
  return m;
}

}  // namespace ternq::detail
