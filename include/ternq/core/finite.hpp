// SPDX-License-Identifier: MIT
// Fast scans for NaN/Inf over contiguous spans (the always-on input check of the hot paths).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "ternq/config.hpp"

namespace ternq::detail {

/// Bit pattern view of a float/double: non-finite exactly when all exponent bits are set.
template <class T>
struct ieee_bits;
template <>
struct ieee_bits<float> {
  using type = std::uint32_t;
  static constexpr type exponent = 0x7F800000U;
};
template <>
struct ieee_bits<double> {
  using type = std::uint64_t;
  static constexpr type exponent = 0x7FF0000000000000ULL;
};

/// True when every element of `x` is finite. Branch-free over blocks of
/// integer bit tests, which compilers vectorize (unlike `std::isfinite`).
template <class T>
TERNQ_ALWAYS_INLINE bool all_finite(std::span<const T> x) noexcept {
  using bits = ieee_bits<std::remove_cv_t<T>>;
  using U = typename bits::type;
  U bad = 0;
  for (std::size_t j = 0; j < x.size(); ++j) {
    U u;
    std::memcpy(&u, &x[j], sizeof(U));
    bad |= static_cast<U>((u & bits::exponent) == bits::exponent);
  }
  return bad == 0;
}

/// Index of the first non-finite element of `x`, or `x.size()` if none.
template <class T>
TERNQ_ALWAYS_INLINE std::size_t first_non_finite(std::span<const T> x) noexcept {
  if (all_finite(x)) return x.size();
  std::size_t j = 0;
  while (j < x.size() && std::isfinite(x[j])) ++j;
  return j;
}

}  // namespace ternq::detail
