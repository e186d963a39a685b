// SPDX-License-Identifier: MIT
// CPU execution policy and a deterministic parallel_for over index ranges.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <optional>
#include <thread>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/simd.hpp"

namespace ternq {

/// The CPU execution policy: `threads` workers (nullopt: one per hardware
/// thread) and the instruction-set variant of the hot loops (nullopt: the
/// fastest this processor supports). Every ternq algorithm gives
/// bit-identical results whatever the thread count and variant: work is
/// split into independent index ranges and reduced in a fixed order.
struct cpu_exec {
  std::optional<unsigned> threads = std::nullopt;
  std::optional<simd_level> simd = std::nullopt;

  [[nodiscard]] unsigned thread_count() const noexcept {
    if (threads) return *threads == 0 ? 1U : *threads;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1U : hw;
  }

  /// The variant to run; throws `unsupported` if the requested one cannot run here.
  [[nodiscard]] simd_level simd_variant() const {
    if (!simd) return best_simd_level();
    if (!simd_supported(*simd)) {
      fail(errc::unsupported, "cpu_exec: the ", simd_level_name(*simd),
           " variant is not available on this processor or build");
    }
    return *simd;
  }
};

/// Calls `body(begin, end)` on contiguous chunks covering `[0, n)`, on up to
/// `threads` threads (the caller's thread takes the first chunk). Chunks are
/// a pure function of `n` and `threads`; the first exception thrown by any
/// chunk is rethrown after all chunks finish.
template <class Body>
void parallel_for(std::size_t n, unsigned threads, Body&& body) {
  const std::size_t workers = std::min<std::size_t>(std::max(1U, threads), n);
  if (workers <= 1) {
    if (n > 0) body(std::size_t{0}, n);
    return;
  }
  std::vector<std::exception_ptr> errors(workers);
  auto run = [&](std::size_t w) {
    const std::size_t begin = n * w / workers;
    const std::size_t end = n * (w + 1) / workers;
    try {
      body(begin, end);
    } catch (...) {
      errors[w] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace ternq
