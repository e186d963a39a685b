// SPDX-License-Identifier: MIT
// One CAT-Q calibration step (forward, loss, gradient, Adam) against one Eigen SGEMM of the same size, and whole
// calibrations: the defaults (at most 100 steps) against catq::paper() (1000 steps), steps, time and hard E_x.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
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

/// A whole calibration's problem: the method table's LLM-like layer (seed 1, 2048 calibration tokens).
struct calibration_problem {
  ternq::bench::shape s;
  row_matrix w;
  Eigen::MatrixXd gram;
};

calibration_problem make_calibration_problem(const ternq::bench::shape& s) {
  calibration_problem p{s, ternq::testing::llm_like_weights(s.rows, s.cols, 1), {}};
  ternq::gram_accumulator acc(s.cols);
  acc.add(ternq::testing::llm_like_activations(2048, s.cols, 1));
  p.gram = acc.matrix();
  return p;
}

/// What one calibration gave, for the table after the run.
struct calibration_figures {
  std::size_t steps = 0;
  double seconds = 0.0;
  double rel_e_x = 0.0;          ///< hard E_x of the returned matrix, relative to tr(W C W^T)
  double rel_e_x_learned = 0.0;  ///< ... with the learned scales (before the closed-form scales)
};
std::map<std::string, calibration_figures> calibrations;  // by benchmark name

/// A whole calibration with `options` on one thread (as the steps above).
void catq_calibration(benchmark::State& state, const calibration_problem* p, ternq::catq options, std::string name) {
  const ternq::cpu_exec exec{.threads = 1};
  const double energy = (p->w.cast<double>() * p->gram).cwiseProduct(p->w.cast<double>()).sum();
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const ternq::catq_result r = ternq::catq_calibrate(exec, p->w, p->gram, options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    calibrations[name] = {r.report.loss.size(), seconds, r.report.final_error / energy,
                          r.report.learned_error / energy};
    state.counters["steps"] = static_cast<double>(r.report.loss.size());
    state.counters["rel_E_x"] = r.report.final_error / energy;
  }
}

/// The table of whole calibrations: before (catq::paper()) and after (the defaults), with the goal.
void print_calibrations(const std::vector<ternq::bench::shape>& shapes) {
  bool header = false;
  for (const auto& s : shapes) {
    const std::string n = ternq::bench::shape_name(s);
    const auto before = calibrations.find("catq_calibrate_paper/" + n);
    const auto after = calibrations.find("catq_calibrate_defaults/" + n);
    if (before == calibrations.end() || after == calibrations.end()) continue;  // filtered out
    if (!header) {
      std::printf("\nCAT-Q calibrations (LLM-like, seed 1, 2048 tokens, group 128, 1 thread), same run\n");
      std::printf("%-10s %-22s %6s %10s %13s %16s\n", "shape", "setup", "steps", "time (s)", "hard rel E_x",
                  "learned scales");
      header = true;
    }
    for (const auto& [label, f] :
         {std::pair{"before: catq::paper()", before->second}, std::pair{"after: catq{}", after->second}}) {
      std::printf("%-10s %-22s %6zu %10.3f %13.4f %16.4f\n", n.c_str(), label, f.steps, f.seconds, f.rel_e_x,
                  f.rel_e_x_learned);
    }
    const calibration_figures& a = after->second;
    const calibration_figures& b = before->second;
    std::printf("%-10s goal: steps %zu <= 100 %s; hard E_x %.4f <= %.4f (ratio %.3f) %s; time ratio %.3f\n", n.c_str(),
                a.steps, a.steps <= 100 ? "met" : "MISSED", a.rel_e_x, b.rel_e_x, a.rel_e_x / b.rel_e_x,
                a.rel_e_x <= b.rel_e_x ? "met" : "MISSED", a.seconds / b.seconds);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto calib_shapes = ternq::bench::take_shape_flags(argc, argv, {{512, 1024}}, "--calib-shape=");
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
  std::vector<calibration_problem> calibration_problems;
  calibration_problems.reserve(calib_shapes.size());
  for (const auto& s : calib_shapes) {
    calibration_problems.push_back(make_calibration_problem(s));
    const calibration_problem* p = &calibration_problems.back();
    const std::string n = ternq::bench::shape_name(s);
    for (const auto& [setup, options] :
         {std::pair{std::string("paper"), ternq::catq::paper()}, std::pair{std::string("defaults"), ternq::catq{}}}) {
      const std::string name = "catq_calibrate_" + setup + "/" + n;
      benchmark::RegisterBenchmark(name.c_str(), catq_calibration, p, options, name)
          ->Iterations(1)
          ->Unit(benchmark::kSecond);
    }
  }
  const int status = ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
  print_calibrations(calib_shapes);
  return status;
}
