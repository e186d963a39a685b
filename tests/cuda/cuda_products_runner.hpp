// SPDX-License-Identifier: MIT
// Host entry points of the CUDA product tests and benchmarks (compiled by nvcc in cuda_products_runner.cu), so
// that the test and benchmark programs themselves are plain C++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <ternq/pack/format.hpp>

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

/// The device's peak memory bandwidth in bytes per second (from its memory clock and bus width) and its name.
double device_peak_bandwidth(std::string& name);

}  // namespace ternq::testing::cuda
