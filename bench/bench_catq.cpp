// SPDX-License-Identifier: MIT
// One CAT-Q calibration step (forward, loss, gradient, Adam) against one Eigen SGEMM of the same size.
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "llm_like.hpp"
#include "support/ratio_reporter.hpp"

namespace {

using ternq::testing::row_matrix;

/// The data of one shape: weights `n x m`, a Gram matrix `m x m`.
struct problem {
  row_matrix w;
  Eigen::MatrixXd gram;
};

problem make_problem(const ternq::bench::shape& s) {
  problem p;
  p.w = ternq::testing::llm_like_weights(s.rows, s.cols, 42);
  // The step's cost does not depend on C's values; 512 tokens keep the setup short.
  ternq::gram_accumulator acc(s.cols);
  acc.add(ternq::testing::llm_like_activations(512, s.cols, 42));
  p.gram = acc.matrix();
  return p;
}

/// The baseline: the step's one GEMM, `E C` with `E` (n x m, row-major) and `C` (m x m), in float.
void sgemm(benchmark::State& state, const problem* p) {
  const row_matrix e = p->w;
  const Eigen::MatrixXf c = p->gram.cast<float>();
  row_matrix out(e.rows(), e.cols());
  for (auto _ : state) {
    out.noalias() = e * c;
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(e.rows()) * static_cast<double>(e.cols()) * static_cast<double>(e.cols()),
      benchmark::Counter::kIsIterationInvariantRate);
}

/// One calibration step at a given phase: forward, loss and gradient (with
/// the hard evaluation when `evaluate`), then the Adam update of every logit.
void catq_step(benchmark::State& state, const problem* p, ternq::catq_phase phase, bool evaluate) {
  const ternq::cpu_exec exec{.threads = 1};
  const auto w = ternq::as_const_view(p->w);
  const ternq::catq_objective<float, ternq::gram_loss<float>> objective(
      exec, w, ternq::gram_loss<float>(ternq::as_const_view(p->gram)));
  ternq::catq_modulation<float> mod(exec, w, 128, ternq::catq_priors{});
  ternq::optim::adam<float> adam(mod.logits().size(), {.lr = 5e-3});
  std::vector<float> grad(mod.logits().size());
  for (auto _ : state) {
    const auto pass = objective.gradient(mod, phase, grad, evaluate);
    adam.step(exec, mod.logits(), grad);
    benchmark::DoNotOptimize(pass.loss);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto shapes = ternq::bench::take_shape_flags(argc, argv, {{4096, 4096}});
  std::vector<problem> problems;
  problems.reserve(shapes.size());
  std::vector<ternq::bench::ratio_spec> ratios;
  for (const auto& s : shapes) {
    problems.push_back(make_problem(s));
    const problem* p = &problems.back();
    const std::string n = ternq::bench::shape_name(s);
    benchmark::RegisterBenchmark(("sgemm/" + n).c_str(), sgemm, p)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("catq_step_soft/" + n).c_str(), catq_step, p, ternq::catq_phase::soft(15.0), false)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("catq_step_soft_eval/" + n).c_str(), catq_step, p, ternq::catq_phase::soft(15.0),
                                 true)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("catq_step_hard/" + n).c_str(), catq_step, p, ternq::catq_phase::hard_step(), true)
        ->Unit(benchmark::kMillisecond);
    ratios.push_back({"catq soft step time / sgemm time " + n, "catq_step_soft/" + n, "sgemm/" + n, true, 1.25});
    ratios.push_back(
        {"catq soft step + hard eval time / sgemm time " + n, "catq_step_soft_eval/" + n, "sgemm/" + n, true, 2.5});
    ratios.push_back({"catq hard step time / sgemm time " + n, "catq_step_hard/" + n, "sgemm/" + n, true, 1.25});
  }
  return ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
}
