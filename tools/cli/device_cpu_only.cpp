// SPDX-License-Identifier: MIT
// The tools' CUDA entry points (cli/device.hpp) in a build without the CUDA toolkit: every use is refused.
#include "cli/device.hpp"

namespace ternq::cli {

bool cuda_built() noexcept { return false; }

namespace {
[[noreturn]] void refuse(int ordinal) {
  fail(errc::device, "--device cuda:", ordinal,
       ": these tools were built without CUDA (configure with the CUDA toolkit and -DTERNQ_CUDA=ON)");
}
}  // namespace

void require_cuda_device(int ordinal) { refuse(ordinal); }

ternary_matrix quantize_on_cuda(int ordinal, const cuda_method&, const matrix_view<const float>&) { refuse(ordinal); }

ternary_matrix quantize_on_cuda(int ordinal, const cuda_gram_method&, const matrix_view<const float>&,
                                const matrix_view<const float>&) {
  refuse(ordinal);
}

ternary_matrix quantize_on_cuda(int ordinal, const cuda_gram_method&, const matrix_view<const float>&,
                                const matrix_view<const double>&) {
  refuse(ordinal);
}

scale_refit_report refit_scales_on_cuda(int ordinal, ternary_matrix&, const matrix_view<const float>&,
                                        const matrix_view<const float>&, grid_precision) {
  refuse(ordinal);
}

scale_refit_report refit_scales_on_cuda(int ordinal, ternary_matrix&, const matrix_view<const float>&,
                                        const matrix_view<const double>&, grid_precision) {
  refuse(ordinal);
}

}  // namespace ternq::cli
