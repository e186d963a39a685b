// SPDX-License-Identifier: MIT
// Symmetric quantizers on LLM-sized fp32 matrices, single thread, against a plain read of the same bytes.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <benchmark/benchmark.h>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "llm_like.hpp"
#include "support/baselines.hpp"
#include "support/ratio_reporter.hpp"

namespace {

using ternq::testing::row_matrix;
using symmetric = std::variant<ternq::absmean, ternq::twn, ternq::optimal_symmetric>;

/// The baseline: read every byte of `w` once.
void plain_read(benchmark::State& state, const row_matrix* w) {
  ternq::bench::plain_read(state, w->data(), static_cast<std::size_t>(w->size()) * sizeof(float));
}

template <class Method>
void quantize_one_thread(benchmark::State& state, const row_matrix* w, Method method,
                         std::optional<ternq::simd_level> simd) {
  if (simd && !ternq::simd_supported(*simd)) {
    state.SkipWithError("instruction-set variant not supported here");
    return;
  }
  for (auto _ : state) {
    auto q = ternq::quantize(ternq::cpu_exec{.threads = 1, .simd = simd}, *w, method);
    benchmark::DoNotOptimize(q.codes().data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(w->size() * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  const auto shapes = ternq::bench::take_shape_flags(argc, argv, {{4096, 4096}});
  std::vector<row_matrix> matrices;
  matrices.reserve(shapes.size());
  std::vector<ternq::bench::ratio_spec> ratios;
  const std::optional<ternq::simd_level> best;  // the fastest supported variant
  for (const auto& s : shapes) {
    matrices.push_back(ternq::testing::llm_like_weights(s.rows, s.cols, 42));
    const row_matrix* w = &matrices.back();
    const std::string n = ternq::bench::shape_name(s);
    benchmark::RegisterBenchmark(("plain_read/" + n).c_str(), plain_read, w);
    benchmark::RegisterBenchmark(("absmean_g128/" + n).c_str(), quantize_one_thread<ternq::absmean>, w,
                                 ternq::absmean{}, best);
    benchmark::RegisterBenchmark(("twn_g128/" + n).c_str(), quantize_one_thread<ternq::twn>, w, ternq::twn{}, best);
    benchmark::RegisterBenchmark(("optimal_symmetric_g128/" + n).c_str(), quantize_one_thread<ternq::optimal_symmetric>,
                                 w, ternq::optimal_symmetric{}, best);
    benchmark::RegisterBenchmark(("optimal_symmetric_per_row/" + n).c_str(),
                                 quantize_one_thread<ternq::optimal_symmetric>, w,
                                 ternq::optimal_symmetric{.group_size = ternq::per_row}, best);
    // The same methods forced onto the portable variant: the speed-up of the default one.
    const auto portable = std::optional<ternq::simd_level>(ternq::simd_level::portable);
    benchmark::RegisterBenchmark(("absmean_g128_portable/" + n).c_str(), quantize_one_thread<ternq::absmean>, w,
                                 ternq::absmean{}, portable);
    benchmark::RegisterBenchmark(("twn_g128_portable/" + n).c_str(), quantize_one_thread<ternq::twn>, w, ternq::twn{},
                                 portable);
    benchmark::RegisterBenchmark(("optimal_symmetric_g128_portable/" + n).c_str(),
                                 quantize_one_thread<ternq::optimal_symmetric>, w, ternq::optimal_symmetric{},
                                 portable);
    for (const char* name : {"absmean_g128", "twn_g128", "optimal_symmetric_g128"}) {
      ratios.push_back({std::string(name) + " speed-up of the default variant over portable " + n,
                        std::string(name) + "/" + n, std::string(name) + "_portable/" + n, false, 0.0});
    }
    ratios.push_back(
        {"absmean g128 throughput / plain read " + n, "absmean_g128/" + n, "plain_read/" + n, false, 0.25});
    ratios.push_back({"twn g128 throughput / plain read " + n, "twn_g128/" + n, "plain_read/" + n, false, 0.25});
    ratios.push_back(
        {"optimal g128 time / twn g128 time " + n, "optimal_symmetric_g128/" + n, "twn_g128/" + n, true, 4.0});
    ratios.push_back(
        {"optimal per-row time / twn g128 time " + n, "optimal_symmetric_per_row/" + n, "twn_g128/" + n, true, 0.0});
  }
  return ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
}
