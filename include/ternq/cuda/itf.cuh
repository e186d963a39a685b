// SPDX-License-Identifier: MIT
// The itf method on the GPU: every group of a float weight matrix fitted by ITF on the device, one team of eight
// threads per group, with the same codes, grids and counters as the CPU's `itf_quantize`, bit for bit.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>

#include "ternq/core/adapt.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/itf.hpp"

namespace ternq::cuda {

/// Where `itf_fit_device` writes, all in device memory: `codes` (`rows x cols`, row-major), and per group
/// (row-major, `rows x groups`) its double grid and its counters.
struct itf_device_output {
  std::int8_t* codes = nullptr;
  atq_grid* grids = nullptr;
  itf_group_stats* stats = nullptr;
};

namespace detail {

/// ITF on groups of `w`: team `blockIdx.x * teams + team` fits group `(row, k)` and grid-strides over the rest.
/// The steps are those of `itf_fit_group`: `atq_init_group`, `itf_accumulate`, then `ternq::detail::itf_iterate`
/// with a pass that rounds, counts the changes and sums the new codes like `itf_pass`.
/// (A template, as every kernel in these headers, so that every translation unit that includes it may define it.)
template <class Output>
__global__ void itf_fit_kernel(device_matrix_view w, std::size_t group_size, std::size_t groups_per_row,
                               unsigned max_iters, Output out) {
  const team_place team = this_team();
  const unsigned lane = team.lane;
  const unsigned mask = team.mask;
  for (std::size_t group = team.first; group < w.rows * groups_per_row; group += team.stride) {
    const group_span g = group_at(w, group_size, groups_per_row, group, out.codes);
    const float* x = g.x;
    std::int8_t* t = g.t;
    const std::size_t n = g.n;

    // atq_init_group
    const double sum_w = team_lane_sum(n, lane, mask, [x](std::size_t j) { return static_cast<double>(x[j]); });
    const double count_n = static_cast<double>(n);
    const double mu = sum_w / count_n;
    const double delta =
        0.75 * team_lane_sum(n, lane, mask, [x, mu](std::size_t j) { return fabs(static_cast<double>(x[j]) - mu); }) /
        count_n;
    int lane_count = 0;
    double lane_kept = 0.0;
    for (std::size_t j = lane; j < n; j += team_size) {
      const double wc = static_cast<double>(x[j]) - mu;
      const int c = static_cast<int>(wc > delta) - static_cast<int>(wc < -delta);
      t[j] = static_cast<std::int8_t>(c);
      lane_count += c != 0 ? 1 : 0;
      lane_kept += static_cast<double>(c) * wc;  // exact product: the same with or without contraction
    }
    const int kept_count = team_tree_sum(lane_count, mask);
    const double kept = team_tree_sum(lane_kept, mask);
    const atq_grid init{kept_count > 0 ? kept / static_cast<double>(kept_count) : 0.0, mu};

    // The sums of the codes (itf_pass), after rounding them to `grid` when given; returns the changes.
    const auto sums_of_codes = [&](const atq_grid* grid, itf_sums& s) {
      int changed = 0, sum_t = 0, sum_tt = 0;
      double lane_wt = 0.0;
      const double half = grid != nullptr && grid->alpha > 0.0 ? grid->alpha * 0.5 : 0.0;
      const bool collapsed = grid != nullptr && !(grid->alpha > 0.0);
      for (std::size_t j = lane; j < n; j += team_size) {
        int c = t[j];
        if (grid != nullptr) {
          const double d = static_cast<double>(x[j]) - grid->mu;
          const int r = collapsed ? 0 : static_cast<int>(d >= half) - static_cast<int>(d <= -half);
          changed += r != c ? 1 : 0;
          t[j] = static_cast<std::int8_t>(r);
          c = r;
        }
        sum_t += c;
        sum_tt += c * c;
        lane_wt += static_cast<double>(c) * static_cast<double>(x[j]);  // exact product, as above
      }
      s.t = static_cast<double>(team_tree_sum(sum_t, mask));
      s.tt = static_cast<double>(team_tree_sum(sum_tt, mask));
      s.wt = team_tree_sum(lane_wt, mask);
      return team_tree_sum(changed, mask);
    };
    itf_sums s;
    s.n = count_n;
    s.w = sum_w;
    sums_of_codes(nullptr, s);
    const itf_group_result r = ternq::detail::itf_iterate(
        init, s, max_iters, [&](const atq_grid& grid, itf_sums& sums) { return sums_of_codes(&grid, sums) != 0; },
        [&] {
          for (std::size_t j = lane; j < n; j += team_size) t[j] = static_cast<std::int8_t>(-t[j]);
        });
    if (lane == 0) {
      out.grids[group] = r.grid;
      out.stats[group] = r.stats;
    }
  }
}

}  // namespace detail

/// Enqueues ITF on every group of `w` (device memory, finite values: the caller checks them) with `group_size`
/// columns per group (the last group may be shorter) and at most `max_iters` grid solves, on `e.stream`. The codes,
/// grids and counters in `out` are those `itf_fit_group` gives for each group on the CPU, bit for bit.
inline void itf_fit_device(const exec& e, const device_matrix_view& w, std::size_t group_size, unsigned max_iters,
                           const itf_device_output& out) {
  if (w.rows == 0 || w.cols == 0) return;
  if (group_size == 0) fail(errc::zero_group_size, "cuda::itf_fit_device: group size must be at least 1 (got 0)");
  if (w.ld < w.cols) fail(errc::shape_mismatch, "cuda::itf_fit_device: row stride ", w.ld, " below ", w.cols);
  const device_scope scope(e.device);
  const std::size_t groups_per_row = (w.cols + group_size - 1) / group_size;
  detail::itf_fit_kernel<itf_device_output>
      <<<detail::team_blocks(w.rows * groups_per_row), detail::team_block_threads, 0, e.stream>>>(
          w, group_size, groups_per_row, max_iters, out);
  TERNQ_CUDA_CHECK(cudaGetLastError());
}

/// `itf_quantize` on the device for a host matrix: checks every row as the CPU does (finite, float range), uploads
/// the matrix, fits it with `itf_fit_device` and returns the same `atq_result` as `itf_quantize(cpu_exec, w,
/// method)`, bit for bit.
inline atq_result itf_quantize(const exec& e, const matrix_view<const float>& w, const itf& method) {
  const device_scope scope(e.device);
  const auto weights = detail::upload_checked_weights(e, w, "cuda::quantize(itf)");
  atq_result result{ternary_matrix(w.rows(), w.cols(), method.group_size, true), {}};
  const group_layout& layout = result.matrix.layout();
  const std::size_t groups = w.rows() * layout.count();
  device_buffer<std::int8_t> codes(w.rows() * w.cols());
  device_buffer<atq_grid> grids(groups);
  device_buffer<itf_group_stats> stats(groups);
  itf_fit_device(e, {weights.data(), w.rows(), w.cols(), w.cols()}, layout.group_size(), method.max_iters,
                 {codes.data(), grids.data(), stats.data()});
  codes.download(result.matrix.codes(), e);
  std::vector<atq_grid> host_grids(groups);
  std::vector<itf_group_stats> host_stats(groups);
  grids.download(host_grids, e);
  stats.download(host_stats, e);
  ternq::detail::store_grids(result.matrix, 0, w.rows(), host_grids);
  for (const auto& s : host_stats) result.stats.add(s);
  return result;
}

/// `quantize(cuda::exec{device, stream}, w, itf{...})`: the matrix of `cuda::itf_quantize` for any adaptable float
/// matrix (Eigen, xtensor, a view), the GPU counterpart of `quantize(cpu_exec, w, itf{...})`.
template <class W>
ternary_matrix quantize(const exec& e, const W& w, const itf& method) {
  return itf_quantize(e, detail::float_view(w), method).matrix;
}

}  // namespace ternq::cuda
