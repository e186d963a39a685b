// SPDX-License-Identifier: MIT
// A work queue over independent tasks: dynamic scheduling whose results never depend on the thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>

#include "ternq/core/parallel.hpp"

namespace ternq::linalg {

/// Calls `body(task)` once for every task in `[0, count)` on up to `threads`
/// threads, each taking the next unclaimed task. Tasks must write disjoint
/// outputs; then the result is the same whichever thread runs which task,
/// so a computation split into tasks of a fixed shape (tiles of a matrix
/// product) gives the same bits for every thread count. The first exception
/// is rethrown after all workers stop.
template <class Body>
void parallel_tasks(std::size_t count, unsigned threads, Body&& body) {
  const std::size_t workers = std::min<std::size_t>(std::max(1U, threads), count);
  if (workers <= 1) {
    for (std::size_t t = 0; t < count; ++t) body(t);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  parallel_for(workers, static_cast<unsigned>(workers), [&](std::size_t, std::size_t) {
    try {
      for (std::size_t t = next.fetch_add(1); t < count && !failed.load(); t = next.fetch_add(1)) body(t);
    } catch (...) {
      failed.store(true);
      throw;
    }
  });
}

}  // namespace ternq::linalg
