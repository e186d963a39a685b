// SPDX-License-Identifier: MIT
// Host entry points of the CUDA quantizer and Gram tests and benchmarks (compiled by nvcc in cuda_quant_runner.cu),
// so that the test and benchmark programs themselves are plain C++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <ternq/core/ternary_matrix.hpp>
#include <ternq/core/view.hpp>
#include <ternq/linalg/gram_products.hpp>
#include <ternq/quant/absmean.hpp>
#include <ternq/quant/itf.hpp>
#include <ternq/quant/twn.hpp>

namespace ternq::testing::cuda {

/// `cuda::itf_quantize` on device `0`'s default stream.
atq_result itf_on_device(const matrix_view<const float>& w, const itf& method);

/// `quantize(cuda::exec{}, w, method)`, the generic entry point.
ternary_matrix quantize_itf_on_device(const matrix_view<const float>& w, const itf& method);

/// `quantize(cuda::exec{}, w, method)` for the symmetric data-free methods.
ternary_matrix quantize_on_device(const matrix_view<const float>& w, const absmean& method);
ternary_matrix quantize_on_device(const matrix_view<const float>& w, const twn& method);

/// Mean seconds of one `cuda::itf_fit_device` (10 iterations at most) over `repeats` launches on the row-major
/// `rows x cols` matrix `w` resident on the device, after one warm-up launch; and in `read_seconds`, of one
/// device-to-device copy of it (a plain read and write, the bandwidth baseline).
double itf_device_seconds(std::span<const float> w, std::size_t rows, std::size_t cols, std::size_t group_size,
                          int repeats, double& read_seconds);

/// `C` of `cuda::gram_accumulator` (`features x features`) after adding `batches` in order from the host.
std::vector<double> gram_on_device(std::span<const matrix_view<const float>> batches, gram_products products);

/// `C` after adding the row-major `tokens x features` batch `x` through `add_device` (uploaded first, rows `ld`
/// floats apart).
std::vector<double> gram_from_device_batch(std::span<const float> x, std::size_t tokens, std::size_t features,
                                           std::size_t ld, gram_products products);

/// Adds `good` through `add_device`, then tries `bad` (both `tokens x features`, packed); returns `C` and sets
/// `refused` (whether `bad` threw) and `tokens_after`.
std::vector<double> gram_after_refused_batch(std::span<const float> good, std::span<const float> bad,
                                             std::size_t tokens, std::size_t features, bool& refused,
                                             std::uint64_t& tokens_after);

/// Mean seconds of adding a resident `tokens x features` float batch with `add_device` (float chunks), and in
/// `syrk_seconds` of one cuBLAS SSYRK of the whole batch into a float matrix (the baseline), over `repeats` runs
/// after a warm-up.
double gram_device_seconds(std::size_t tokens, std::size_t features, int repeats, double& syrk_seconds);

}  // namespace ternq::testing::cuda
