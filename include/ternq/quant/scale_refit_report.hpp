// SPDX-License-Identifier: MIT
// What a re-fit of a ternary matrix's scales to the output error did: the report the CPU's
// `refit_scales_to_output` (quant/scale_refit.hpp) and the device's return alike.
#pragma once

#include <cstddef>

namespace ternq {

/// What `refit_scales_to_output` did.
struct scale_refit_report {
  double output_error_before = 0.0;  ///< E_x = tr((W - Q) C (W - Q)^T) of the input matrix
  double output_error_after = 0.0;   ///< ... of the result (never larger)
  std::size_t rows_changed = 0;      ///< rows whose scales were replaced
};

}  // namespace ternq
