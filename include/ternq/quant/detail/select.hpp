// SPDX-License-Identifier: MIT
// Symmetric ternarization above a magnitude cut, with its least-squares scale.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/quant/detail/reduce.hpp"

namespace ternq::detail {

/// Writes `codes[j] = sign(w[j]) [|w[j]| > cut]` and returns the
/// least-squares scale for those codes, `sum(T w) / sum|T|` (0 when no code
/// is non-zero). Three simple passes over a group that sits in L1 (codes,
/// count, sum) vectorize far better than one fused loop.
template <class T>
TERNQ_ALWAYS_INLINE float ternarize_above(std::span<const T> w, std::span<std::int8_t> codes, T cut) noexcept {
  const std::size_t n = w.size();
  std::uint32_t count = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const T x = w[j];
    codes[j] = static_cast<std::int8_t>(static_cast<int>(x > cut) - static_cast<int>(x < -cut));
    count += static_cast<std::uint32_t>(std::abs(x) > cut);
  }
  if (count == 0) return 0.0F;
  const double s = blocked_lane_sum(w, [cut](T x) TERNQ_ALWAYS_INLINE_LAMBDA { return std::abs(x) > cut ? std::abs(x) : T{0}; });
  return static_cast<float>(s / static_cast<double>(count));
}

}  // namespace ternq::detail
