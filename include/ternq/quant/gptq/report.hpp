// SPDX-License-Identifier: MIT
// What the GPTQ driver reports: per-block error contributions, grid-fit counters, damping used, time per step.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ternq/core/ternary_matrix.hpp"
#include "ternq/quant/atq.hpp"

namespace ternq {

/// One block of the driver, in the order quantized (block `b` is stored group `b`).
struct gptq_block_report {
  std::size_t first = 0;  ///< first stored column of the block
  std::size_t size = 0;   ///< columns in the block
  /// `E_w` of the block's columns, `||W[:, B] - What[:, B]||_F^2` against the
  /// original weights (the E_w of the matrix is the sum over blocks).
  double weight_error = 0.0;
  /// The output error the block adds under the damped Hessian:
  /// `tr(D P^{-1} D^T) = ||Err||_F^2` (ALGORITHMS.md §3). Summed over blocks
  /// it is `tr((W' - What) H (W' - What)^T)` with `W'` the weights with dead
  /// columns zeroed and `H` damped; `output_error()` of the metrics gives
  /// the undamped `E_x`.
  double output_error = 0.0;
  /// ITF/AGA counters of the block's row-groups (all zero for symmetric grids).
  atq_stats grid;
};

/// A factorization that failed and was retried with more damping.
struct gptq_retry {
  double damping = 0.0;  ///< the damping that failed
  std::string stage;     ///< `"hessian"` or `"block <b>"`
};

/// Seconds spent in each step of the driver (wall clock).
struct gptq_step_seconds {
  double setup = 0.0;     ///< working copy, damped Hessian, its inverse
  double order = 0.0;     ///< SSR scoring and selection, column swaps
  double factor = 0.0;    ///< Cholesky of each block's `P`
  double quantize = 0.0;  ///< grid fit and in-block GPTQ loop
  double update = 0.0;    ///< `W[:, F] -= D P^{-1} Hinv[B, F]` (the `n m^2` part)
  double downdate = 0.0;  ///< `Hinv[F, F] -= Hinv[F, B] P^{-1} Hinv[B, F]`
  [[nodiscard]] double total() const noexcept { return setup + order + factor + quantize + update + downdate; }
};

/// Everything the driver measured besides the ternary matrix.
struct gptq_report {
  std::vector<gptq_block_report> blocks;
  double damping_requested = 0.0;
  double damping_used = 0.0;  ///< the damping of the successful run
  std::vector<gptq_retry> retries;
  std::size_t dead_columns = 0;
  /// The Gram matrix was all zero (every column dead: no calibration signal
  /// reached these inputs), so there was nothing to compensate: the matrix
  /// is the grid's data-free answer (`itf` for `itf_aga`, `optimal_symmetric` for `optimal_aga`, whose AGA has no
  /// metric), the blocks report its `E_w` and an output error of 0.
  bool data_free = false;
  gptq_step_seconds seconds;

  /// `E_w` of the whole matrix (sum over blocks).
  [[nodiscard]] double weight_error() const noexcept {
    double s = 0.0;
    for (const auto& b : blocks) s += b.weight_error;
    return s;
  }
  /// The damped output error (sum over blocks, see `gptq_block_report::output_error`).
  [[nodiscard]] double damped_output_error() const noexcept {
    double s = 0.0;
    for (const auto& b : blocks) s += b.output_error;
    return s;
  }
  /// ITF/AGA counters over all blocks.
  [[nodiscard]] atq_stats grid_stats() const noexcept {
    atq_stats s;
    for (const auto& b : blocks) s.merge(b.grid);
    return s;
  }
};

/// The driver's result: the ternary matrix (with its column permutation) and the report.
struct gptq_result {
  ternary_matrix matrix;
  gptq_report report;
};

}  // namespace ternq
