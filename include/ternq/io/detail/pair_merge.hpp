// SPDX-License-Identifier: MIT
// The merge loop every merge-based tokenizer shares: SentencePiece-style BPE by piece score (llama2.c's run.c) and
// byte-level BPE by merge rank (GPT-2, Llama-3, Qwen) differ only in which adjacent pair merges first.
#pragma once

#include <cstddef>
#include <optional>
#include <queue>
#include <vector>

namespace ternq::io::detail {

/// What merging two adjacent symbols would give: its priority (the larger merges first) and the merged id.
template <class Priority, class Id>
struct merge_offer {
  Priority priority;
  Id merged;
};

/// Repeatedly merges the adjacent pair of `ids` with the highest priority, the leftmost on ties, until no pair is
/// offered; `offer(left, right)` gives a `merge_offer` for a pair of ids, or nullopt when they do not merge.
/// Symbols form a linked list over their initial positions and the queue holds candidate pairs; a candidate is
/// stale once either of its symbols has changed (versions), so each merge costs O(log n).
template <class Id, class Offer>
void merge_pairs(std::vector<Id>& ids, Offer&& offer) {
  using offered = typename decltype(offer(ids[0], ids[0]))::value_type;
  using priority = decltype(offered::priority);
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  struct symbol {
    Id id;
    std::size_t prev, next;
    unsigned version;
    bool alive;
  };
  struct candidate {
    priority rank;
    std::size_t left, right;
    unsigned left_version, right_version;
    Id merged;
  };
  const auto lower = [](const candidate& a, const candidate& b) {
    return a.rank != b.rank ? a.rank < b.rank : a.left > b.left;
  };
  std::vector<symbol> list(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    list[i] = {ids[i], i == 0 ? none : i - 1, i + 1 == ids.size() ? none : i + 1, 0, true};
  }
  std::priority_queue<candidate, std::vector<candidate>, decltype(lower)> queue(lower);
  const auto consider = [&](std::size_t l, std::size_t r) {
    if (const std::optional<offered> o = offer(list[l].id, list[r].id)) {
      queue.push({o->priority, l, r, list[l].version, list[r].version, o->merged});
    }
  };
  for (std::size_t i = 0; i + 1 < list.size(); ++i) consider(i, i + 1);
  while (!queue.empty()) {
    const candidate c = queue.top();
    queue.pop();
    symbol& l = list[c.left];
    symbol& r = list[c.right];
    if (!l.alive || !r.alive || l.next != c.right || l.version != c.left_version || r.version != c.right_version) {
      continue;
    }
    l.id = c.merged;
    ++l.version;
    r.alive = false;
    l.next = r.next;
    if (r.next != none) list[r.next].prev = c.left;
    if (l.prev != none) consider(l.prev, c.left);
    if (l.next != none) consider(c.left, l.next);
  }
  ids.clear();
  for (std::size_t i = list.empty() ? none : 0; i != none; i = list[i].next) ids.push_back(list[i].id);
}

}  // namespace ternq::io::detail
