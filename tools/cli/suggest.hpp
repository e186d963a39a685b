// SPDX-License-Identifier: MIT
// "Did you mean ...?" for a mistyped name: the nearest known name by edit distance.
#pragma once

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

namespace ternq::cli {

/// The Levenshtein distance of `a` and `b`: insertions, deletions and substitutions of one character each.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];  // row[i-1][j-1]
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

/// "did you mean 'X'?" for the name of `known` nearest to `given`, or "" when none is near: a name is near
/// within a third of its length (at least 2 edits), so a typo gets an answer and an unrelated word none. Of
/// names equally near, the one sharing the longest start with `given` ("tq2" is a cut "tq2_0" before it is
/// "f32" mistyped), then the first listed.
inline std::string did_you_mean(std::string_view given, const std::vector<std::string>& known) {
  const auto shared_start = [&](std::string_view name) {
    return static_cast<std::size_t>(std::mismatch(given.begin(), given.end(), name.begin(), name.end()).first -
                                    given.begin());
  };
  const std::string* best = nullptr;
  std::size_t best_distance = 0, best_start = 0;
  for (const auto& name : known) {
    const std::size_t d = edit_distance(given, name);
    if (d > std::max<std::size_t>(2, name.size() / 3)) continue;
    const std::size_t start = shared_start(name);
    if (best == nullptr || d < best_distance || (d == best_distance && start > best_start)) {
      best = &name;
      best_distance = d;
      best_start = start;
    }
  }
  return best == nullptr ? std::string() : "did you mean '" + *best + "'?";
}

}  // namespace ternq::cli
