// SPDX-License-Identifier: MIT
// What `--fp-target` costs: one synthetic decoder block quantized GPTQ style with and without the fp reference
// (the unquantized block's forward pass, the retarget of each layer, and its errors against the unquantized
// output), in one run.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "llama/sequential.hpp"
#include "support/ratio_reporter.hpp"
#include "support/synthetic_block.hpp"

namespace {

namespace llama = ternq::llama;
using ternq::bench::synthetic_block;

/// The grid of the results' recommended files (GPTQ with ITF and AGA, g = 128; smaller blocks for narrow shapes).
llama::layer_quantizer gptq_quantizer(std::size_t dim) {
  const std::size_t group = std::min<std::size_t>(128, dim);
  return [group](const llama::matrix& w, const Eigen::MatrixXd& gram, std::size_t, llama::linear) {
    return ternq::quantize(w, ternq::gptq{.grid = ternq::itf_aga{.group_size = group}}, gram);
  };
}

void quantize_block(benchmark::State& state, const synthetic_block* s, unsigned threads, bool fp_target) {
  const llama::layer_quantizer quantize = gptq_quantizer(s->cfg.dim);
  llama::block_times split;
  for (auto _ : state) {
    state.PauseTiming();
    llama::layer w = s->block;
    llama::matrix h = s->h;
    llama::fp_reference reference{.h = s->h};
    state.ResumeTiming();
    const auto results =
        llama::quantize_block(s->cfg, 0, w, h, s->batch, quantize, {}, {}, ternq::cpu_exec{.threads = threads}, 0,
                              llama::all_linears.size(), &split, fp_target ? &reference : nullptr);
    benchmark::DoNotOptimize(results.data());
    benchmark::DoNotOptimize(h.data());
  }
  const auto per_iteration = [&](double seconds) { return seconds / static_cast<double>(state.iterations()); };
  state.counters["s_forward"] = per_iteration(split.forward);
  state.counters["s_gram"] = per_iteration(split.gram);
  state.counters["s_quantize"] = per_iteration(split.quantize);
}

}  // namespace

int main(int argc, char** argv) {
  // --shape=DIMxTOKENS: block width and calibration tokens (in sequences of 256, or one shorter sequence)
  const auto shapes = ternq::bench::take_shape_flags(argc, argv, {{1024, 512}});
  std::vector<std::unique_ptr<synthetic_block>> blocks;
  std::vector<ternq::bench::ratio_spec> ratios;
  for (const auto& sh : shapes) {
    const std::size_t length = std::min<std::size_t>(256, sh.cols);
    blocks.push_back(std::make_unique<synthetic_block>(
        ternq::bench::make_synthetic_block(sh.rows, std::max<std::size_t>(1, sh.cols / length), length)));
    const synthetic_block* s = blocks.back().get();
    const std::string n = ternq::bench::shape_name(sh);
    for (const unsigned t : {1U, 2U}) {
      const std::string th = "/threads:" + std::to_string(t);
      const std::string plain = "quantize_block/" + n + th, fp = "quantize_block_fp_target/" + n + th;
      benchmark::RegisterBenchmark(plain.c_str(), quantize_block, s, t, false)->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(fp.c_str(), quantize_block, s, t, true)->Unit(benchmark::kMillisecond);
      ratios.push_back({"block time with --fp-target / without " + n + th, fp, plain, true, 0.0});
    }
  }
  return ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
}
