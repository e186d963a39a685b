// SPDX-License-Identifier: MIT
// The CUDA side of the quantizer and Gram tests and benchmarks: uploads, launches, downloads.
#include "cuda_quant_runner.hpp"

#include <algorithm>
#include <vector>

#include <ternq/cuda/catq.cuh>
#include <ternq/cuda/exec.cuh>
#include <ternq/cuda/gptq.cuh>
#include <ternq/cuda/gram.cuh>
#include <ternq/cuda/itf.cuh>
#include <ternq/cuda/itf_aga.cuh>
#include <ternq/cuda/optimal_aga.cuh>
#include <ternq/cuda/optimal_symmetric.cuh>
#include <ternq/cuda/scale_refit.cuh>
#include <ternq/cuda/symmetric.cuh>

#include "cuda_timing.cuh"

namespace ternq::testing::cuda {

atq_result itf_on_device(const matrix_view<const float>& w, const itf& method) {
  return ternq::cuda::itf_quantize(ternq::cuda::exec{}, w, method);
}

ternary_matrix quantize_itf_on_device(const matrix_view<const float>& w, const itf& method) {
  return quantize(ternq::cuda::exec{}, w, method);  // found by argument-dependent lookup, as a user would call it
}

atq_result itf_aga_on_device(const matrix_view<const float>& w, const matrix_view<const double>& gram,
                             const itf_aga& method) {
  return ternq::cuda::itf_aga_quantize(ternq::cuda::exec{}, w, gram, method);
}

atq_result itf_aga_on_device(const matrix_view<const float>& w, const matrix_view<const float>& gram,
                             const itf_aga& method) {
  return ternq::cuda::itf_aga_quantize(ternq::cuda::exec{}, w, gram, method);
}

ternary_matrix quantize_on_device(const matrix_view<const float>& w, const itf_aga& method,
                                  const matrix_view<const double>& gram) {
  return quantize(ternq::cuda::exec{}, w, method, gram);
}

ternary_matrix optimal_aga_on_device(const matrix_view<const float>& w, const matrix_view<const double>& gram,
                                     const optimal_aga& method) {
  return ternq::cuda::optimal_aga_quantize(ternq::cuda::exec{}, w, gram, method);
}

ternary_matrix quantize_on_device(const matrix_view<const float>& w, const absmean& method) {
  return quantize(ternq::cuda::exec{}, w, method);
}

ternary_matrix quantize_on_device(const matrix_view<const float>& w, const twn& method) {
  return quantize(ternq::cuda::exec{}, w, method);
}

ternary_matrix quantize_on_device(const matrix_view<const float>& w, const optimal_symmetric& method) {
  return quantize(ternq::cuda::exec{}, w, method);
}

double itf_device_seconds(std::span<const float> w, std::size_t rows, std::size_t cols, std::size_t group_size,
                          int repeats, double& read_seconds) {
  if (w.size() != rows * cols) fail(errc::shape_mismatch, "itf_device_seconds: ", w.size(), " weights");
  const auto dw = ternq::cuda::device_buffer<float>::from_host(w);
  const std::size_t groups = rows * ((cols + group_size - 1) / group_size);
  ternq::cuda::device_buffer<std::int8_t> codes(rows * cols);
  ternq::cuda::device_buffer<atq_grid> grids(groups);
  ternq::cuda::device_buffer<itf_group_stats> stats(groups);
  ternq::cuda::device_buffer<float> copy(rows * cols);
  read_seconds = seconds_per_launch(repeats, [&] {
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(copy.data(), dw.data(), rows * cols * sizeof(float), cudaMemcpyDeviceToDevice));
  });
  return seconds_per_launch(repeats, [&] {
    ternq::cuda::itf_fit_device({}, {dw.data(), rows, cols, cols}, group_size, 10,
                                {codes.data(), grids.data(), stats.data()});
  });
}

std::vector<double> gram_on_device(std::span<const matrix_view<const float>> batches, gram_products products) {
  if (batches.empty()) fail(errc::empty_matrix, "gram_on_device: no batch");
  ternq::cuda::gram_accumulator acc(batches.front().cols(), products);
  for (const auto& b : batches) acc.add(b);
  return acc.matrix();
}

std::vector<double> gram_from_device_batch(std::span<const float> x, std::size_t tokens, std::size_t features,
                                           std::size_t ld, gram_products products) {
  const auto dx = ternq::cuda::device_buffer<float>::from_host(x);
  ternq::cuda::gram_accumulator acc(features, products);
  acc.add_device(dx.data(), tokens, ld);
  return acc.matrix();
}

std::vector<double> gram_after_refused_batch(std::span<const float> good, std::span<const float> bad,
                                             std::size_t tokens, std::size_t features, bool& refused,
                                             std::uint64_t& tokens_after) {
  const auto dgood = ternq::cuda::device_buffer<float>::from_host(good);
  const auto dbad = ternq::cuda::device_buffer<float>::from_host(bad);
  ternq::cuda::gram_accumulator acc(features);
  acc.add_device(dgood.data(), tokens, features);
  refused = false;
  try {
    acc.add_device(dbad.data(), tokens, features);
  } catch (const ternq::error&) {
    refused = true;
  }
  tokens_after = acc.tokens();
  return acc.matrix();
}

namespace {

/// Seconds of uploading the `rows x cols` weights and downloading as many codes.
double transfer_seconds_of(std::span<const float> w, int repeats) {
  std::vector<std::int8_t> codes(w.size());
  return seconds_per_launch(repeats, [&] {
    const auto dw = ternq::cuda::device_buffer<float>::from_host(w);
    ternq::cuda::device_buffer<std::int8_t> dc(codes.size());
    dc.download(codes);
  });
}

}  // namespace

double optimal_symmetric_call_seconds(std::span<const float> w, std::size_t rows, std::size_t cols, int repeats,
                                      double& transfer_seconds) {
  if (w.size() != rows * cols) fail(errc::shape_mismatch, "optimal_symmetric_call_seconds: ", w.size(), " weights");
  transfer_seconds = transfer_seconds_of(w, repeats);
  const auto view = row_major(w.data(), rows, cols);
  return seconds_per_launch(repeats, [&] { (void)quantize(ternq::cuda::exec{}, view, optimal_symmetric{}); });
}

double itf_aga_call_seconds(std::span<const float> w, std::span<const double> gram, std::size_t rows, std::size_t cols,
                            int repeats, double& transfer_seconds) {
  if (w.size() != rows * cols || gram.size() != cols * cols) {
    fail(errc::shape_mismatch, "itf_aga_call_seconds: ", w.size(), " weights and ", gram.size(), " gram entries");
  }
  transfer_seconds = transfer_seconds_of(w, repeats);
  const auto view = row_major(w.data(), rows, cols);
  const auto c = row_major(gram.data(), cols, cols);
  return seconds_per_launch(repeats,
                            [&] { (void)ternq::cuda::itf_aga_quantize(ternq::cuda::exec{}, view, c, itf_aga{}); });
}

catq_result catq_on_device(const matrix_view<const float>& w, const matrix_view<const double>& gram,
                           const catq& options, bool tf32) {
  return ternq::cuda::catq_calibrate(ternq::cuda::exec{}, w, gram, options,
                                     {tf32 ? ternq::cuda::catq_gemm::tf32 : ternq::cuda::catq_gemm::fp32});
}

catq_result catq_on_device(const matrix_view<const float>& w, const matrix_view<const float>& gram,
                           const catq& options) {
  return ternq::cuda::catq_calibrate(ternq::cuda::exec{}, w, gram, options);
}

ternary_matrix quantize_on_device(const matrix_view<const float>& w, const catq& method,
                                  const matrix_view<const double>& gram) {
  return quantize(ternq::cuda::exec{}, w, method, gram);
}

catq_result catq_activations_on_device(const matrix_view<const float>& w, const matrix_view<const float>& x,
                                       const catq& options, const activation_loss_options& loss) {
  return ternq::cuda::catq_calibrate_activations(ternq::cuda::exec{}, w, x, options, loss);
}

catq_result catq_activations_on_device(const matrix_view<const float>& w, const matrix_view<const double>& x,
                                       const catq& options, const activation_loss_options& loss) {
  return ternq::cuda::catq_calibrate_activations(ternq::cuda::exec{}, w, x, options, loss);
}

double catq_activation_step_seconds(std::span<const float> w, std::span<const float> x, std::size_t rows,
                                    std::size_t cols, std::size_t tokens, const activation_loss_options& loss,
                                    int repeats, double& sgemm_seconds) {
  if (w.size() != rows * cols || x.size() != tokens * cols) {
    fail(errc::shape_mismatch, "catq_activation_step_seconds: ", w.size(), " weights and ", x.size(), " activations");
  }
  const auto view = row_major(w.data(), rows, cols);
  const auto xv = row_major(x.data(), tokens, cols);
  // every step of the timing in the soft phase: the schedule's hard phase starts after all of them
  const catq options{
      .steps = static_cast<std::size_t>(repeats) + 2, .gamma = 1.0, .patience = std::nullopt, .refit_scales = false};
  ternq::cuda::catq_activation_calibrator calibrator(ternq::cuda::exec{}, view, xv, options, loss);
  {
    const auto d_w = ternq::cuda::device_buffer<float>::from_host(w);
    const auto d_x = ternq::cuda::device_buffer<float>::from_host(x);
    ternq::cuda::device_buffer<float> d_r(rows * tokens), d_p(rows * cols);
    const ternq::cuda::blas_handle blas(nullptr);
    const float one = 1.0F, zero = 0.0F;
    const int m = static_cast<int>(cols), n = static_cast<int>(rows), t = static_cast<int>(tokens);
    sgemm_seconds = seconds_per_launch(repeats, [&] {
      TERNQ_CUDA_CHECK(cublasSgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, t, n, m, &one, d_x.data(), m, d_w.data(), m,
                                   &zero, d_r.data(), t));
      TERNQ_CUDA_CHECK(cublasSgemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, n, t, &one, d_x.data(), m, d_r.data(), t,
                                   &zero, d_p.data(), m));
    });
  }
  return seconds_per_launch(repeats, [&] { (void)calibrator.step(); });
}

double catq_step_seconds(std::span<const float> w, std::span<const double> gram, std::size_t rows, std::size_t cols,
                         bool tf32, int repeats, double& sgemm_seconds) {
  if (w.size() != rows * cols || gram.size() != cols * cols) {
    fail(errc::shape_mismatch, "catq_step_seconds: ", w.size(), " weights and ", gram.size(), " gram entries");
  }
  const auto view = row_major(w.data(), rows, cols);
  const auto c = row_major(gram.data(), cols, cols);
  // every step of the timing in the soft phase: the schedule's hard phase starts after all of them
  const catq options{
      .steps = static_cast<std::size_t>(repeats) + 2, .gamma = 1.0, .patience = std::nullopt, .refit_scales = false};
  const ternq::cuda::catq_gemm gemm = tf32 ? ternq::cuda::catq_gemm::tf32 : ternq::cuda::catq_gemm::fp32;
  ternq::cuda::catq_calibrator calibrator(ternq::cuda::exec{}, view, c, options, {gemm});

  std::vector<float> x(rows * cols, 0.25F);
  const auto d_x = ternq::cuda::device_buffer<float>::from_host(x);
  std::vector<float> cf(cols * cols);
  for (std::size_t k = 0; k < cf.size(); ++k) cf[k] = static_cast<float>(gram[k]);
  const auto d_c = ternq::cuda::device_buffer<float>::from_host(cf);
  ternq::cuda::device_buffer<float> d_y(rows * cols);
  const ternq::cuda::blas_handle blas(nullptr);
  TERNQ_CUDA_CHECK(cublasSetMathMode(blas.get(), tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const float one = 1.0F, zero = 0.0F;
  const int m = static_cast<int>(cols), n = static_cast<int>(rows);
  sgemm_seconds = seconds_per_launch(repeats, [&] {
    TERNQ_CUDA_CHECK(cublasSgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, m, &one, d_c.data(), m, d_x.data(), m,
                                 &zero, d_y.data(), m));
  });
  return seconds_per_launch(repeats, [&] { (void)calibrator.step(); });
}

gptq_result gptq_on_device(const matrix_view<const float>& w, const matrix_view<const double>& gram,
                           const gptq& options) {
  return ternq::cuda::gptq_quantize(ternq::cuda::exec{}, w, gram, options);
}

gptq_result gptq_on_device(const matrix_view<const float>& w, const matrix_view<const float>& gram,
                           const gptq& options) {
  return ternq::cuda::gptq_quantize(ternq::cuda::exec{}, w, gram, options);
}

ternary_matrix quantize_on_device(const matrix_view<const float>& w, const gptq& options,
                                  const matrix_view<const double>& gram) {
  return quantize(ternq::cuda::exec{}, w, options, gram);
}

double gptq_call_seconds(std::span<const float> w, std::span<const double> gram, std::size_t rows, std::size_t cols,
                         const gptq& options, int repeats, double& sgemm_seconds, gptq_report& last) {
  if (w.size() != rows * cols || gram.size() != cols * cols) {
    fail(errc::shape_mismatch, "gptq_call_seconds: ", w.size(), " weights and ", gram.size(), " gram entries");
  }
  const auto view = row_major(w.data(), rows, cols);
  const auto c = row_major(gram.data(), cols, cols);
  {
    const auto d_w = ternq::cuda::device_buffer<float>::from_host(w);
    std::vector<float> cf(cols * cols);
    for (std::size_t k = 0; k < cf.size(); ++k) cf[k] = static_cast<float>(gram[k]);
    const auto d_c = ternq::cuda::device_buffer<float>::from_host(cf);
    ternq::cuda::device_buffer<float> d_y(rows * cols);
    const ternq::cuda::blas_handle blas(nullptr);
    const float one = 1.0F, zero = 0.0F;
    const int m = static_cast<int>(cols), n = static_cast<int>(rows);
    sgemm_seconds = seconds_per_launch(repeats, [&] {
      TERNQ_CUDA_CHECK(cublasSgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, m, &one, d_c.data(), m, d_w.data(), m,
                                   &zero, d_y.data(), m));
    });
  }
  // host to host, so the events bracket whole calls (each returns with its result on the host)
  return seconds_per_launch(repeats,
                            [&] { last = ternq::cuda::gptq_quantize(ternq::cuda::exec{}, view, c, options).report; });
}

scale_refit_report refit_on_device(ternary_matrix& q, const matrix_view<const float>& w,
                                   const matrix_view<const double>& gram, grid_precision precision) {
  return ternq::cuda::refit_scales_to_output(ternq::cuda::exec{}, q, w, gram, precision);
}

scale_refit_report refit_on_device(ternary_matrix& q, const matrix_view<const float>& w,
                                   const matrix_view<const float>& gram, grid_precision precision) {
  return ternq::cuda::refit_scales_to_output(ternq::cuda::exec{}, q, w, gram, precision);
}

double refit_call_seconds(const ternary_matrix& q, std::span<const float> w, std::span<const double> gram, int repeats,
                          double& dgemm_seconds) {
  const std::size_t rows = q.rows(), cols = q.cols();
  if (w.size() != rows * cols || gram.size() != cols * cols) {
    fail(errc::shape_mismatch, "refit_call_seconds: ", w.size(), " weights and ", gram.size(), " gram entries for a ",
         rows, "x", cols, " matrix");
  }
  {
    std::vector<double> wd(w.begin(), w.end());
    const auto d_w = ternq::cuda::device_buffer<double>::from_host(wd);
    const auto d_c = ternq::cuda::device_buffer<double>::from_host(gram);
    ternq::cuda::device_buffer<double> d_y(rows * cols);
    const ternq::cuda::blas_handle blas(nullptr);
    const double one = 1.0, zero = 0.0;
    const int m = static_cast<int>(cols), n = static_cast<int>(rows);
    dgemm_seconds = seconds_per_launch(repeats, [&] {
      TERNQ_CUDA_CHECK(cublasDgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, m, &one, d_c.data(), m, d_w.data(), m,
                                   &zero, d_y.data(), m));
    });
  }
  const auto view = row_major(w.data(), rows, cols);
  const auto c = row_major(gram.data(), cols, cols);
  ternary_matrix work = q;
  // host to host; the copy back to the unfitted scales is part of each call, and small beside it
  return seconds_per_launch(repeats, [&] {
    std::copy(q.scales().begin(), q.scales().end(), work.scales().begin());
    (void)ternq::cuda::refit_scales_to_output(ternq::cuda::exec{}, work, view, c);
  });
}

double gram_device_seconds(std::size_t tokens, std::size_t features, int repeats, double& syrk_seconds) {
  std::vector<float> x(tokens * features);
  for (std::size_t k = 0; k < x.size(); ++k) x[k] = static_cast<float>((k * 2654435761U) % 1000) * 1e-3F - 0.5F;
  const auto dx = ternq::cuda::device_buffer<float>::from_host(x);
  ternq::cuda::device_buffer<float> c(features * features);
  ternq::cuda::gram_accumulator acc(features);
  const ternq::cuda::blas_handle blas(nullptr);
  const float one = 1.0F, zero = 0.0F;
  const int m = static_cast<int>(features);
  syrk_seconds = seconds_per_launch(repeats, [&] {
    TERNQ_CUDA_CHECK(cublasSsyrk(blas.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, m, static_cast<int>(tokens), &one,
                                 dx.data(), m, &zero, c.data(), m));
  });
  return seconds_per_launch(repeats, [&] { acc.add_device(dx.data(), tokens, features); });
}

}  // namespace ternq::testing::cuda
