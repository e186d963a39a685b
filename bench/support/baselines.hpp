// SPDX-License-Identifier: MIT
// Baselines the benchmarks measure in the same run, so that their results are ratios.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <benchmark/benchmark.h>

namespace ternq::bench {

/// Reads every byte of `[data, data + size)` once (an XOR over 64-bit words,
/// which compilers vectorize): the least any pass over the data must do.
inline void plain_read(benchmark::State& state, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (auto _ : state) {
    std::uint64_t acc = 0;
    for (std::size_t b = 0; b + 8 <= size; b += 8) {
      std::uint64_t v;
      std::memcpy(&v, bytes + b, 8);
      acc ^= v;
    }
    benchmark::DoNotOptimize(acc);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(size));
}

}  // namespace ternq::bench
