// SPDX-License-Identifier: MIT
// The precision a quantizer's grid (scale, offset) is stored in, and rounding to it.
#pragma once

#include "ternq/core/half.hpp"

namespace ternq {

/// The precision the scales and offsets of a result are stored in. Every
/// ternary block format (TQ1_0, TQ2_0, Q2_0, PQ2_0, PTQ1_0) stores fp16
/// scales: a quantizer told `fp16` fits a grid that format holds exactly, so
/// the packed tensor decodes to the very weights the quantizer chose (and,
/// inside the GPTQ driver, the later columns compensate for the rounding).
enum class grid_precision {
  fp32,  ///< as computed (float)
  fp16,  ///< rounded to the nearest IEEE binary16 value
};

/// `x` in precision `p` (round to nearest even for fp16).
constexpr float round_to(grid_precision p, float x) noexcept {
  return p == grid_precision::fp16 ? fp16_bits_to_fp32(fp32_to_fp16_bits(x)) : x;
}

}  // namespace ternq
