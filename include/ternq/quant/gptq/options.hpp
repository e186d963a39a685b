// SPDX-License-Identifier: MIT
// Options of the GPTQ-style blockwise driver: the grid of each block, the block order, damping (ALGORITHMS.md §3).
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "ternq/core/grid_precision.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/progress.hpp"
#include "ternq/quant/absmean.hpp"
#include "ternq/quant/aga_methods.hpp"
#include "ternq/quant/itf.hpp"
#include "ternq/quant/optimal_symmetric.hpp"
#include "ternq/quant/twn.hpp"

namespace ternq {

/// Blocks in column order: `[0, g)`, `[g, 2g)`, ... (classic GPTQ).
struct sequential {};

/// GPTQ's act-order: columns ranked once by decreasing `diag(H)` (ties: lower
/// column first), blocks taken in that order.
struct act_order {};

/// A random column order (the "random reorder" ablation), a pure function of `seed`.
struct random_order {
  std::uint64_t seed = 0;
};

/// Structural Similarity-based Reordering (PT²-LLM): each block is the `g`
/// remaining columns most cosine-similar to the mean remaining column of the
/// compensated weights (ALGORITHMS.md §3).
struct ssr {};

/// A column order chosen by the caller, blocks taken in it: `columns[p]` is
/// the original column quantized at position `p` (a permutation of the
/// columns, checked by the driver). Used for orders a model can absorb, e.g.
/// one that keeps each attention head's columns together.
struct given_order {
  std::vector<std::size_t> columns;
};

/// Which block the driver quantizes next.
using block_order = std::variant<sequential, act_order, random_order, ssr, given_order>;

/// The grid fitted to each block (one group per row): the group size of the
/// grid method is the block size of the driver. Symmetric grids give a
/// symmetric result, `itf`/`itf_aga` an asymmetric one. `optimal_aga` is
/// the symmetric grid aligned to the metric (see `quantize_block`).
using gptq_grid = std::variant<absmean, twn, optimal_symmetric, itf, itf_aga, optimal_aga>;

/// The metric AGA aligns the grid to inside the driver.
enum class aga_metric {
  compensated,  ///< `P^{-1}`: the output error left after later columns compensate (ALGORITHMS.md §3)
  gram_block,   ///< the plain Gram block `C[B, B]`, as standalone AGA
};

/// The precision of the driver's up-front Cholesky factor of `H` (orders
/// known before the first block; SSR keeps a double explicit inverse).
enum class factor_precision {
  fp64,  ///< double: the result of the explicit inverse to rounding (tested)
  /// float: half the time of the `m^3 / 3` factorization; a perturbation
  /// of `H` a little above float's rounding, so codes near a tie change:
  /// on LLM-like layers (1024 rows, 4096 channels, itf_aga, g = 128) E_x
  /// moved by at most 0.1% with 4096 calibration tokens and by up to 1.3%
  /// (mean +0.5%) with a rank-deficient Gram matrix of 512 tokens. A
  /// factorization that fails in float is redone in double.
  fp32,
};

/// GPTQ-style blockwise error compensation with a pluggable grid and block
/// order (ALGORITHMS.md §3), e.g.
/// `ternq::gptq{.grid = ternq::itf_aga{.group_size = 128}, .order = ternq::ssr{}}`.
/// Needs calibration statistics: `quantize(w, gptq{...}, gram)`.
struct gptq {
  gptq_grid grid = itf_aga{};
  block_order order = sequential{};
  /// `lambda` of `H = C + lambda mean(diag C) I`, finite and >= 0.
  double damping = 0.01;
  /// Which `C` AGA uses when `grid` is `itf_aga` or `optimal_aga`.
  aga_metric metric = aga_metric::compensated;
  /// The precision of the stored grids. With `fp16` each block's scale (and
  /// offset) is rounded before the block's codes and error are computed, so
  /// the later columns compensate for the rounding and a block format with
  /// fp16 scales stores the result exactly.
  grid_precision precision = grid_precision::fp32;
  /// The precision of the up-front factor of `H` (every order but SSR).
  factor_precision factor = factor_precision::fp64;
  /// Factorization failures retried, each with ten times the damping
  /// (at least 1e-4); every retry is recorded in the report.
  unsigned damping_retries = 3;
  /// Called after each block (stage `"gptq.block"`, error: the damped output
  /// error so far); returning false cancels with `errc::cancelled`.
  progress_callback progress{};
};

/// The block size of a driver configuration: the grid's group size.
inline group_size_option gptq_group_size(const gptq& options) {
  return std::visit([](const auto& g) { return g.group_size; }, options.grid);
}

/// True when the grid is asymmetric (`itf`, `itf_aga`).
inline bool gptq_asymmetric(const gptq& options) {
  return std::holds_alternative<itf>(options.grid) || std::holds_alternative<itf_aga>(options.grid);
}

}  // namespace ternq
