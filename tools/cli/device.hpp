// SPDX-License-Identifier: MIT
// --device of the tools: where the quantizers run (the CPU, or a CUDA device: every method has a CUDA
// specialization), parsed and checked before any work.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

#include <ternq/core/error.hpp>
#include <ternq/core/grid_precision.hpp>
#include <ternq/core/ternary_matrix.hpp>
#include <ternq/core/view.hpp>
#include <ternq/quant/absmean.hpp>
#include <ternq/quant/aga_methods.hpp>
#include <ternq/quant/catq/options.hpp>
#include <ternq/quant/gptq/options.hpp>
#include <ternq/quant/itf.hpp>
#include <ternq/quant/optimal_symmetric.hpp>
#include <ternq/quant/scale_refit_report.hpp>
#include <ternq/quant/twn.hpp>

namespace ternq::cli {

/// A parsed --device: the CPU (no ordinal) or CUDA device `*cuda`.
struct device_choice {
  std::optional<int> cuda;
};

/// Parses "cpu", "cuda" (device 0) or "cuda:N".
inline device_choice parse_device(std::string_view text) {
  if (text == "cpu") return {};
  if (text == "cuda") return {0};
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int ordinal = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ordinal);
    if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty() && ordinal >= 0) return {ordinal};
  }
  fail(errc::invalid_argument, "--device '", text, "' is not one of cpu, cuda, cuda:N (N: a device number)");
}

/// The methods' CUDA specializations (float weights): data-free ones, and ones that need a Gram matrix. Together
/// they are every method.
using cuda_method = std::variant<absmean, twn, optimal_symmetric, itf>;
using cuda_gram_method = std::variant<itf_aga, optimal_aga, catq, gptq>;

/// Whether this build of the tools has the CUDA specializations (configured with the CUDA toolkit, TERNQ_CUDA).
bool cuda_built() noexcept;

/// Fails (errc::device) unless CUDA device `ordinal` can be used, saying why: no CUDA build, no device or driver, or
/// fewer devices.
void require_cuda_device(int ordinal);

/// `quantize(cuda::exec{ordinal}, w, method)`: the same result as the CPU's, bit for bit (for `optimal`, as the
/// CPU's sorted reference, which the CPU's faster search equals except for ties within rounding).
ternary_matrix quantize_on_cuda(int ordinal, const cuda_method& method, const matrix_view<const float>& w);

/// `quantize(cuda::exec{ordinal}, w, method, gram)` for the methods that need a Gram matrix (float or double): the
/// CPU's result to rounding (see ternq/cuda/itf_aga.cuh and optimal_aga.cuh). catq's loss curve is the CPU's to
/// rounding, its scale refit solved on the device too (ternq/cuda/catq.cuh). gptq runs the driver with the device's
/// steps (ternq/cuda/gptq.cuh), the CPU's codes except near rounding boundaries.
ternary_matrix quantize_on_cuda(int ordinal, const cuda_gram_method& method, const matrix_view<const float>& w,
                                const matrix_view<const float>& gram);
ternary_matrix quantize_on_cuda(int ordinal, const cuda_gram_method& method, const matrix_view<const float>& w,
                                const matrix_view<const double>& gram);

/// `refit_scales_to_output(q, w, gram, precision)` on CUDA device `ordinal` (ternq/cuda/scale_refit.cuh): the
/// CPU's rule per row, the new scales the CPU's to rounding where a row's system is well posed.
scale_refit_report refit_scales_on_cuda(int ordinal, ternary_matrix& q, const matrix_view<const float>& w,
                                        const matrix_view<const float>& gram, grid_precision precision);
scale_refit_report refit_scales_on_cuda(int ordinal, ternary_matrix& q, const matrix_view<const float>& w,
                                        const matrix_view<const double>& gram, grid_precision precision);

}  // namespace ternq::cli
