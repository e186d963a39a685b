// SPDX-License-Identifier: MIT
// A team of eight threads fitting one group: the CPU's eight-lane sums reproduced bit for bit with warp shuffles,
// the walk over a matrix's (row, group) pairs, and the checked upload of the weights, which the per-group kernels
// share.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>

#include "ternq/core/adapt.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/detail/reduce.hpp"
#include "ternq/quant/groupwise.hpp"

namespace ternq::cuda {

/// A row-major float matrix in device memory: row `i` starts at `data + i * ld`.
struct device_matrix_view {
  const float* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t ld = 0;
};

namespace detail {

/// Threads per group: one per lane of the CPU's lane sums (`itf_lanes` and `reduce_lanes` are both 8).
inline constexpr unsigned team_size = 8;
static_assert(team_size == ternq::detail::itf_lanes && team_size == ternq::detail::reduce_lanes);
inline constexpr unsigned team_block_threads = 256;

/// Where this thread's team sits: its lane, the shuffle mask of its eight threads in the warp, and the first
/// group it fits and the stride to its next.
struct team_place {
  unsigned lane;
  unsigned mask;
  std::size_t first;
  std::size_t stride;
};

__device__ inline team_place this_team() {
  const unsigned per_block = blockDim.x / team_size;
  return {threadIdx.x % team_size, 0xFFU << (((threadIdx.x % 32U) / team_size) * team_size),
          static_cast<std::size_t>(blockIdx.x) * per_block + threadIdx.x / team_size,
          static_cast<std::size_t>(gridDim.x) * per_block};
}

/// `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))` over the team's lanes, in every lane: the tree of
/// `ternq::detail::lane_sum`. The shuffles pair lanes `x` and `x ^ d`, and IEEE addition is commutative, so both
/// partners hold the same bits after each level.
template <class V>
__device__ inline V team_tree_sum(V v, unsigned mask) {
  v += __shfl_xor_sync(mask, v, 1, team_size);
  v += __shfl_xor_sync(mask, v, 2, team_size);
  v += __shfl_xor_sync(mask, v, 4, team_size);
  return v;
}

/// `ternq::detail::lane_sum(n, f)` in every lane of the team, bit for bit: lane `l` adds `f(j)` for `j = l (mod 8)`
/// in order, as CPU lane `l` does, and `team_tree_sum` combines the lanes in the CPU's tree.
template <class F>
__device__ inline double team_lane_sum(std::size_t n, unsigned lane, unsigned mask, F f) {
  double v = 0.0;
  for (std::size_t j = lane; j < n; j += team_size) v += f(j);
  return team_tree_sum(v, mask);
}

/// `ternq::detail::blocked_lane_sum(x[0, n), f)` in every lane of the team, bit for bit: lane `l` keeps CPU lane
/// `l`'s float partial sums over blocks of 128 and its double total, and the totals are added in lane order.
template <class F>
__device__ inline double team_blocked_lane_sum(const float* x, std::size_t n, unsigned lane, unsigned mask, F f) {
  constexpr std::size_t block = ternq::detail::reduce_lanes * ternq::detail::reduce_block_per_lane;
  double total = 0.0;
  std::size_t i = 0;
  for (; i + block <= n; i += block) {
    float part = 0.0F;
    for (std::size_t b = 0; b < block; b += team_size) part += f(x[i + b + lane]);
    total += static_cast<double>(part);
  }
  for (std::size_t j = i + lane; j < n; j += team_size) total += static_cast<double>(f(x[j]));
  double s = 0.0;
  for (unsigned k = 0; k < team_size; ++k) s += __shfl_sync(mask, total, static_cast<int>(k), team_size);
  return s;
}

/// The `n` weights of group `group` of `w` (`group_size` columns, the last group of a row shorter) and where its
/// codes go in the row-major `rows x cols` code matrix.
struct group_span {
  const float* x;
  std::int8_t* t;
  std::size_t n;
};

__device__ inline group_span group_at(const device_matrix_view& w, std::size_t group_size, std::size_t groups_per_row,
                                      std::size_t group, std::int8_t* codes) {
  const std::size_t row = group / groups_per_row;
  const std::size_t begin = (group % groups_per_row) * group_size;
  return {w.data + row * w.ld + begin, codes + row * w.cols + begin,
          begin + group_size <= w.cols ? group_size : w.cols - begin};
}

/// A packed row-major copy of the host weights `w`, every row checked first as the CPU's quantizers check it (finite;
/// `context` names the caller in the error).
inline std::vector<float> packed_checked_weights(const matrix_view<const float>& w, const char* context) {
  require_nonempty(w, context, "weight matrix");
  std::vector<float> packed(w.rows() * w.cols());
  std::vector<float> scratch(w.rows_contiguous() ? 0 : w.cols());
  for (std::size_t i = 0; i < w.rows(); ++i) {
    const std::span<const float> row = ternq::detail::row_of(w, i, scratch);
    require_weight_row(row, i, context);
    std::copy(row.begin(), row.end(), packed.begin() + static_cast<std::ptrdiff_t>(i * w.cols()));
  }
  return packed;
}

/// A packed device copy of the host weights `w`, checked as `packed_checked_weights` checks them.
inline device_buffer<float> upload_checked_weights(const exec& e, const matrix_view<const float>& w,
                                                   const char* context) {
  return device_buffer<float>::from_host(packed_checked_weights(w, context), e);
}

/// `w` as a float view, refused at compile time for other element types (the device kernels take float weights).
template <class W>
matrix_view<const float> float_view(const W& w) {
  const auto view = as_const_view(w);
  static_assert(std::is_same_v<typename decltype(view)::value_type, float>,
                "ternq::cuda::quantize: the CUDA specializations take float weights");
  return view;
}

/// Blocks for a per-group kernel over `groups` groups: enough to fill the device several times over (32 blocks per
/// multiprocessor); the kernels grid-stride over the rest.
inline unsigned team_blocks(std::size_t groups) {
  int device = 0, sms = 0;
  TERNQ_CUDA_CHECK(cudaGetDevice(&device));
  TERNQ_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const std::size_t per_block = team_block_threads / team_size;
  const std::size_t wanted = (groups + per_block - 1) / per_block;
  const std::size_t cap = static_cast<std::size_t>(sms) * 32;
  return static_cast<unsigned>(wanted < cap ? wanted : cap);
}

}  // namespace detail
}  // namespace ternq::cuda
