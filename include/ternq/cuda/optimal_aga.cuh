// SPDX-License-Identifier: MIT
// The optimal_aga method on the GPU: the exact optimum's codes (optimal_symmetric.cuh), then the symmetric AGA scale
// alternated with re-rounding, as the CPU's optimal_aga_quantize: every round's products T C by cuBLAS over all
// groups, the acceptance and the re-rounding by one team per group.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/handles.cuh"
#include "ternq/cuda/itf_aga.cuh"
#include "ternq/cuda/optimal_symmetric.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/linalg/gram_blocks.hpp"
#include "ternq/quant/aga_methods.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq::cuda {

namespace detail {

/// One group's state of the alternation (`ternq::detail::symmetric_aga_state` on the CPU): its scale, the output
/// error reduction `b1^2 / a11` of the best (codes, scale) so far, and whether it goes on.
struct symmetric_aga_device_state {
  double alpha;
  double gain;
  int active;
};

/// The starting state of every group: the exact optimum's scale, no gain, active.
template <class Unused = void>
__global__ void symmetric_aga_start_kernel(const float* scales, symmetric_aga_device_state* state, std::size_t groups) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < groups;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    state[i] = {static_cast<double>(scales[i]), 0.0, 1};
  }
}

/// One round of the alternation on every active group, the step of the CPU's loop body: with `a11 = t C t^T` and
/// `b1 = w C t^T` of the trial codes `trial` (double, row-major as the weights; `tc = trial C`), accept the trial when
/// it reduces the error more than the best so far (`first`: the trial is the group's codes), take the scale
/// `b1 / a11` (negating the codes when it is negative), and write the next trial, the codes re-rounded to the
/// nearest level of that scale; a group whose trial is refused, or does not change, stops. Sets `*any` when a group
/// goes on.
template <class Unused = void>
__global__ void symmetric_aga_round_kernel(device_matrix_view w, std::size_t group_size, std::size_t groups_per_row,
                                           const double* tc, double* trial, std::int8_t* codes,
                                           symmetric_aga_device_state* state, bool first, unsigned* any) {
  const team_place team = this_team();
  const unsigned lane = team.lane;
  const unsigned mask = team.mask;
  for (std::size_t group = team.first; group < w.rows * groups_per_row; group += team.stride) {
    symmetric_aga_device_state s = state[group];
    if (!s.active) continue;  // the same for the whole team: it reads one state
    const group_span g = group_at(w, group_size, groups_per_row, group, codes);
    const std::size_t offset = (group / groups_per_row) * w.cols + (group % groups_per_row) * group_size;
    const double* p = tc + offset;
    double* td = trial + offset;
    const float* x = g.x;
    const double a11 = team_lane_sum(g.n, lane, mask, [p, td](std::size_t j) { return p[j] * td[j]; });
    const double b1 =
        team_lane_sum(g.n, lane, mask, [p, x](std::size_t j) { return p[j] * static_cast<double>(x[j]); });
    const bool accept = a11 > 0.0 && ternq::detail::finite_value(b1) && b1 * b1 / a11 > s.gain;
    if (!first && accept) {
      for (std::size_t j = lane; j < g.n; j += team_size) g.t[j] = static_cast<std::int8_t>(td[j]);
    }
    if (!accept) {
      if (lane == 0) state[group].active = 0;
      continue;
    }
    s.gain = b1 * b1 / a11;
    s.alpha = b1 / a11;
    if (s.alpha < 0.0) {
      s.alpha = -s.alpha;
      for (std::size_t j = lane; j < g.n; j += team_size) g.t[j] = static_cast<std::int8_t>(-g.t[j]);
    }
    int changed = 0;
    for (std::size_t j = lane; j < g.n; j += team_size) {
      const std::int8_t code = nearest_level_code(static_cast<double>(x[j]), s.alpha, 0.0);
      changed += code != g.t[j] ? 1 : 0;
      td[j] = code;
    }
    changed = team_tree_sum(changed, mask);
    s.active = changed != 0 ? 1 : 0;
    if (lane == 0) {
      state[group] = s;
      if (s.active) atomicOr(any, 1U);
    }
  }
}

/// The final scales: each group's `alpha` in float.
template <class Unused = void>
__global__ void symmetric_aga_scales_kernel(const symmetric_aga_device_state* state, float* scales,
                                            std::size_t groups) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < groups;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    scales[i] = static_cast<float>(state[i].alpha);
  }
}

}  // namespace detail

/// `optimal_aga_quantize` on the device for a host matrix and Gram matrix: the exact optimum's codes (the CPU's sorted
/// reference), then up to `max_iters + 1` rounds of the symmetric AGA scale and re-rounding, each accepted only when
/// it lowers the group's output error, as on the CPU. The sums run in cuBLAS's and the team's order rather than
/// Eigen's, so scales agree with the CPU's to rounding, and a group's codes can differ only where two of its
/// candidates tie in output error within that rounding (or its exact optimum ties, see `optimal_symmetric`).
template <class G>
ternary_matrix optimal_aga_quantize(const exec& e, const matrix_view<const float>& w, const matrix_view<const G>& gram,
                                    const optimal_aga& method) {
  constexpr const char* context = "cuda::quantize(optimal_aga)";
  // the checks in the CPU's order: the weights' shape, the Gram matrix, the weights' values
  require_nonempty(w, context, "weight matrix");
  require_gram_for(gram, w.cols(), context);
  const device_scope scope(e.device);
  const auto weights = detail::upload_checked_weights(e, w, context);
  ternary_matrix q(w.rows(), w.cols(), method.group_size, false);
  const group_layout& layout = q.layout();
  const linalg::gram_blocks blocks = linalg::pack_gram_blocks(gram, layout);

  const std::size_t count = w.rows() * w.cols();
  const std::size_t groups = w.rows() * layout.count();
  const device_matrix_view dw{weights.data(), w.rows(), w.cols(), w.cols()};
  device_buffer<std::int8_t> codes(count);
  device_buffer<float> scales(groups);
  detail::optimal_fit_device(e, dw, layout, codes.data(), scales.data());

  device_buffer<double> trial(count);
  device_buffer<double> tc(count);
  device_buffer<detail::symmetric_aga_device_state> state(groups);
  device_buffer<unsigned> any(1);
  detail::codes_as_double_kernel<<<detail::elementwise_blocks(count), detail::elementwise_threads, 0, e.stream>>>(
      codes.data(), trial.data(), count);
  detail::symmetric_aga_start_kernel<<<detail::elementwise_blocks(groups), detail::elementwise_threads, 0, e.stream>>>(
      scales.data(), state.data(), groups);
  TERNQ_CUDA_CHECK(cudaGetLastError());
  const auto d_blocks = device_buffer<double>::from_host(blocks.packed, e);
  const blas_handle blas(e.stream);
  for (unsigned it = 0; it <= method.max_iters; ++it) {
    detail::gram_block_products(blas, blocks, layout, d_blocks.data(), trial.data(), tc.data(), w.rows(), w.cols());
    TERNQ_CUDA_CHECK(cudaMemsetAsync(any.data(), 0, sizeof(unsigned), e.stream));
    detail::symmetric_aga_round_kernel<<<detail::team_blocks(groups), detail::team_block_threads, 0, e.stream>>>(
        dw, layout.group_size(), layout.count(), tc.data(), trial.data(), codes.data(), state.data(), it == 0,
        any.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    unsigned host_any = 0;
    any.download(std::span<unsigned>(&host_any, 1), e);
    if (host_any == 0) break;
  }
  detail::symmetric_aga_scales_kernel<<<detail::elementwise_blocks(groups), detail::elementwise_threads, 0, e.stream>>>(
      state.data(), scales.data(), groups);
  TERNQ_CUDA_CHECK(cudaGetLastError());
  codes.download(q.codes(), e);
  scales.download(q.scales(), e);
  return q;
}

/// `quantize(cuda::exec{device, stream}, w, optimal_aga{...}, gram)` for any adaptable float weights and Gram
/// matrix: the GPU counterpart of `quantize(cpu_exec, w, optimal_aga{...}, gram)`.
template <class W, class C>
ternary_matrix quantize(const exec& e, const W& w, const optimal_aga& method, const C& gram) {
  return optimal_aga_quantize(e, detail::float_view(w), as_const_view(gram), method);
}

}  // namespace ternq::cuda
