// SPDX-License-Identifier: MIT
// The few math functions the host-device arithmetic needs, in host and device code: the C++ library's `std::`
// function on the host (so the CPU's bits are those of `std::`), CUDA's overload of the same name on the device
// (the `std::` functions are host-only under nvcc). Float and double.
#pragma once

#include <cmath>

#include "ternq/config.hpp"

namespace ternq::detail {

/// `|x|`.
template <class S>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE S magnitude(S x) noexcept {
#if defined(__CUDA_ARCH__)
  return fabs(x);
#else
  return std::abs(x);
#endif
}

/// `std::isfinite(x)`.
template <class S>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE bool finite_value(S x) noexcept {
#if defined(__CUDA_ARCH__)
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}

/// `e^x`.
template <class S>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE S exponential(S x) noexcept {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return std::exp(x);
#endif
}

/// `tanh x`.
template <class S>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE S hyperbolic_tangent(S x) noexcept {
#if defined(__CUDA_ARCH__)
  return tanh(x);
#else
  return std::tanh(x);
#endif
}

/// `sqrt x`.
template <class S>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE S square_root(S x) noexcept {
#if defined(__CUDA_ARCH__)
  return sqrt(x);
#else
  return std::sqrt(x);
#endif
}

}  // namespace ternq::detail
