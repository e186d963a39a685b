// SPDX-License-Identifier: MIT
// Block orders of the GPTQ driver: static orders (sequential, act-order, random) and SSR's top-g selection.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "ternq/core/permutation.hpp"
#include "ternq/core/view.hpp"
#include "ternq/quant/gptq/options.hpp"

namespace ternq {

/// The column order fixed before the first block: the identity for
/// `sequential` and `ssr` (SSR reorders as it goes), decreasing `diag(H)`
/// for `act_order` (dead columns count as `H_jj = 1`; ties: lower column
/// first), and a shuffle for `random_order` (Fisher-Yates on the raw
/// `std::mt19937_64` stream, whose output the standard fixes, so every
/// platform gets the same order); a `given_order` is checked to be a
/// permutation of the columns and taken as it is.
template <class G>
std::vector<std::size_t> initial_column_order(const block_order& order, const matrix_view<const G>& gram) {
  const std::size_t m = gram.rows();
  std::vector<std::size_t> perm(m);
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  if (std::holds_alternative<act_order>(order)) {
    std::vector<double> d(m);
    for (std::size_t j = 0; j < m; ++j) {
      const auto c = static_cast<double>(gram(j, j));
      d[j] = c == 0.0 ? 1.0 : c;
    }
    std::stable_sort(perm.begin(), perm.end(), [&](std::size_t a, std::size_t b) { return d[a] > d[b]; });
  } else if (const auto* r = std::get_if<random_order>(&order)) {
    std::mt19937_64 gen(r->seed);
    for (std::size_t i = m; i > 1; --i) std::swap(perm[i - 1], perm[gen() % i]);
  } else if (const auto* given = std::get_if<given_order>(&order)) {
    require_permutation(given->columns, m, "gptq: given_order");
    perm = given->columns;
  }
  return perm;
}

/// SSR's choice (ALGORITHMS.md §3): the positions of the `g` largest
/// `scores`, best first; ties go to the lower original column index
/// `column[position]`. `scores[k]` and `column[k]` describe the k-th
/// remaining position.
inline std::vector<std::size_t> ssr_select(std::span<const double> scores, std::span<const std::size_t> column,
                                           std::size_t g) {
  std::vector<std::size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  g = std::min(g, idx.size());
  const auto better = [&](std::size_t a, std::size_t b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : column[a] < column[b];
  };
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(g), idx.end(), better);
  idx.resize(g);
  return idx;
}

}  // namespace ternq
