// SPDX-License-Identifier: MIT
// The exact symmetric optimum on the GPU: every group's magnitudes sorted by CUB's segmented sort, the sorted prefixes
// scanned by the CPU's own scan (`scan_run_ends`), and the codes and scale of the chosen cut by one team per group.
// The codes and scales are those of the CPU's sorted reference, `optimal_symmetric_fit_group_sorted`, bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>
#include <cub/device/device_segmented_sort.cuh>

#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/symmetric.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/quant/detail/prefix_optimum.hpp"
#include "ternq/quant/detail/threshold.hpp"
#include "ternq/quant/optimal_symmetric.hpp"

namespace ternq::cuda {

namespace detail {

/// `|w|` of every weight (the sort's keys).
template <class Unused = void>
__global__ void magnitudes_kernel(const float* w, float* magnitudes, std::size_t count) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    magnitudes[i] = fabsf(w[i]);
  }
}

/// The exact optimum for a team, given its group's magnitudes sorted in descending order at the same offset from
/// `sorted` as the group's weights from `weights`: lane 0 scans the run ends exactly as
/// `optimal_symmetric_fit_group_sorted` does (one sequential double sum, which no other order reproduces), and the
/// team writes the codes `sign(w) [|w| >= tau]` and their least-squares scale (`ternarize_at_least`).
struct optimal_team_fit {
  const float* weights;
  const float* sorted;
  __device__ float operator()(const float* x, std::int8_t* t, std::size_t n, unsigned lane, unsigned mask) const {
    const float* a = sorted + (x - weights);
    double tau = 0.0;
    unsigned long long k = 0;
    if (lane == 0 && a[0] > 0.0F) {
      ternq::detail::prefix_optimum best;
      ternq::detail::scan_run_ends(a, n, 0, 0.0, ternq::detail::objective_scale(static_cast<double>(a[0])), best);
      tau = best.tau;
      k = best.k;
    }
    tau = __shfl_sync(mask, tau, 0, team_size);
    k = __shfl_sync(mask, k, 0, team_size);
    if (k == 0) {
      for (std::size_t j = lane; j < n; j += team_size) t[j] = 0;
      return 0.0F;
    }
    // |x| >= tau exactly when |x| > the float just below tau, tau being a float magnitude of the group
    return team_ternarize_above(x, t, n, ternq::detail::next_down(static_cast<float>(tau)), lane, mask);
  }
};

/// Sorts the magnitudes of every group of the packed (`ld == cols`) `rows x cols` matrix `dw` in descending order
/// into `sorted` (same layout), one CUB segment per group.
inline void sort_group_magnitudes(const exec& e, const device_matrix_view& dw, const group_layout& layout,
                                  device_buffer<float>& sorted) {
  if (dw.ld != dw.cols) {
    fail(errc::invalid_argument, "cuda::sort_group_magnitudes: the matrix must be packed (row stride ", dw.ld, ", ",
         dw.cols, " columns)");
  }
  const std::size_t count = dw.rows * dw.cols;
  device_buffer<float> magnitudes(count);
  magnitudes_kernel<<<elementwise_blocks(count), elementwise_threads, 0, e.stream>>>(dw.data, magnitudes.data(), count);
  TERNQ_CUDA_CHECK(cudaGetLastError());
  std::vector<std::int64_t> begin(dw.rows * layout.count());
  std::vector<std::int64_t> end(begin.size());
  for (std::size_t i = 0, s = 0; i < dw.rows; ++i) {
    for (std::size_t k = 0; k < layout.count(); ++k, ++s) {
      begin[s] = static_cast<std::int64_t>(i * dw.cols + layout.begin(k));
      end[s] = static_cast<std::int64_t>(i * dw.cols + layout.end(k));
    }
  }
  const auto d_begin = device_buffer<std::int64_t>::from_host(begin, e);
  const auto d_end = device_buffer<std::int64_t>::from_host(end, e);
  const auto items = static_cast<std::int64_t>(count);
  const auto segments = static_cast<std::int64_t>(begin.size());
  std::size_t temp_bytes = 0;
  TERNQ_CUDA_CHECK(cub::DeviceSegmentedSort::SortKeysDescending(
      nullptr, temp_bytes, magnitudes.data(), sorted.data(), items, segments, d_begin.data(), d_end.data(), e.stream));
  device_buffer<unsigned char> temp(temp_bytes > 0 ? temp_bytes : 1);  // a null buffer would mean "query" again
  TERNQ_CUDA_CHECK(cub::DeviceSegmentedSort::SortKeysDescending(temp.data(), temp_bytes, magnitudes.data(),
                                                                sorted.data(), items, segments, d_begin.data(),
                                                                d_end.data(), e.stream));
  // `magnitudes`, the offsets and `temp` are freed on return: the sort must be done with them first
  TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));
}

/// The exact optimum of every group of the packed (`ld == cols`) resident matrix `dw`: codes into `codes` (row-major,
/// as `dw`) and scales into `scales` (row-major `rows x groups`), both in device memory. Returns when they are written.
inline void optimal_fit_device(const exec& e, const device_matrix_view& dw, const group_layout& layout,
                               std::int8_t* codes, float* scales) {
  device_buffer<float> sorted(dw.rows * dw.cols);
  sort_group_magnitudes(e, dw, layout, sorted);
  symmetric_fit_kernel<<<team_blocks(dw.rows * layout.count()), team_block_threads, 0, e.stream>>>(
      dw, layout.group_size(), layout.count(), optimal_team_fit{dw.data, sorted.data()}, codes, scales);
  TERNQ_CUDA_CHECK(cudaGetLastError());
  TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));  // `sorted` is freed on return
}

}  // namespace detail

/// `quantize(cuda::exec{device, stream}, w, optimal_symmetric{...})`: the codes and scales of the CPU's sorted
/// reference `optimal_symmetric_fit_group_sorted` on every group, bit for bit, for any adaptable float matrix.
/// The CPU's `quantize(cpu_exec, w, optimal_symmetric{...})` (its bucketed and AVX-512 searches) gives the same
/// answer except where two cuts tie in the objective within rounding (see `optimal_symmetric_fit_group`).
template <class W>
ternary_matrix quantize(const exec& e, const W& w, const optimal_symmetric& method) {
  constexpr const char* context = "cuda::quantize(optimal_symmetric)";
  const matrix_view<const float> view = detail::float_view(w);
  const device_scope scope(e.device);
  const auto weights = detail::upload_checked_weights(e, view, context);
  ternary_matrix q(view.rows(), view.cols(), method.group_size, false);
  device_buffer<std::int8_t> codes(view.rows() * view.cols());
  device_buffer<float> scales(view.rows() * q.layout().count());
  detail::optimal_fit_device(e, {weights.data(), view.rows(), view.cols(), view.cols()}, q.layout(), codes.data(),
                             scales.data());
  codes.download(q.codes(), e);
  scales.download(q.scales(), e);
  return q;
}

}  // namespace ternq::cuda
