// SPDX-License-Identifier: MIT
// The CUDA side of the product tests and benchmarks: uploads, launches, downloads.
#include "cuda_products_runner.hpp"

#include <ternq/cuda/exec.cuh>
#include <ternq/kernels/cpu/packed_view.hpp>
#include <ternq/kernels/cuda/products.cuh>

#include "cuda_timing.cuh"

namespace ternq::testing::cuda {

bool device_available(std::string& why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    why = cudaGetErrorString(status);
    return false;
  }
  if (count == 0) {
    why = "no CUDA device";
    return false;
  }
  return true;
}

std::vector<float> packed_matmul(pack::format f, std::size_t rows, std::size_t cols,
                                 std::span<const std::uint8_t> bytes, std::span<const float> x, std::size_t n) {
  const kernels::packed_view host = kernels::make_packed_view(f, rows, cols, bytes);
  const auto w = kernels::cuda::upload(host);
  const auto dx = ternq::cuda::device_buffer<float>::from_host(x);
  ternq::cuda::device_buffer<float> dy(n * rows);
  kernels::cuda::matmul(w.view, dx.data(), n, dy.data());
  std::vector<float> y(n * rows);
  dy.download(y);
  return y;
}

double packed_matmul_seconds(pack::format f, std::size_t rows, std::size_t cols, std::span<const std::uint8_t> bytes,
                             std::size_t n, int repeats) {
  const kernels::packed_view host = kernels::make_packed_view(f, rows, cols, bytes);
  const auto w = kernels::cuda::upload(host);
  const std::vector<float> x(n * cols, 0.5F);
  const auto dx = ternq::cuda::device_buffer<float>::from_host(x);
  ternq::cuda::device_buffer<float> dy(n * rows);
  return seconds_per_launch(repeats, [&] { kernels::cuda::matmul(w.view, dx.data(), n, dy.data()); });
}

double device_peak_bandwidth(std::string& name) {
  int device = 0, clock_khz = 0, bus_bits = 0;
  TERNQ_CUDA_CHECK(cudaGetDevice(&device));
  TERNQ_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device));
  TERNQ_CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
  cudaDeviceProp prop{};
  TERNQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  name = prop.name;
  // double data rate: two transfers per clock
  return 2.0 * static_cast<double>(clock_khz) * 1e3 * static_cast<double>(bus_bits) / 8.0;
}

}  // namespace ternq::testing::cuda
