// SPDX-License-Identifier: MIT
// The activation-aligned methods' parameters (itf_aga, optimal_aga), apart from their CPU implementations so that
// code which only names them (the CUDA specializations, option parsers) needs neither Eigen nor the algorithms.
#pragma once

#include "ternq/core/grouping.hpp"

namespace ternq {

/// PT²-LLM's asymmetric ternary quantizer: ITF per group (as `itf`), then
/// AGA once per group with the codes frozen, against the diagonal block
/// `C[B, B]` of the Gram matrix of the group's columns. Needs calibration
/// statistics: `quantize(w, itf_aga{}, gram)`.
struct itf_aga {
  group_size_option group_size = 128;  ///< columns per group, or `per_row`
  unsigned max_iters = 10;             ///< ITF grid solves per group at most
};

/// A symmetric ternary quantizer aligned to the activations: per row-group
/// the codes of the exact symmetric optimum (`optimal_symmetric`), then the
/// scale that minimizes the group's output error `(w - alpha t) C (w - alpha t)^T`
/// for those codes (AGA's closed form with `mu = 0`), then, up to
/// `max_iters` times, the codes re-rounded to the nearest level of that
/// scale and the scale solved again, keeping the best output error seen.
/// `C` is the Gram block `C[B, B]` of the group's columns; inside the GPTQ
/// driver the compensated metric `P^{-1}` of the block (see `gptq`).
/// Unlike `itf_aga` the grid has no offset, so the result packs into every
/// ternary block format. Needs calibration statistics:
/// `quantize(w, optimal_aga{}, gram)`.
struct optimal_aga {
  group_size_option group_size = 128;  ///< columns per group, or `per_row`
  unsigned max_iters = 4;              ///< re-roundings of the codes after the first scale solve
};

}  // namespace ternq
