// SPDX-License-Identifier: MIT
// The main job: quantize an LLM-like layer with every method and print E_w, E_x and time per method.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "llm_like.hpp"

namespace {

struct options {
  std::size_t rows = 512;
  std::size_t cols = 1024;
  std::size_t tokens = 2048;
  std::size_t group_size = 128;  // 0: per row
  std::uint64_t seed = 1;
  unsigned threads = 0;  // 0: all hardware threads
  bool csv = false;
  std::size_t catq_steps = ternq::catq{}.steps;
  std::string catq_curve;  // where to write catq's loss curve as CSV (empty: nowhere)
};

using weights = ternq::testing::row_matrix;
using method_fn = std::function<ternq::ternary_matrix(const ternq::cpu_exec&, const weights&, const Eigen::MatrixXd&)>;

struct table_entry {
  std::string name;
  method_fn run;
};

/// Every method the library offers, in the order of the table. The PT²-LLM
/// rows form its ablation: ATQ with ITF on/off and AGA on/off (`atq_init`
/// is the initialization alone, `aga` is AGA on the initialization's
/// codes), each alone and inside the GPTQ driver with SSR, then the block
/// order with the full ITF+AGA grid: none (sequential), random, act-order,
/// SSR. `catq_report` receives the report of the catq run (its loss curve).
std::vector<table_entry> methods(ternq::group_size_option g, const options& opt,
                                 const std::shared_ptr<ternq::catq_report>& catq_report) {
  auto entry = [](std::string name, auto method) {
    return table_entry{std::move(name),
                       [method](const ternq::cpu_exec& exec, const weights& w, const Eigen::MatrixXd& c) {
                         return ternq::quantize(exec, w, method, c);
                       }};
  };
  const ternq::itf atq_init{.group_size = g, .max_iters = 0};
  const ternq::itf itf{.group_size = g};
  const ternq::itf_aga aga{.group_size = g, .max_iters = 0};
  const ternq::itf_aga itf_aga{.group_size = g};
  return {
      entry("absmean", ternq::absmean{.group_size = g}),
      entry("twn", ternq::twn{.group_size = g}),
      entry("optimal_symmetric", ternq::optimal_symmetric{.group_size = g}),
      entry("atq_init", atq_init),
      entry("itf", itf),
      entry("aga", aga),
      entry("itf_aga", itf_aga),
      entry("gptq_absmean", ternq::gptq{.grid = ternq::absmean{.group_size = g}}),
      entry("gptq_optimal", ternq::gptq{.grid = ternq::optimal_symmetric{.group_size = g}}),
      entry("gptq_atq_init", ternq::gptq{.grid = atq_init}),
      entry("gptq_itf", ternq::gptq{.grid = itf}),
      entry("gptq_aga", ternq::gptq{.grid = aga}),
      entry("gptq_ssr_atq_init", ternq::gptq{.grid = atq_init, .order = ternq::ssr{}}),
      entry("gptq_ssr_itf", ternq::gptq{.grid = itf, .order = ternq::ssr{}}),
      entry("gptq_ssr_aga", ternq::gptq{.grid = aga, .order = ternq::ssr{}}),
      entry("gptq_ssr_itf_aga", ternq::gptq{.grid = itf_aga, .order = ternq::ssr{}}),
      entry("gptq_itf_aga", ternq::gptq{.grid = itf_aga}),
      entry("gptq_rand_itf_aga", ternq::gptq{.grid = itf_aga, .order = ternq::random_order{1}}),
      entry("gptq_act_itf_aga", ternq::gptq{.grid = itf_aga, .order = ternq::act_order{}}),
      entry("gptq_itf_aga_gram", ternq::gptq{.grid = itf_aga, .metric = ternq::aga_metric::gram_block}),
      // CAT-Q's initialization (the hard ternarization of its priors), then the calibrated result.
      table_entry{"catq_init",
                  [g](const ternq::cpu_exec& exec, const weights& w, const Eigen::MatrixXd&) {
                    return ternq::catq_initial_matrix(exec, w, ternq::catq{.group_size = g});
                  }},
      table_entry{"catq",
                  [g, steps = opt.catq_steps, catq_report](const ternq::cpu_exec& exec, const weights& w,
                                                           const Eigen::MatrixXd& c) {
                    auto result = ternq::catq_calibrate(exec, w, c, ternq::catq{.group_size = g, .steps = steps});
                    *catq_report = std::move(result.report);
                    return std::move(result.matrix);
                  }},
  };
}

/// Writes catq's loss curve as CSV: one line per step (its sharpness or "hard", the loss the gradient
/// was taken of) plus the hard E_x where it was evaluated, both relative to `energy` = tr(W C W^T).
bool write_catq_curve(const std::string& path, const ternq::catq_report& r, double energy) {
  std::FILE* out = std::fopen(path.c_str(), "w");
  if (out == nullptr) return false;
  std::fprintf(out, "step,sharpness,rel_loss,rel_hard_E_x\n");
  std::size_t next_eval = 0;
  for (std::size_t k = 0; k <= r.loss.size(); ++k) {  // the last line: the logits after the final update
    while (next_eval < r.evaluations.size() && r.evaluations[next_eval].step < k) ++next_eval;
    char hard[32] = "";
    if (next_eval < r.evaluations.size() && r.evaluations[next_eval].step == k) {
      std::snprintf(hard, sizeof hard, "%.8g", r.evaluations[next_eval].hard_loss / energy);
    }
    if (k == r.loss.size()) {
      std::fprintf(out, "%zu,,,%s\n", k, hard);
    } else if (std::isfinite(r.sharpness[k])) {
      std::fprintf(out, "%zu,%.6g,%.8g,%s\n", k, r.sharpness[k], r.loss[k] / energy, hard);
    } else {
      std::fprintf(out, "%zu,hard,%.8g,%s\n", k, r.loss[k] / energy, hard);
    }
  }
  return std::fclose(out) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"Quantize a generated LLM-like layer with every ternq method and compare the errors."};
  app.add_option("--rows", opt.rows, "output features (rows of W)")->check(CLI::PositiveNumber);
  app.add_option("--cols", opt.cols, "input features (columns of W)")->check(CLI::PositiveNumber);
  app.add_option("--tokens", opt.tokens, "calibration tokens for the Gram matrix")->check(CLI::PositiveNumber);
  app.add_option("--group-size", opt.group_size, "columns per group (0: one group per row)");
  app.add_option("--seed", opt.seed, "generator seed");
  app.add_option("--threads", opt.threads, "worker threads (0: all)");
  app.add_flag("--csv", opt.csv, "print CSV instead of a table");
  app.add_option("--catq-steps", opt.catq_steps, "calibration steps of catq")->check(CLI::PositiveNumber);
  app.add_option("--catq-curve", opt.catq_curve,
                 "write catq's loss curve (step, sharpness, relative loss, relative hard E_x) as CSV to this file");
  CLI11_PARSE(app, argc, argv);

  const weights w = ternq::testing::llm_like_weights(opt.rows, opt.cols, opt.seed);
  const weights x = ternq::testing::llm_like_activations(opt.tokens, opt.cols, opt.seed);
  ternq::gram_accumulator gram(opt.cols);
  gram.add(x);
  const ternq::cpu_exec exec{.threads = opt.threads == 0 ? std::nullopt : std::optional<unsigned>(opt.threads)};
  const ternq::group_size_option g = opt.group_size == 0 ? ternq::per_row : ternq::group_size_option(opt.group_size);

  if (opt.csv) {
    std::printf("method,rel_E_w,rel_E_x,time_ms\n");
  } else {
    std::printf("ternq %s: LLM-like layer %zux%zu (seed %llu), %zu calibration tokens, group size %s, %u threads\n\n",
                ternq::version_string, opt.rows, opt.cols, static_cast<unsigned long long>(opt.seed), opt.tokens,
                opt.group_size == 0 ? "per row" : std::to_string(opt.group_size).c_str(), exec.thread_count());
    std::printf("%-22s %12s %12s %12s\n", "method", "rel E_w", "rel E_x", "time (ms)");
  }
  const auto catq_report = std::make_shared<ternq::catq_report>();
  for (const auto& m : methods(g, opt, catq_report)) {
    const auto start = std::chrono::steady_clock::now();
    const ternq::ternary_matrix q = m.run(exec, w, gram.matrix());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const double ew = ternq::relative_weight_error(w, q);
    const double ex = ternq::relative_output_error(w, q, gram.matrix());
    if (opt.csv) {
      std::printf("%s,%.6f,%.6f,%.3f\n", m.name.c_str(), ew, ex, ms);
    } else {
      std::printf("%-22s %12.6f %12.6f %12.3f\n", m.name.c_str(), ew, ex, ms);
    }
  }
  if (!opt.catq_curve.empty() &&
      !write_catq_curve(opt.catq_curve, *catq_report, ternq::output_energy(w, gram.matrix()))) {
    std::fprintf(stderr, "cannot write %s\n", opt.catq_curve.c_str());
    return 1;
  }
  return 0;
}
