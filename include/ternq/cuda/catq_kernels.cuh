// SPDX-License-Identifier: MIT
// The kernels of a CAT-Q calibration step on the device, whatever the loss: the grids of the logits, the soft step
// and the residual `E = W - alpha f(z)`, the gradient of every logit from the loss's product, Adam, and the residual
// of a deployed matrix.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "ternq/cuda/team.cuh"
#include "ternq/optim/adam.hpp"
#include "ternq/quant/catq/grid.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/soft_step.hpp"

namespace ternq::cuda::detail {

/// The grid of every (row, group) at the logits `[b_mu | b_alpha | b_Delta]`, by the CPU's `catq_grid_of`.
template <class Unused = void>
__global__ void catq_grids_kernel(const float* logits, const float* mu0, const float* alpha0, const float* delta0,
                                  std::size_t groups, catq_grid<float>* grids) {
  for (std::size_t g = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    grids[g] = catq_grid_of(mu0[g], alpha0[g], delta0[g], logits[g], logits[groups + g], logits[2 * groups + g]);
  }
}

/// Where a CAT-Q kernel reads: the weights (row-major, packed), their groups and the grids of the current logits.
struct catq_shape {
  const float* w;
  std::size_t rows;
  std::size_t cols;
  std::size_t group_size;
  std::size_t groups_per_row;
};

/// `f`, `df/dz` and `df/dDelta` of weight `x` under `grid` (the hard step, with zero derivatives, when `hard` or
/// at infinite sharpness): the CPU's `soft_step_from_tanh` on the device's `tanhf`.
__device__ inline soft_step<float> catq_step_at(float x, const catq_grid<float>& grid,
                                                const ternq::detail::sharpness_terms<float>& k, bool hard, float& z) {
  soft_step<float> out;
  z = grid.proxy(x);
  if (hard || k.infinite) {
    out.value = static_cast<float>(hard_ternarize(z, grid.delta));
    return out;
  }
  const float ta = tanhf(k.s * (z - grid.delta));
  const float tb = tanhf(k.s * (z + grid.delta));
  ternq::detail::soft_step_from_tanh(z, grid.delta, ta, tb, k, out.value, out.d_z, out.d_delta);
  return out;
}

/// The residual `E = W - alpha f(z)` of every weight (row-major, as `W`).
template <class Unused = void>
__global__ void catq_residual_kernel(catq_shape w, const catq_grid<float>* grids,
                                     ternq::detail::sharpness_terms<float> k, bool hard, float* e) {
  const std::size_t count = w.rows * w.cols;
  for (std::size_t idx = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = idx / w.cols;
    const std::size_t j = idx % w.cols;
    const catq_grid<float> grid = grids[i * w.groups_per_row + j / w.group_size];
    float z = 0.0F;
    const soft_step<float> f = catq_step_at(w.w[idx], grid, k, hard, z);
    e[idx] = w.w[idx] - grid.alpha * f.value;
  }
}

/// The gradient with respect to every logit, one team per (row, group): with `G = dL/dWhat = scale P` (the loss's
/// product `P`: `E C` with `scale = -2` for the Gram loss, `rho'(R) X` with `scale = -1 / (rows tokens)` on raw
/// activations), `dL/dalpha = sum G (f - z f_z)`, `dL/dmu = -sum G f_z`, `dL/dDelta = alpha sum G f_D` (only
/// `dL/dalpha = sum G f` in the hard phase), chained through the sigmoid parameterizations as
/// `catq_objective::backward` does.
template <class Unused = void>
__global__ void catq_gradient_kernel(catq_shape w, const catq_grid<float>* grids,
                                     ternq::detail::sharpness_terms<float> k, bool hard, const float* product,
                                     float scale, const float* logits, const float* alpha0, const float* delta0,
                                     float* grad) {
  const team_place team = this_team();
  const std::size_t groups = w.rows * w.groups_per_row;
  for (std::size_t group = team.first; group < groups; group += team.stride) {
    const std::size_t row = group / w.groups_per_row;
    const std::size_t begin = (group % w.groups_per_row) * w.group_size;
    const std::size_t n = begin + w.group_size <= w.cols ? w.group_size : w.cols - begin;
    const catq_grid<float> grid = grids[group];
    const float* x = w.w + row * w.cols + begin;
    const float* p = product + row * w.cols + begin;
    float d_alpha = 0.0F, g_fz = 0.0F, g_fd = 0.0F;
    for (std::size_t j = team.lane; j < n; j += team_size) {
      float z = 0.0F;
      const soft_step<float> f = catq_step_at(x[j], grid, k, hard, z);
      const float g = scale * p[j];
      d_alpha += g * (hard ? f.value : f.value - z * f.d_z);  // z may be infinite under an absurd alpha
      g_fz += g * f.d_z;
      g_fd += g * f.d_delta;
    }
    d_alpha = team_tree_sum(d_alpha, team.mask);
    g_fz = team_tree_sum(g_fz, team.mask);
    g_fd = team_tree_sum(g_fd, team.mask);
    if (team.lane == 0) {
      const float d_mu = hard ? 0.0F : -g_fz;
      const float d_delta = hard ? 0.0F : grid.alpha * g_fd;
      grad[group] = d_mu * alpha0[group] * modulation_slope(logits[group]);
      grad[groups + group] = d_alpha * alpha0[group] * modulation_slope(logits[groups + group]);
      grad[2 * groups + group] = d_delta * delta0[group] * modulation_slope(logits[2 * groups + group]);
    }
  }
}

/// One Adam step on every logit: the CPU's `optim::adam_update`.
template <class Unused = void>
__global__ void adam_kernel(float* params, float* m, float* v, const float* grads, std::size_t count,
                            optim::adam_step_terms<float> k) {
  for (std::size_t j = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < count;
       j += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    optim::adam_update(params[j], m[j], v[j], grads[j], k);
  }
}

/// `W - Q` in double for a symmetric ternary matrix in stored order: `w - scale code`, as `ternary_matrix::value`.
template <class Unused = void>
__global__ void deployed_residual_kernel(catq_shape w, const std::int8_t* codes, const float* scales, double* e) {
  const std::size_t count = w.rows * w.cols;
  for (std::size_t idx = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = idx / w.cols;
    const std::size_t j = idx % w.cols;
    const float q = scales[i * w.groups_per_row + j / w.group_size] * static_cast<float>(codes[idx]);
    e[idx] = static_cast<double>(w.w[idx]) - static_cast<double>(q);
  }
}

}  // namespace ternq::cuda::detail
