// SPDX-License-Identifier: MIT
// Host entry points of the CUDA quantizer and Gram tests and benchmarks (compiled by nvcc in cuda_quant_runner.cu),
// so that the test and benchmark programs themselves are plain C++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <ternq/core/grid_precision.hpp>
#include <ternq/core/ternary_matrix.hpp>
#include <ternq/core/view.hpp>
#include <ternq/linalg/gram_products.hpp>
#include <ternq/quant/absmean.hpp>
#include <ternq/quant/aga_methods.hpp>
#include <ternq/quant/atq.hpp>
#include <ternq/quant/catq/activation_rho.hpp>
#include <ternq/quant/catq/loop.hpp>
#include <ternq/quant/catq/options.hpp>
#include <ternq/quant/gptq/options.hpp>
#include <ternq/quant/gptq/report.hpp>
#include <ternq/quant/itf.hpp>
#include <ternq/quant/optimal_symmetric.hpp>
#include <ternq/quant/scale_refit_report.hpp>
#include <ternq/quant/twn.hpp>

namespace ternq::testing::cuda {

/// `cuda::itf_quantize` on device `0`'s default stream.
atq_result itf_on_device(const matrix_view<const float>& w, const itf& method);

/// `quantize(cuda::exec{}, w, method)`, the generic entry point.
ternary_matrix quantize_itf_on_device(const matrix_view<const float>& w, const itf& method);

/// `cuda::itf_aga_quantize` on device `0`'s default stream, and the generic `quantize(cuda::exec{}, w, method, gram)`.
atq_result itf_aga_on_device(const matrix_view<const float>& w, const matrix_view<const double>& gram,
                             const itf_aga& method);
atq_result itf_aga_on_device(const matrix_view<const float>& w, const matrix_view<const float>& gram,
                             const itf_aga& method);
ternary_matrix quantize_on_device(const matrix_view<const float>& w, const itf_aga& method,
                                  const matrix_view<const double>& gram);

/// `cuda::optimal_aga_quantize` on device `0`'s default stream.
ternary_matrix optimal_aga_on_device(const matrix_view<const float>& w, const matrix_view<const double>& gram,
                                     const optimal_aga& method);

/// `quantize(cuda::exec{}, w, method)` for the symmetric data-free methods.
ternary_matrix quantize_on_device(const matrix_view<const float>& w, const absmean& method);
ternary_matrix quantize_on_device(const matrix_view<const float>& w, const twn& method);
ternary_matrix quantize_on_device(const matrix_view<const float>& w, const optimal_symmetric& method);

/// `cuda::catq_calibrate` on device `0`'s default stream (the product `E C` in TF32 when `tf32`), with the Gram
/// matrix in double or float; and `quantize(cuda::exec{}, w, method, gram)`.
catq_result catq_on_device(const matrix_view<const float>& w, const matrix_view<const double>& gram,
                           const catq& options, bool tf32 = false);
catq_result catq_on_device(const matrix_view<const float>& w, const matrix_view<const float>& gram,
                           const catq& options);
ternary_matrix quantize_on_device(const matrix_view<const float>& w, const catq& method,
                                  const matrix_view<const double>& gram);

/// `cuda::catq_calibrate_activations` on device `0`'s default stream, with the activations in float or double.
catq_result catq_activations_on_device(const matrix_view<const float>& w, const matrix_view<const float>& x,
                                       const catq& options, const activation_loss_options& loss);
catq_result catq_activations_on_device(const matrix_view<const float>& w, const matrix_view<const double>& x,
                                       const catq& options, const activation_loss_options& loss);
/// Mean seconds of one CAT-Q calibration step on raw activations (`cuda::catq_activation_calibrator::step`, soft
/// phase, `loss`) on the row-major `rows x cols` weights and `tokens x cols` activations `x`, over `repeats` steps
/// after a warm-up; and in `sgemm_seconds`, of the step's two SGEMMs (`E X^T` and `rho'(R) X`) alone.
double catq_activation_step_seconds(std::span<const float> w, std::span<const float> x, std::size_t rows,
                                    std::size_t cols, std::size_t tokens, const activation_loss_options& loss,
                                    int repeats, double& sgemm_seconds);
/// Mean seconds of one CAT-Q calibration step on the device (`cuda::catq_calibrator::step`, soft phase, the Gram
/// loss) on the row-major `rows x cols` weights and `cols x cols` Gram matrix, over `repeats` steps after a warm-up;
/// and in `sgemm_seconds`, of one SGEMM of the step's product `E C` (`rows x cols` by `cols x cols`) in the same
/// arithmetic (`tf32` or fp32).
double catq_step_seconds(std::span<const float> w, std::span<const double> gram, std::size_t rows, std::size_t cols,
                         bool tf32, int repeats, double& sgemm_seconds);

/// `cuda::refit_scales_to_output(cuda::exec{}, q, w, gram, precision)`, the Gram matrix in double or float.
scale_refit_report refit_on_device(ternary_matrix& q, const matrix_view<const float>& w,
                                   const matrix_view<const double>& gram, grid_precision precision);
scale_refit_report refit_on_device(ternary_matrix& q, const matrix_view<const float>& w,
                                   const matrix_view<const float>& gram, grid_precision precision);
/// Mean seconds of one host-to-host `cuda::refit_scales_to_output` of `q` (restored before each call) over
/// `repeats` calls after a warm-up, and in `dgemm_seconds` of one DGEMM of the `rows x cols` weights by the
/// `cols x cols` Gram matrix (half the refit's `2 rows cols^2` products: the baseline).
double refit_call_seconds(const ternary_matrix& q, std::span<const float> w, std::span<const double> gram, int repeats,
                          double& dgemm_seconds);
/// `cuda::gptq_quantize` on device `0`'s default stream, with the Gram matrix in double or float; and
/// `quantize(cuda::exec{}, w, options, gram)`.
gptq_result gptq_on_device(const matrix_view<const float>& w, const matrix_view<const double>& gram,
                           const gptq& options);
gptq_result gptq_on_device(const matrix_view<const float>& w, const matrix_view<const float>& gram,
                           const gptq& options);
ternary_matrix quantize_on_device(const matrix_view<const float>& w, const gptq& options,
                                  const matrix_view<const double>& gram);

/// Mean seconds of one host-to-host `cuda::gptq_quantize` (`options`) on the row-major `rows x cols` weights and
/// `cols x cols` Gram matrix over `repeats` calls after a warm-up, with the last call's report (its seconds per
/// step) in `last`; and in `sgemm_seconds`, of one fp32 SGEMM of the same shape as the driver's update summed over
/// its blocks (`rows x cols` by `cols x cols`).
double gptq_call_seconds(std::span<const float> w, std::span<const double> gram, std::size_t rows, std::size_t cols,
                         const gptq& options, int repeats, double& sgemm_seconds, gptq_report& last);

/// Mean seconds of one `cuda::itf_fit_device` (10 iterations at most) over `repeats` launches on the row-major
/// `rows x cols` matrix `w` resident on the device, after one warm-up launch; and in `read_seconds`, of one
/// device-to-device copy of it (a plain read and write, the bandwidth baseline).
double itf_device_seconds(std::span<const float> w, std::size_t rows, std::size_t cols, std::size_t group_size,
                          int repeats, double& read_seconds);

/// Mean seconds of one host-to-host call of the exact optimum on the device (`quantize(cuda::exec{}, w,
/// optimal_symmetric{}`: upload, sort, fit, download) on the row-major `rows x cols` matrix `w`, over `repeats` calls
/// after a warm-up; and in `transfer_seconds`, of the transfers no call can avoid (`w` up, its codes down).
double optimal_symmetric_call_seconds(std::span<const float> w, std::size_t rows, std::size_t cols, int repeats,
                                      double& transfer_seconds);

/// The same for `cuda::itf_aga_quantize` with the row-major `cols x cols` Gram matrix `gram` (g = 128).
double itf_aga_call_seconds(std::span<const float> w, std::span<const double> gram, std::size_t rows, std::size_t cols,
                            int repeats, double& transfer_seconds);

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
