// SPDX-License-Identifier: MIT
// Column permutations: validation, inversion, identity test.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "ternq/core/error.hpp"

namespace ternq {

/// Throws `invalid_permutation` unless `perm` holds each of `0 .. n-1` exactly once.
inline void require_permutation(std::span<const std::size_t> perm, std::size_t n, std::string_view context) {
  if (perm.size() != n) {
    fail(errc::invalid_permutation, context, ": permutation has ", perm.size(), " entries, expected ", n);
  }
  std::vector<bool> seen(n, false);
  for (std::size_t j = 0; j < n; ++j) {
    const std::size_t p = perm[j];
    if (p >= n) {
      fail(errc::invalid_permutation, context, ": entry ", j, " is ", p, ", outside 0..", n - 1);
    }
    if (seen[p]) {
      fail(errc::invalid_permutation, context, ": column ", p, " appears twice (again at entry ", j, ")");
    }
    seen[p] = true;
  }
}

/// `inv[perm[j]] = j`; `perm` must be a valid permutation.
inline std::vector<std::size_t> inverse_permutation(std::span<const std::size_t> perm) {
  std::vector<std::size_t> inv(perm.size());
  for (std::size_t j = 0; j < perm.size(); ++j) inv[perm[j]] = j;
  return inv;
}

/// True when `perm[j] == j` for every `j`.
inline bool is_identity_permutation(std::span<const std::size_t> perm) noexcept {
  for (std::size_t j = 0; j < perm.size(); ++j) {
    if (perm[j] != j) return false;
  }
  return true;
}

}  // namespace ternq
