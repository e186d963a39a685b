// SPDX-License-Identifier: MIT
// The tools' CUDA entry points (cli/device.hpp), compiled by nvcc where the CUDA toolkit is found.
#include <cuda_runtime.h>

#include <ternq/cuda/catq.cuh>
#include <ternq/cuda/exec.cuh>
#include <ternq/cuda/gptq.cuh>
#include <ternq/cuda/itf.cuh>
#include <ternq/cuda/itf_aga.cuh>
#include <ternq/cuda/optimal_aga.cuh>
#include <ternq/cuda/optimal_symmetric.cuh>
#include <ternq/cuda/scale_refit.cuh>
#include <ternq/cuda/symmetric.cuh>

#include "cli/device.hpp"

namespace ternq::cli {

bool cuda_built() noexcept { return true; }

void require_cuda_device(int ordinal) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    fail(errc::device, "--device cuda:", ordinal, ": no usable CUDA device (", cudaGetErrorString(status), ")");
  }
  if (ordinal >= count) {
    fail(errc::device, "--device cuda:", ordinal, ": this machine has ", count, " CUDA device", count == 1 ? "" : "s");
  }
}

ternary_matrix quantize_on_cuda(int ordinal, const cuda_method& method, const matrix_view<const float>& w) {
  const ternq::cuda::exec e{.device = ordinal};
  return std::visit([&](const auto& m) { return quantize(e, w, m); }, method);
}

namespace {
template <class G>
ternary_matrix quantize_gram_method_on_cuda(int ordinal, const cuda_gram_method& method,
                                            const matrix_view<const float>& w, const matrix_view<const G>& gram) {
  const ternq::cuda::exec e{.device = ordinal};
  return std::visit([&](const auto& m) { return quantize(e, w, m, gram); }, method);
}
}  // namespace

ternary_matrix quantize_on_cuda(int ordinal, const cuda_gram_method& method, const matrix_view<const float>& w,
                                const matrix_view<const float>& gram) {
  return quantize_gram_method_on_cuda(ordinal, method, w, gram);
}

ternary_matrix quantize_on_cuda(int ordinal, const cuda_gram_method& method, const matrix_view<const float>& w,
                                const matrix_view<const double>& gram) {
  return quantize_gram_method_on_cuda(ordinal, method, w, gram);
}

scale_refit_report refit_scales_on_cuda(int ordinal, ternary_matrix& q, const matrix_view<const float>& w,
                                        const matrix_view<const float>& gram, grid_precision precision) {
  return ternq::cuda::refit_scales_to_output(ternq::cuda::exec{.device = ordinal}, q, w, gram, precision);
}

scale_refit_report refit_scales_on_cuda(int ordinal, ternary_matrix& q, const matrix_view<const float>& w,
                                        const matrix_view<const double>& gram, grid_precision precision) {
  return ternq::cuda::refit_scales_to_output(ternq::cuda::exec{.device = ordinal}, q, w, gram, precision);
}

}  // namespace ternq::cli
