// SPDX-License-Identifier: MIT
// The Llama forward pass (one decoder block over a calibration batch) against Eigen's SGEMM: FLOP rates in one run.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "llama/forward.hpp"
#include "llama/model.hpp"
#include "support/ratio_reporter.hpp"
#include "support/synthetic_block.hpp"

namespace {

namespace llama = ternq::llama;

using setup = ternq::bench::synthetic_block;
using ternq::bench::make_synthetic_block;

/// The block's FLOPs: its seven products and both attention products over the full (unmasked) square.
double block_flops(const setup& s) {
  const double t = static_cast<double>(s.batch.size()), d = static_cast<double>(s.cfg.dim);
  const double kv = static_cast<double>(s.cfg.kv_dim()), hid = static_cast<double>(s.cfg.hidden_dim);
  const double len = static_cast<double>(s.batch.length), seqs = static_cast<double>(s.batch.sequences);
  return 2.0 * t * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * hid) + 4.0 * seqs * len * len * d;
}

/// The baseline: Eigen's SGEMM `X W^T` (tokens x dim by dim x hidden), split by output columns over `threads`
/// threads (one Eigen call each).
double sgemm_flops(const setup& s) {
  return 2.0 * static_cast<double>(s.batch.size()) * static_cast<double>(s.cfg.dim) *
         static_cast<double>(s.cfg.hidden_dim);
}

void sgemm(benchmark::State& state, const setup* s, unsigned threads) {
  llama::matrix out(s->h.rows(), s->block.w1.rows());
  const Eigen::Index n = s->block.w1.rows();
  for (auto _ : state) {
    std::vector<std::thread> pool;
    const auto part = [&](unsigned k) {
      const Eigen::Index c0 = n * k / threads, c1 = n * (k + 1) / threads;
      out.middleCols(c0, c1 - c0).noalias() = s->h * s->block.w1.middleRows(c0, c1 - c0).transpose();
    };
    for (unsigned k = 1; k < threads; ++k) pool.emplace_back(part, k);
    part(0);
    for (auto& t : pool) t.join();
    benchmark::DoNotOptimize(out.data());
  }
}

/// The block forward pass; the reported time is scaled by `sgemm_flops / block_flops`, so that the ratio of
/// the baseline's time to it is the ratio of FLOP rates.
void forward(benchmark::State& state, setup* s, unsigned threads) {
  const double scale = sgemm_flops(*s) / block_flops(*s);
  for (auto _ : state) {
    llama::matrix h = s->h;
    const auto start = std::chrono::steady_clock::now();
    llama::block_forward(s->cfg, 0, s->block, h, s->batch, llama::no_observer{}, ternq::cpu_exec{.threads = threads});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    benchmark::DoNotOptimize(h.data());
    state.SetIterationTime(seconds * scale);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --shape=DIMxTOKENS: block width and tokens (in sequences of 256, or one shorter sequence)
  const auto shapes = ternq::bench::take_shape_flags(argc, argv, {{2048, 1024}});
  std::vector<std::unique_ptr<setup>> setups;
  std::vector<ternq::bench::ratio_spec> ratios;
  for (const auto& sh : shapes) {
    const std::size_t length = std::min<std::size_t>(256, sh.cols);
    setups.push_back(
        std::make_unique<setup>(make_synthetic_block(sh.rows, std::max<std::size_t>(1, sh.cols / length), length)));
    setup* s = setups.back().get();
    const std::string n = ternq::bench::shape_name(sh);
    for (const unsigned t : {1U, 2U}) {
      const std::string th = "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(("sgemm/" + n + th).c_str(), sgemm, s, t);
      benchmark::RegisterBenchmark(("block_forward/" + n + th).c_str(), forward, s, t)->UseManualTime();
      ratios.push_back({"forward FLOP rate / Eigen SGEMM " + n + th, "block_forward/" + n + th + "/manual_time",
                        "sgemm/" + n + th, false, 0.5});
    }
  }
  return ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
}
