// SPDX-License-Identifier: MIT
// A run of exchanges of working positions (the driver's `swap_columns` calls for one SSR block) composed into one
// permutation, so that a device applies them in one pass instead of one launch per exchange.
#pragma once

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"

namespace ternq {

/// The exchanges as one permutation of the positions `[first, cols)`: after them, position `first + c` holds what
/// position `source[c]` held; `moved` lists the positions whose content changed (ascending), and `from[k]` is the
/// index in `moved` of the position whose old content moves to `moved[k]`. So with the old contents saved in
/// `moved` order, `new[moved[k]] = saved[from[k]]`, and a symmetric matrix's entry
/// `new(moved[k], b) = old(source of moved[k], source of b)` is `saved row from[k]` at `source[b - first]`.
struct composed_exchanges {
  std::vector<std::size_t> source;
  std::vector<std::size_t> moved;
  std::vector<std::size_t> from;
};

/// Composes `exchanges` (pairs of positions in `[first, cols)`, applied in order) as `composed_exchanges` describes.
inline composed_exchanges compose_exchanges(std::size_t first, std::size_t cols,
                                            std::span<const std::pair<std::size_t, std::size_t>> exchanges) {
  if (first > cols) fail(errc::invalid_argument, "compose_exchanges: first position ", first, " past ", cols);
  composed_exchanges out;
  const std::size_t r = cols - first;
  out.source.resize(r);
  for (std::size_t c = 0; c < r; ++c) out.source[c] = first + c;
  for (const auto& [a, b] : exchanges) {
    if (a < first || b < first || a >= cols || b >= cols) {
      fail(errc::invalid_argument, "compose_exchanges: exchange (", a, ", ", b, ") outside [", first, ", ", cols, ")");
    }
    std::swap(out.source[a - first], out.source[b - first]);
  }
  std::vector<std::size_t> index(r, 0);  // index[position - first]: its place in `moved`
  for (std::size_t c = 0; c < r; ++c) {
    if (out.source[c] != first + c) {
      index[c] = out.moved.size();
      out.moved.push_back(first + c);
    }
  }
  // a permutation maps the moved positions onto themselves, so every source of a moved position is in `moved`
  out.from.resize(out.moved.size());
  for (std::size_t k = 0; k < out.moved.size(); ++k) out.from[k] = index[out.source[out.moved[k] - first] - first];
  return out;
}

}  // namespace ternq
