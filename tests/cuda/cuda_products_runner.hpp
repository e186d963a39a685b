// SPDX-License-Identifier: MIT
// Host entry points of the CUDA product tests and benchmarks (compiled by nvcc in cuda_products_runner.cu), so
// that the test and benchmark programs themselves are plain C++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <ternq/core/view.hpp>
#include <ternq/pack/format.hpp>
#include <ternq/quant/itf.hpp>

namespace ternq::testing::cuda {

/// True when a CUDA device can be used; `why` says why not otherwise.
bool device_available(std::string& why);

/// `Y = X W^T` through the CUDA kernels: `x` is `n x cols`, the result `n x rows`, all on the host.
std::vector<float> packed_matmul(pack::format f, std::size_t rows, std::size_t cols,
                                 std::span<const std::uint8_t> bytes, std::span<const float> x, std::size_t n);

/// Mean seconds of one `Y = X W^T` over `repeats` launches with the operands resident on the device (CUDA events),
/// after one warm-up launch.
double packed_matmul_seconds(pack::format f, std::size_t rows, std::size_t cols, std::span<const std::uint8_t> bytes,
                             std::size_t n, int repeats);

/// `cuda::itf_quantize` on device `0`'s default stream.
atq_result itf_on_device(const matrix_view<const float>& w, const itf& method);

/// `quantize(cuda::exec{}, w, method)`, the generic entry point.
ternary_matrix quantize_itf_on_device(const matrix_view<const float>& w, const itf& method);

/// Mean seconds of one `cuda::itf_fit_device` (10 iterations at most) over `repeats` launches on the row-major
/// `rows x cols` matrix `w` resident on the device, after one warm-up launch; and in `read_seconds`, of one
/// device-to-device copy of it (a plain read and write, the bandwidth baseline).
double itf_device_seconds(std::span<const float> w, std::size_t rows, std::size_t cols, std::size_t group_size,
                          int repeats, double& read_seconds);

/// The device's peak memory bandwidth in bytes per second (from its memory clock and bus width) and its name.
double device_peak_bandwidth(std::string& name);

}  // namespace ternq::testing::cuda
