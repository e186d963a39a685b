// SPDX-License-Identifier: MIT
// CAT-Q on every linear layer of a real llama2.c model: catq::paper() (1000 steps) against the defaults, per layer.
//
// Each layer is calibrated alone on the Gram matrix of its inputs in the full-precision model (not sequentially),
// so both setups see the same problem. Prints steps, time and relative E_x (on the calibration tokens and on
// held-out tokens) per layer, then a summary per group size with the goal: the defaults in at most 100 steps with
// no larger E_x than paper()'s.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "cli/text_slice.hpp"
#include "llama/forward.hpp"
#include "llama/load.hpp"
#include "tokenize/open.hpp"

namespace {

namespace llama = ternq::llama;

/// One linear layer: its weights and the Gram matrices of its inputs.
struct layer_problem {
  std::size_t block = 0;
  llama::linear which = llama::linear::q;
  llama::matrix w;
  Eigen::MatrixXd gram;          ///< calibration tokens
  Eigen::MatrixXd gram_heldout;  ///< held-out tokens
};

/// Token windows of `text` from byte `offset`, as ternq-quantize's --calib-text makes them.
llama::batch windows_of(const ternq::tokenizers::tokenizer& tok, const std::string& text, std::size_t offset,
                        std::size_t sequences, std::size_t length) {
  const ternq::cli::tokenized t = ternq::cli::tokenize(tok, ternq::cli::read_text(text, offset), sequences * length,
                                                       tok.needs_whitespace_collapse());
  return ternq::cli::windows(t.tokens, length, sequences);
}

/// The Gram matrix of every linear layer's inputs over `b`, in the order of the forward pass.
std::vector<Eigen::MatrixXd> grams_of(llama::model& m, const llama::batch& b, std::vector<layer_problem>* layers) {
  std::vector<Eigen::MatrixXd> grams;
  auto observe = [&](std::size_t index, llama::activation_site site, const llama::matrix& x, llama::layer& w) {
    ternq::gram_accumulator acc(static_cast<std::size_t>(x.cols()));
    acc.add(x);
    for (const llama::linear which : llama::consumers(site)) {
      grams.push_back(acc.matrix());
      if (layers != nullptr) layers->push_back({index, which, w.weight(which), {}, {}});
    }
  };
  llama::final_hidden(m, b, observe);
  return grams;
}

struct figures {
  std::size_t steps = 0;
  double seconds = 0.0;
  double rel_e_x = 0.0;
  double rel_e_x_heldout = 0.0;
};

figures calibrate(const layer_problem& p, const ternq::catq& options, const ternq::cpu_exec& exec) {
  const auto start = std::chrono::steady_clock::now();
  const ternq::catq_result r = ternq::catq_calibrate(exec, p.w, p.gram, options);
  figures f;
  f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  f.steps = r.report.loss.size();
  f.rel_e_x = ternq::relative_output_error(p.w, r.matrix, p.gram);
  f.rel_e_x_heldout = ternq::relative_output_error(p.w, r.matrix, p.gram_heldout);
  return f;
}

double geometric_mean(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += std::log(x);
  return std::exp(s / static_cast<double>(v.size()));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CAT-Q per layer of a llama2.c model: catq::paper() against the defaults"};
  std::string model_path, tokenizer_path, text;
  std::size_t offset = 0, heldout_offset = 400000, sequences = 32, length = 256;
  std::vector<std::size_t> group_sizes = {64};
  unsigned threads = 1;
  app.add_option("--model", model_path, "llama2.c checkpoint")->required();
  app.add_option("--tokenizer", tokenizer_path, "llama2.c tokenizer .bin")->required();
  app.add_option("--text", text, "calibration text (UTF-8)")->required();
  app.add_option("--offset", offset, "byte offset of the calibration tokens (default 0)");
  app.add_option("--heldout-offset", heldout_offset, "byte offset of the held-out tokens (default 400000)");
  app.add_option("--seqs", sequences, "sequences of each slice (default 32)");
  app.add_option("--len", length, "tokens per sequence (default 256)");
  app.add_option("--group-size", group_sizes, "group sizes, 0: per row (default 64)");
  app.add_option("--threads", threads, "threads of each calibration (default 1)");
  CLI11_PARSE(app, argc, argv);
  try {
    llama::model m = llama::load_llama2c(model_path);
    const auto tok = ternq::tokenizers::open_tokenizer(tokenizer_path);
    const llama::batch calibration = windows_of(*tok, text, offset, sequences, length);
    const llama::batch heldout = windows_of(*tok, text, heldout_offset, sequences, length);
    std::vector<layer_problem> layers;
    std::vector<Eigen::MatrixXd> grams = grams_of(m, calibration, &layers);
    std::vector<Eigen::MatrixXd> grams_heldout = grams_of(m, heldout, nullptr);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      layers[i].gram = std::move(grams[i]);
      layers[i].gram_heldout = std::move(grams_heldout[i]);
    }
    std::printf(
        "%s: %zu linear layers; calibration %zu x %zu tokens from byte %zu, held-out from byte %zu; %u thread(s)\n",
        model_path.c_str(), layers.size(), calibration.sequences, calibration.length, offset, heldout_offset, threads);
    const ternq::cpu_exec exec{.threads = threads};
    for (const std::size_t g : group_sizes) {
      const ternq::group_size_option group = g == 0 ? ternq::group_size_option(ternq::per_row) : g;
      ternq::catq before = ternq::catq::paper();
      before.group_size = group;
      const ternq::catq after{.group_size = group};
      std::printf("\ngroup %s\n%-8s %-9s | %-33s | %-33s | %s\n", g == 0 ? "per row" : std::to_string(g).c_str(),
                  "layer", "shape", "paper(): steps  time  E_x  held-out", "defaults: steps  time  E_x  held-out",
                  "ratio");
      std::vector<double> e_before, e_after, h_before, h_after;
      double t_before = 0.0, t_after = 0.0, worst = 0.0;
      std::size_t wins = 0, max_steps = 0;
      for (const layer_problem& p : layers) {
        const figures b = calibrate(p, before, exec);
        const figures a = calibrate(p, after, exec);
        const double ratio = a.rel_e_x / b.rel_e_x;
        std::printf("%zu.%-6s %4ldx%-4ld | %5zu %7.3fs %.4f %.4f | %5zu %7.3fs %.4f %.4f | %.3f\n", p.block,
                    std::string(llama::linear_name(p.which)).c_str(), static_cast<long>(p.w.rows()),
                    static_cast<long>(p.w.cols()), b.steps, b.seconds, b.rel_e_x, b.rel_e_x_heldout, a.steps, a.seconds,
                    a.rel_e_x, a.rel_e_x_heldout, ratio);
        e_before.push_back(b.rel_e_x);
        e_after.push_back(a.rel_e_x);
        h_before.push_back(b.rel_e_x_heldout);
        h_after.push_back(a.rel_e_x_heldout);
        t_before += b.seconds;
        t_after += a.seconds;
        wins += a.rel_e_x <= b.rel_e_x ? 1 : 0;
        worst = std::max(worst, ratio);
        max_steps = std::max(max_steps, a.steps);
      }
      const double gb = geometric_mean(e_before), ga = geometric_mean(e_after);
      std::printf("geometric mean rel E_x: paper() %.4f (held-out %.4f), defaults %.4f (held-out %.4f)\n", gb,
                  geometric_mean(h_before), ga, geometric_mean(h_after));
      std::printf("time: paper() %.2f s, defaults %.2f s (ratio %.3f)\n", t_before, t_after, t_after / t_before);
      std::printf(
          "goal: at most 100 steps (%zu) %s; geometric mean E_x <= paper()'s (ratio %.3f) %s; "
          "per layer: %zu of %zu at or below paper()'s, worst ratio %.3f\n",
          max_steps, max_steps <= 100 ? "met" : "MISSED", ga / gb, ga <= gb ? "met" : "MISSED", wins, layers.size(),
          worst);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ternq_catq_layers: %s\n", e.what());
    return 1;
  }
  return 0;
}
