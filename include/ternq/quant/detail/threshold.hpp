// SPDX-License-Identifier: MIT
// Exact comparisons of float data against thresholds computed in double.
#pragma once

#include <cmath>
#include <cstring>
#include <limits>

#include "ternq/config.hpp"
#include "ternq/core/finite.hpp"

namespace ternq::detail {

/// The next representable value above / below a finite `x` (as
/// `std::nextafter` toward +-inf, but inline bit arithmetic: this runs once
/// per group, where a libm call would cost as much as the group itself).
/// In device code it is `nextafter` toward +inf, the same value for every finite `x` (zeros give the smallest
/// denormal; device code keeps denormals unless built with fast math, which ternq's CUDA code must not be).
template <class T>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE T next_up(T x) noexcept {
#if defined(__CUDA_ARCH__)
  return nextafter(x, static_cast<T>(INFINITY));
#else
  using U = typename ieee_bits<T>::type;
  if (x == T{0}) return std::numeric_limits<T>::denorm_min();
  U u;
  std::memcpy(&u, &x, sizeof(T));
  u = x > T{0} ? u + 1 : u - 1;
  std::memcpy(&x, &u, sizeof(T));
  return x;
#endif
}
template <class T>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE T next_down(T x) noexcept {
  return -next_up(-x);
}

/// The smallest `T` value `t` with `t >= threshold`, so that for every `T`
/// value `x`: `x >= t` exactly when `x >= threshold` (in real arithmetic).
/// Lets a float loop compare in float without changing the decision the
/// double threshold defines. `threshold` must be finite and within T's range.
template <class T>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE T at_least(double threshold) noexcept {
  const T t = static_cast<T>(threshold);
  return static_cast<double>(t) < threshold ? next_up(t) : t;
}

/// The largest `T` value `t` with `t <= threshold`: `x > t` exactly when `x > threshold`.
template <class T>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE T at_most(double threshold) noexcept {
  const T t = static_cast<T>(threshold);
  return static_cast<double>(t) > threshold ? next_down(t) : t;
}

}  // namespace ternq::detail
