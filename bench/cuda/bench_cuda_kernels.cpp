// SPDX-License-Identifier: MIT
// The CUDA packed products: effective bandwidth (packed bytes read per second) as a fraction of the device's
// peak, for the decode GEMV and small batches at LLM shapes; ITF on the device against a device-to-device copy of
// the same matrix in the same run; the exact optimum and itf_aga, host to host, against the transfers they cannot
// avoid; a CAT-Q step against one SGEMM of its product (two on raw activations); the Gram accumulation (float chunks
// summed in double) against one cuBLAS SSYRK of the same batch; the scale refit against one DGEMM of its shape. Device
// time from CUDA events (manual time).
#include <cstdio>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <ternq/quant/absmean.hpp>
#include <ternq/quant/quantize.hpp>

#include "cuda_products_runner.hpp"
#include "cuda_quant_runner.hpp"
#include "llm_like.hpp"
#include "packed_problems.hpp"

namespace {

double peak_bandwidth() {
  static const double peak = [] {
    std::string name;
    const double b = ternq::testing::cuda::device_peak_bandwidth(name);
    std::printf("device: %s, peak memory bandwidth %.0f GB/s\n", name.c_str(), b * 1e-9);
    return b;
  }();
  return peak;
}

void packed_product(benchmark::State& state, ternq::pack::format f, std::size_t rows, std::size_t cols,
                    std::size_t n) {
  const auto p = ternq::testing::random_packed(f, rows, cols, 42);
  for (auto _ : state) {
    state.SetIterationTime(ternq::testing::cuda::packed_matmul_seconds(f, rows, cols, p.bytes, n, 50));
  }
  const double bytes = static_cast<double>(p.bytes.size() + n * cols * 4 + n * rows * 4);
  state.counters["bandwidth_GBps"] = benchmark::Counter(bytes * 1e-9 * static_cast<double>(state.iterations()),
                                                        benchmark::Counter::kIsRate);
  state.counters["fraction_of_peak"] = benchmark::Counter(
      bytes * static_cast<double>(state.iterations()) / peak_bandwidth(), benchmark::Counter::kIsRate);
}

/// ITF (g = 128, at most 10 grid solves) on a resident LLM-like matrix; `copy_over_itf` is the time of a
/// device-to-device copy of the matrix over ITF's (1: ITF as fast as a read and write of W).
void itf_device(benchmark::State& state, std::size_t rows, std::size_t cols) {
  const ternq::testing::row_matrix w = ternq::testing::llm_like_weights(rows, cols, 42);
  const std::span<const float> data(w.data(), rows * cols);
  double copy = 0.0;
  double itf = 0.0;
  for (auto _ : state) {
    itf = ternq::testing::cuda::itf_device_seconds(data, rows, cols, 128, 20, copy);
    state.SetIterationTime(itf);
  }
  state.counters["copy_over_itf"] = copy / itf;
  state.counters["weights_GBps"] = static_cast<double>(rows * cols * sizeof(float)) * 1e-9 / itf;
}

/// The exact optimum (g = 128) called on a host matrix: upload, segmented sort, scan and fit, download;
/// `transfer_over_call` is the time of the transfers alone (W up, codes down) over the call's (1: transfer-bound).
void optimal_device(benchmark::State& state, std::size_t rows, std::size_t cols) {
  const ternq::testing::row_matrix w = ternq::testing::llm_like_weights(rows, cols, 42);
  const std::span<const float> data(w.data(), rows * cols);
  double transfer = 0.0;
  double call = 0.0;
  for (auto _ : state) {
    call = ternq::testing::cuda::optimal_symmetric_call_seconds(data, rows, cols, 5, transfer);
    state.SetIterationTime(call);
  }
  state.counters["transfer_over_call"] = transfer / call;
}

/// itf_aga (g = 128) called on a host matrix and Gram matrix: checks, upload, cuSOLVER's batched check of the
/// blocks, ITF, the T C products (DGEMM), the 2x2 solves, download; `transfer_over_call` as above.
void itf_aga_device(benchmark::State& state, std::size_t rows, std::size_t cols) {
  const ternq::testing::row_matrix w = ternq::testing::llm_like_weights(rows, cols, 42);
  const ternq::testing::row_gram_matrix c =
      ternq::testing::gram_of_activations(ternq::testing::llm_like_activations(2048, cols, 42));
  double transfer = 0.0;
  double call = 0.0;
  for (auto _ : state) {
    call = ternq::testing::cuda::itf_aga_call_seconds(std::span<const float>(w.data(), rows * cols),
                                                      std::span<const double>(c.data(), cols * cols), rows, cols, 5,
                                                      transfer);
    state.SetIterationTime(call);
  }
  state.counters["transfer_over_call"] = transfer / call;
}

/// One CAT-Q calibration step (soft phase, Gram loss) on resident weights: grids, the fused soft step and
/// residual, `E C` by SGEMM (fp32 or TF32), the gradient per group, the loss in double, Adam, and the loss brought
/// back to the host. `sgemm_over_step` is the time of one SGEMM of the same `E C` in the same arithmetic over it
/// (1: the step costs no more than its product); `step_ms` is the figure of the goal (1.5 ms at 4096^2).
void catq_step_device(benchmark::State& state, std::size_t rows, std::size_t cols, bool tf32) {
  const ternq::testing::row_matrix w = ternq::testing::llm_like_weights(rows, cols, 42);
  const ternq::testing::row_gram_matrix c =
      ternq::testing::gram_of_activations(ternq::testing::llm_like_activations(2048, cols, 42));
  double sgemm = 0.0;
  double step = 0.0;
  for (auto _ : state) {
    step = ternq::testing::cuda::catq_step_seconds(std::span<const float>(w.data(), rows * cols),
                                                   std::span<const double>(c.data(), cols * cols), rows, cols, tf32, 20,
                                                   sgemm);
    state.SetIterationTime(step);
  }
  state.counters["sgemm_over_step"] = sgemm / step;
  state.counters["step_ms"] = step * 1e3;
}

/// A CAT-Q step on raw activations (`tokens` of them, the Huber loss), against its two SGEMMs alone.
void catq_activation_step_device(benchmark::State& state, std::size_t rows, std::size_t cols, std::size_t tokens) {
  const ternq::testing::row_matrix w = ternq::testing::llm_like_weights(rows, cols, 43);
  const ternq::testing::row_matrix x = ternq::testing::llm_like_activations(tokens, cols, 43);
  double sgemm = 0.0;
  double step = 0.0;
  for (auto _ : state) {
    step = ternq::testing::cuda::catq_activation_step_seconds(std::span<const float>(w.data(), rows * cols),
                                                              std::span<const float>(x.data(), tokens * cols), rows,
                                                              cols, tokens, {}, 20, sgemm);
    state.SetIterationTime(step);
  }
  state.counters["sgemm_over_step"] = sgemm / step;
  state.counters["step_ms"] = step * 1e3;
}

/// The Gram accumulation of a resident batch (`add_device`: finiteness check, SSYRK per 1024-token chunk, sums in
/// double); `syrk_over_gram` is the time of one SSYRK of the whole batch over it (1: no overhead).
void gram_device(benchmark::State& state, std::size_t tokens, std::size_t features) {
  double syrk = 0.0;
  double gram = 0.0;
  for (auto _ : state) {
    gram = ternq::testing::cuda::gram_device_seconds(tokens, features, 10, syrk);
    state.SetIterationTime(gram);
  }
  state.counters["syrk_over_gram"] = syrk / gram;
  state.counters["TFLOPs"] =
      static_cast<double>(tokens) * static_cast<double>(features * (features + 1)) * 1e-12 / gram;
}

/// The driver's whole pipeline (GPTQ + SSR + ITF + AGA, g = 128, the reference configuration) on a
/// Llama-7B linear shape, host to host: its time, the time of one SGEMM of the same `n m^2` shape against it, and
/// the seconds of each of the driver's steps (the report's, from the last call).
const ternq::gptq llama_pipeline{.grid = ternq::itf_aga{.group_size = 128}, .order = ternq::ssr{}};

double gptq_pipeline_seconds(std::size_t rows, std::size_t cols, int repeats, double& sgemm,
                             ternq::gptq_report& report) {
  const ternq::testing::row_matrix w = ternq::testing::llm_like_weights(rows, cols, 7);
  const ternq::testing::row_gram_matrix c =
      ternq::testing::gram_of_activations(ternq::testing::llm_like_activations(2048, cols, 7));
  return ternq::testing::cuda::gptq_call_seconds(std::span<const float>(w.data(), rows * cols),
                                                 std::span<const double>(c.data(), cols * cols), rows, cols,
                                                 llama_pipeline, repeats, sgemm, report);
}

void gptq_device(benchmark::State& state, std::size_t rows, std::size_t cols) {
  double sgemm = 0.0;
  double call = 0.0;
  ternq::gptq_report report;
  for (auto _ : state) {
    call = gptq_pipeline_seconds(rows, cols, 2, sgemm, report);
    state.SetIterationTime(call);
  }
  state.counters["call_s"] = call;
  state.counters["sgemm_over_call"] = sgemm / call;
  state.counters["setup_s"] = report.seconds.setup;
  state.counters["order_s"] = report.seconds.order;
  state.counters["factor_s"] = report.seconds.factor;
  state.counters["quantize_s"] = report.seconds.quantize;
  state.counters["update_s"] = report.seconds.update;
  state.counters["downdate_s"] = report.seconds.downdate;
}

/// The goal's figure: all 224 linear layers of Llama-7B (per layer four 4096x4096, two 11008x4096 and one
/// 4096x11008), from one call of each shape.
void gptq_llama7b(benchmark::State& state) {
  double sgemm = 0.0;
  ternq::gptq_report report;
  double total = 0.0;
  for (auto _ : state) {
    const double square = gptq_pipeline_seconds(4096, 4096, 1, sgemm, report);
    const double wide = gptq_pipeline_seconds(11008, 4096, 1, sgemm, report);
    const double down = gptq_pipeline_seconds(4096, 11008, 1, sgemm, report);
    total = 32.0 * (4.0 * square + 2.0 * wide + down);
    state.SetIterationTime(total);
  }
  state.counters["llama7b_224_s"] = total;
  state.counters["goal_over_224"] = 10.0 / total;
}

/// The scale refit (`cuda::refit_scales_to_output`, fp32 grids) of an absmean matrix (g = 128) on a Llama-7B linear
/// shape, host to host, against one DGEMM of the weights by the Gram matrix: the refit's products are two of those
/// (`W C` and the per-group `T_h C[h, :]`), so `dgemm_over_call` is at most about 0.5.
void scale_refit_device(benchmark::State& state, std::size_t rows, std::size_t cols) {
  const ternq::testing::row_matrix w = ternq::testing::llm_like_weights(rows, cols, 9);
  const ternq::testing::row_gram_matrix c =
      ternq::testing::gram_of_activations(ternq::testing::llm_like_activations(2048, cols, 9));
  const ternq::ternary_matrix q = ternq::quantize(ternq::row_major(w.data(), rows, cols), ternq::absmean{});
  double dgemm = 0.0;
  double call = 0.0;
  for (auto _ : state) {
    call = ternq::testing::cuda::refit_call_seconds(q, std::span<const float>(w.data(), rows * cols),
                                                    std::span<const double>(c.data(), cols * cols), 2, dgemm);
    state.SetIterationTime(call);
  }
  state.counters["call_s"] = call;
  state.counters["dgemm_over_call"] = dgemm / call;
}

}  // namespace

int main(int argc, char** argv) {
  std::string why;
  if (!ternq::testing::cuda::device_available(why)) {
    std::printf("ternq_bench_cuda_kernels: no device (%s)\n", why.c_str());
    return 0;
  }
  for (const auto f : {ternq::pack::format::tq2_0, ternq::pack::format::q2_0}) {
    for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{4096, 4096}, {11008, 4096}, {4096, 11008}}) {
      for (const std::size_t n : {1, 8, 64}) {
        const std::string name = std::string(ternq::pack::name_of(f)) + "/" + std::to_string(rows) + "x" +
                                 std::to_string(cols) + "/n" + std::to_string(n);
        benchmark::RegisterBenchmark(name.c_str(), packed_product, f, rows, cols, n)->UseManualTime();
      }
    }
  }
  for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{4096, 4096}, {11008, 4096}, {4096, 11008}}) {
    const std::string name = "itf/" + std::to_string(rows) + "x" + std::to_string(cols);
    benchmark::RegisterBenchmark(name.c_str(), itf_device, rows, cols)->UseManualTime()->Iterations(3);
  }
  for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{4096, 4096}, {11008, 4096}, {4096, 11008}}) {
    const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
    benchmark::RegisterBenchmark(("optimal/" + shape).c_str(), optimal_device, rows, cols)
        ->UseManualTime()
        ->Iterations(2);
    benchmark::RegisterBenchmark(("itf_aga/" + shape).c_str(), itf_aga_device, rows, cols)
        ->UseManualTime()
        ->Iterations(2);
  }
  for (const bool tf32 : {false, true}) {
    const std::string name = std::string("catq_step/4096x4096/") + (tf32 ? "tf32" : "fp32");
    benchmark::RegisterBenchmark(name.c_str(), catq_step_device, 4096, 4096, tf32)->UseManualTime()->Iterations(2);
  }
  benchmark::RegisterBenchmark("catq_step/4096x4096/activations_2048", catq_activation_step_device, 4096, 4096, 2048)
      ->UseManualTime()
      ->Iterations(2);
  for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{4096, 4096}, {11008, 4096}, {4096, 11008}}) {
    const std::string name = "gptq_ssr_itf_aga/" + std::to_string(rows) + "x" + std::to_string(cols);
    benchmark::RegisterBenchmark(name.c_str(), gptq_device, rows, cols)->UseManualTime()->Iterations(1);
  }
  benchmark::RegisterBenchmark("gptq_ssr_itf_aga/llama7b_224", gptq_llama7b)->UseManualTime()->Iterations(1);
  for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{4096, 4096}, {11008, 4096}, {4096, 11008}}) {
    const std::string name = "scale_refit/" + std::to_string(rows) + "x" + std::to_string(cols);
    benchmark::RegisterBenchmark(name.c_str(), scale_refit_device, rows, cols)->UseManualTime()->Iterations(1);
  }
  for (const std::size_t features : {4096, 11008}) {
    const std::string name = "gram/8192x" + std::to_string(features);
    benchmark::RegisterBenchmark(name.c_str(), gram_device, 8192, features)->UseManualTime()->Iterations(3);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
