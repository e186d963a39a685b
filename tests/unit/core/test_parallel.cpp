// SPDX-License-Identifier: MIT
// parallel_for: full coverage, fixed chunking, exception propagation; progress/cancellation.
#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "ternq/core/parallel.hpp"
#include "ternq/core/progress.hpp"

TEST_CASE("parallel_for covers every index exactly once for any thread count") {
  for (unsigned threads : {1U, 2U, 3U, 8U, 64U}) {
    for (std::size_t n : {0UL, 1UL, 5UL, 100UL}) {
      std::vector<std::atomic<int>> hits(n);
      ternq::parallel_for(n, threads, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (auto& h : hits) CHECK(h.load() == 1);
    }
  }
}

TEST_CASE("parallel_for rethrows an exception from a worker") {
  CHECK_THROWS_WITH_AS(ternq::parallel_for(10, 4,
                                           [](std::size_t b, std::size_t) {
                                             if (b > 0) throw std::runtime_error("worker failed");
                                           }),
                       "worker failed", std::runtime_error);
}

TEST_CASE("cpu_exec thread counts") {
  CHECK(ternq::cpu_exec{.threads = 3}.thread_count() == 3);
  CHECK_FALSE(ternq::cpu_exec{}.simd.has_value());
  CHECK(ternq::cpu_exec{.threads = 0}.thread_count() == 1);
  CHECK(ternq::cpu_exec{}.thread_count() >= 1);
}

TEST_CASE("a progress callback returning false cancels with a cancelled error") {
  int calls = 0;
  const ternq::progress_callback cb = [&](const ternq::progress_event& e) {
    ++calls;
    return e.done < 2;
  };
  CHECK_NOTHROW(ternq::report_progress(cb, {"demo.step", 1, 5, std::nullopt}));
  CHECK_THROWS_WITH_AS(ternq::report_progress(cb, {"demo.step", 2, 5, 0.5}),
                       "[ternq.cancelled] demo.step: cancelled by the progress callback after 2 of 5", ternq::error);
  CHECK(calls == 2);
  CHECK_NOTHROW(ternq::report_progress(ternq::progress_callback{}, {"demo.step", 9, 9, std::nullopt}));
}
