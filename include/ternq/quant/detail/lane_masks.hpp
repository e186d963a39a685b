// SPDX-License-Identifier: MIT
// The tail mask of a loop that walks n elements one AVX-512 register at a time.
#pragma once

#include <cstddef>

namespace ternq::detail {

/// The mask of the lanes of elements `j .. j + lanes - 1` that lie below `n`, where `lanes` is the width of `Mask`
/// (`__mmask8`: 8, `__mmask16`: 16): all lanes in the body of the loop, the first `n - j` in its tail, none past
/// the end. Plain integer arithmetic, so it needs no AVX-512 target.
template <class Mask>
constexpr Mask lanes_below(std::size_t n, std::size_t j) noexcept {
  constexpr std::size_t lanes = 8 * sizeof(Mask);
  static_assert(lanes <= 16, "a mask of at most 16 lanes");
  const std::size_t left = n > j ? n - j : 0;
  return left >= lanes ? static_cast<Mask>(~Mask{}) : static_cast<Mask>((1U << left) - 1U);
}

}  // namespace ternq::detail
