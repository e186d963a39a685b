// SPDX-License-Identifier: MIT
// The GPTQ driver and Gram accumulation on LLM-sized fp32 layers against Eigen's SGEMM/SSYRK; ITF against a read.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "llm_like.hpp"
#include "support/baselines.hpp"
#include "support/ratio_reporter.hpp"

namespace {

using ternq::testing::row_matrix;

constexpr std::size_t block = 128;  // the driver's block (group) size

/// A layer and the Gram matrix of 512 tokens of LLM-like activations (the
/// driver's cost does not depend on the Gram matrix's content).
struct layer {
  row_matrix w;
  Eigen::MatrixXd c;
};

std::unique_ptr<layer> make_layer(const ternq::bench::shape& s) {
  auto l = std::make_unique<layer>();
  l->w = ternq::testing::llm_like_weights(s.rows, s.cols, 42);
  ternq::gram_accumulator acc(s.cols);
  acc.add(ternq::testing::llm_like_activations(512, s.cols, 42));
  l->c = acc.matrix();
  return l;
}

/// Flops of the driver's rank-g updates `W[:, F] -= Err K^T` over all blocks: `n m^2 - n m g` for `g | m`.
double update_flops(std::size_t n, std::size_t m) {
  double f = 0.0;
  for (std::size_t first = 0; first < m; first += block) {
    const std::size_t size = std::min(block, m - first);
    f += 2.0 * static_cast<double>(n) * static_cast<double>(size) * static_cast<double>(m - first - size);
  }
  return f;
}

/// The baseline: Eigen's SGEMM doing exactly the driver's update products
/// (one `n x g` by `g x |F|` product per block into a column-major `n x m`
/// float matrix), one Eigen call per block, or through the driver's tiled
/// helper on `threads` threads.
void sgemm_updates(benchmark::State& state, std::size_t n, std::size_t m, unsigned threads) {
  const auto ni = static_cast<Eigen::Index>(n);
  const auto mi = static_cast<Eigen::Index>(m);
  Eigen::MatrixXf w = Eigen::MatrixXf::Random(ni, mi);
  const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> err =
      Eigen::MatrixXf::Random(ni, static_cast<Eigen::Index>(block)) * 1e-3F;
  const Eigen::MatrixXf kt = Eigen::MatrixXf::Random(static_cast<Eigen::Index>(block), mi) * 1e-3F;
  for (auto _ : state) {
    for (Eigen::Index first = 0; first < mi; first += static_cast<Eigen::Index>(block)) {
      const Eigen::Index size = std::min<Eigen::Index>(static_cast<Eigen::Index>(block), mi - first);
      const Eigen::Index f = first + size;
      if (f == mi) break;
      auto target = w.rightCols(mi - f);
      if (threads == 1) {
        target.noalias() -= err.leftCols(size) * kt.topLeftCorner(size, mi - f);
      } else {
        ternq::linalg::subtract_product_by_row_tiles(target, err.leftCols(size), kt.topLeftCorner(size, mi - f),
                                                     threads);
      }
    }
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(update_flops(n, m) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// The last report of each whole-driver benchmark, by name.
std::map<std::string, ternq::gptq_report>& last_reports() {
  static std::map<std::string, ternq::gptq_report> reports;
  return reports;
}

/// The whole driver on `threads` threads; counters give the FLOP rate of
/// its update step (the `n m^2` part) and of the whole run, and seconds per step.
void driver(benchmark::State& state, const layer* l, ternq::gptq options, unsigned threads, std::string key) {
  const ternq::cpu_exec exec{.threads = threads};
  double total = 0.0;
  ternq::gptq_report report;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto r = ternq::gptq_quantize(exec, l->w, l->c, options);
    benchmark::DoNotOptimize(r.matrix.codes().data());
    total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report = std::move(r.report);
  }
  const double flops = update_flops(static_cast<std::size_t>(l->w.rows()), static_cast<std::size_t>(l->w.cols()));
  state.counters["update_GFLOP/s"] = flops * 1e-9 / report.seconds.update;
  state.counters["nm2_GFLOP/s"] = flops * 1e-9 / total;
  state.counters["s_total"] = total;
  state.counters["s_setup"] = report.seconds.setup;
  state.counters["s_order"] = report.seconds.order;
  state.counters["s_factor"] = report.seconds.factor;
  state.counters["s_quantize"] = report.seconds.quantize;
  state.counters["s_update"] = report.seconds.update;
  state.counters["s_downdate"] = report.seconds.downdate;
  last_reports()[key] = std::move(report);
}

/// The update step alone, as manual time: the seconds the driver's last run
/// under `key` spent in `update_remaining` (the driver runs first if it has
/// not yet), so the ratio to `sgemm_updates` is the FLOP rate of the
/// `n m^2` part relative to SGEMM without running the driver twice.
void update_step(benchmark::State& state, const layer* l, ternq::gptq options, unsigned threads, std::string key) {
  for (auto _ : state) {
    auto it = last_reports().find(key);
    if (it == last_reports().end()) {
      last_reports()[key] = ternq::gptq_quantize(ternq::cpu_exec{.threads = threads}, l->w, l->c, options).report;
      it = last_reports().find(key);
    }
    state.SetIterationTime(it->second.seconds.update);
  }
}

/// Tokens of the Gram benchmarks: two chunks of the accumulator.
constexpr std::size_t gram_tokens = 2048;

/// Symmetric rank-k update of a `cols x cols` matrix by `tokens` in chunks of 1024, Eigen's
/// `rankUpdate` on one thread: in float (the baseline), or in double after converting each chunk
/// (what `gram_accumulator` did before it had float chunks and tiles).
template <class S>
void syrk(benchmark::State& state, const row_matrix* x) {
  const Eigen::Index m = x->cols();
  Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic> c(m, m);
  Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic> chunk;
  for (auto _ : state) {
    c.setZero();
    for (Eigen::Index t0 = 0; t0 < x->rows(); t0 += 1024) {
      chunk = x->middleRows(t0, std::min<Eigen::Index>(1024, x->rows() - t0)).template cast<S>();
      c.template selfadjointView<Eigen::Lower>().rankUpdate(chunk.transpose());
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(m) * static_cast<double>(m + 1) * static_cast<double>(x->rows()) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

/// `gram_accumulator::add` of the same tokens.
void gram(benchmark::State& state, const row_matrix* x, ternq::gram_products products, unsigned threads) {
  const auto m = static_cast<std::size_t>(x->cols());
  for (auto _ : state) {
    ternq::gram_accumulator acc(m, {.products = products, .exec = ternq::cpu_exec{.threads = threads}});
    acc.add(*x);
    benchmark::DoNotOptimize(acc.matrix().data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(m) * static_cast<double>(m + 1) * static_cast<double>(x->rows()) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

/// The baseline: read every byte of `w` once.
void plain_read(benchmark::State& state, const row_matrix* w) {
  ternq::bench::plain_read(state, w->data(), static_cast<std::size_t>(w->size()) * sizeof(float));
}

/// ITF alone (g128, one thread) with the instruction-set variant `simd` (none: the fastest).
void itf_alone_at(benchmark::State& state, const row_matrix* w, std::optional<ternq::simd_level> simd) {
  for (auto _ : state) {
    auto q = ternq::quantize(ternq::cpu_exec{.threads = 1, .simd = simd}, *w, ternq::itf{});
    benchmark::DoNotOptimize(q.codes().data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(w->size() * sizeof(float)));
}

void itf_alone(benchmark::State& state, const row_matrix* w) { itf_alone_at(state, w, std::nullopt); }

}  // namespace

int main(int argc, char** argv) {
  const auto shapes = ternq::bench::take_shape_flags(argc, argv, {{4096, 4096}, {11008, 4096}, {4096, 11008}});
  std::vector<std::unique_ptr<layer>> layers;
  std::vector<std::unique_ptr<row_matrix>> activations;  // of the Gram benchmarks, one per distinct cols
  std::vector<std::size_t> gram_cols;
  std::vector<ternq::bench::ratio_spec> ratios;
  for (const auto& s : shapes) {
    layers.push_back(make_layer(s));
    const layer* l = layers.back().get();
    const std::string n = ternq::bench::shape_name(s);
    const ternq::gptq seq{.grid = ternq::itf_aga{.group_size = block}};
    const ternq::gptq act{.grid = ternq::itf_aga{.group_size = block}, .order = ternq::act_order{}};
    const ternq::gptq with_ssr{.grid = ternq::itf_aga{.group_size = block}, .order = ternq::ssr{}};
    const ternq::gptq seq_fp32{.grid = ternq::itf_aga{.group_size = block}, .factor = ternq::factor_precision::fp32};
    for (unsigned t : {1U, 2U}) {
      const std::string th = "/threads:" + std::to_string(t);
      const std::string sgemm = "sgemm_updates/" + n + th;
      benchmark::RegisterBenchmark(sgemm.c_str(), sgemm_updates, s.rows, s.cols, t);
      benchmark::RegisterBenchmark(("gptq_itf_aga/" + n + th).c_str(), driver, l, seq, t, "seq" + n + th);
      benchmark::RegisterBenchmark(("gptq_update_step/" + n + th).c_str(), update_step, l, seq, t, "seq" + n + th)
          ->UseManualTime();
      benchmark::RegisterBenchmark(("gptq_act_itf_aga/" + n + th).c_str(), driver, l, act, t, "act" + n + th);
      benchmark::RegisterBenchmark(("gptq_ssr_itf_aga/" + n + th).c_str(), driver, l, with_ssr, t, "ssr" + n + th);
      benchmark::RegisterBenchmark(("gptq_itf_aga_fp32_factor/" + n + th).c_str(), driver, l, seq_fp32, t,
                                   "fp32" + n + th);
      ratios.push_back({"update step FLOP rate / Eigen SGEMM " + n + th, "gptq_update_step/" + n + th + "/manual_time",
                        sgemm, false, 0.5});
      ratios.push_back({"whole driver n m^2 FLOP rate / SGEMM " + n + th, "gptq_itf_aga/" + n + th, sgemm, false, 0.5});
      ratios.push_back(
          {"whole driver with act-order / SGEMM " + n + th, "gptq_act_itf_aga/" + n + th, sgemm, false, 0.5});
      ratios.push_back({"whole driver with SSR / SGEMM " + n + th, "gptq_ssr_itf_aga/" + n + th, sgemm, false, 0.5});
      ratios.push_back(
          {"whole driver, fp32 factor / SGEMM " + n + th, "gptq_itf_aga_fp32_factor/" + n + th, sgemm, false, 0.5});
    }
    if (std::find(gram_cols.begin(), gram_cols.end(), s.cols) == gram_cols.end()) {
      gram_cols.push_back(s.cols);
      activations.push_back(std::make_unique<row_matrix>(ternq::testing::llm_like_activations(gram_tokens, s.cols, 7)));
      const row_matrix* x = activations.back().get();
      const std::string g = std::to_string(gram_tokens) + "x" + std::to_string(s.cols);
      benchmark::RegisterBenchmark(("ssyrk/" + g).c_str(), syrk<float>, x);
      benchmark::RegisterBenchmark(("dsyrk/" + g).c_str(), syrk<double>, x);
      ratios.push_back({"double SYRK (the Gram before) / SSYRK " + g, "dsyrk/" + g, "ssyrk/" + g, false, 0.0});
      for (unsigned t : {1U, 2U}) {
        const std::string th = "/threads:" + std::to_string(t);
        benchmark::RegisterBenchmark(("gram_float_chunks/" + g + th).c_str(), gram, x,
                                     ternq::gram_products::float_chunks, t);
        benchmark::RegisterBenchmark(("gram_double_products/" + g + th).c_str(), gram, x,
                                     ternq::gram_products::double_products, t);
        ratios.push_back({"Gram, float chunks / one-thread SSYRK " + g + th, "gram_float_chunks/" + g + th,
                          "ssyrk/" + g, false, 0.0});
        ratios.push_back({"Gram, double products / one-thread SSYRK " + g + th, "gram_double_products/" + g + th,
                          "ssyrk/" + g, false, 0.0});
      }
    }
    benchmark::RegisterBenchmark(("plain_read/" + n).c_str(), plain_read, &l->w);
    benchmark::RegisterBenchmark(("itf/" + n).c_str(), itf_alone, &l->w);
    benchmark::RegisterBenchmark(("itf_portable/" + n).c_str(), itf_alone_at, &l->w, ternq::simd_level::portable);
    ratios.push_back({"itf throughput / plain read " + n, "itf/" + n, "plain_read/" + n, false, 0.1});
    ratios.push_back({"itf speed-up of the default variant over portable " + n, "itf/" + n, "itf_portable/" + n,
                      false, 0.0});
  }
  return ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
}
