// SPDX-License-Identifier: MIT
// The absmean and twn methods on the GPU: one team of eight threads per group, with the same codes and scales as
// the CPU's quantize(absmean) and quantize(twn), bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>

#include "ternq/core/adapt.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/quant/absmean.hpp"
#include "ternq/quant/detail/threshold.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/twn.hpp"

namespace ternq::cuda {

namespace detail {

/// `absmean_fit_group` for a team: `gamma = sum|w| / n` (the CPU's blocked lane sum), codes by comparison with
/// `at_least(gamma / 2)`, scale `gamma`.
struct absmean_team_fit {
  __device__ float operator()(const float* x, std::int8_t* t, std::size_t n, unsigned lane, unsigned mask) const {
    const double gamma =
        team_blocked_lane_sum(x, n, lane, mask, [](float v) { return fabsf(v); }) / static_cast<double>(n);
    const float step = ternq::detail::at_least<float>(0.5 * gamma);
    for (std::size_t j = lane; j < n; j += team_size) {
      t[j] = static_cast<std::int8_t>(static_cast<int>(x[j] >= step) - static_cast<int>(x[j] <= -step));
    }
    return static_cast<float>(gamma);
  }
};

/// `ternarize_above(x[0, n), t, cut)` for a team: codes `sign(x) [|x| > cut]`, and the scale, the mean magnitude of
/// the kept weights (their sum in the CPU's blocked lane order), or 0 when none is kept.
__device__ inline float team_ternarize_above(const float* x, std::int8_t* t, std::size_t n, float cut, unsigned lane,
                                             unsigned mask) {
  int count = 0;
  for (std::size_t j = lane; j < n; j += team_size) {
    t[j] = static_cast<std::int8_t>(static_cast<int>(x[j] > cut) - static_cast<int>(x[j] < -cut));
    count += fabsf(x[j]) > cut ? 1 : 0;
  }
  count = team_tree_sum(count, mask);
  if (count == 0) return 0.0F;
  const double kept =
      team_blocked_lane_sum(x, n, lane, mask, [cut](float v) { return fabsf(v) > cut ? fabsf(v) : 0.0F; });
  return static_cast<float>(kept / static_cast<double>(count));
}

/// `twn_fit_group` for a team: `delta = ratio sum|w| / n`, codes `sign(w) [|w| > at_most(delta)]`, scale the mean
/// magnitude of the kept weights (`ternarize_above`).
struct twn_team_fit {
  double ratio;
  __device__ float operator()(const float* x, std::int8_t* t, std::size_t n, unsigned lane, unsigned mask) const {
    const double sum = team_blocked_lane_sum(x, n, lane, mask, [](float v) { return fabsf(v); });
    return team_ternarize_above(x, t, n, ternq::detail::at_most<float>(ratio * sum / static_cast<double>(n)), lane,
                                mask);
  }
};

/// One scale per group from `fit`, codes into the row-major code matrix. A template, as every kernel in these
/// headers, so that every translation unit that includes them may define it.
template <class Fit>
__global__ void symmetric_fit_kernel(device_matrix_view w, std::size_t group_size, std::size_t groups_per_row, Fit fit,
                                     std::int8_t* codes, float* scales) {
  const team_place team = this_team();
  for (std::size_t group = team.first; group < w.rows * groups_per_row; group += team.stride) {
    const group_span g = group_at(w, group_size, groups_per_row, group, codes);
    const float scale = fit(g.x, g.t, g.n, team.lane, team.mask);
    if (team.lane == 0) scales[group] = scale;
  }
}

/// Uploads the checked host matrix `w`, runs `fit` on every group and returns the symmetric ternary matrix.
template <class Fit>
ternary_matrix fit_symmetric_groups(const exec& e, const matrix_view<const float>& w, group_size_option group_size,
                                    Fit fit, const char* context) {
  const device_scope scope(e.device);
  const auto weights = upload_checked_weights(e, w, context);
  ternary_matrix q(w.rows(), w.cols(), group_size, false);
  const std::size_t groups_per_row = q.layout().count();
  device_buffer<std::int8_t> codes(w.rows() * w.cols());
  device_buffer<float> scales(w.rows() * groups_per_row);
  const device_matrix_view dw{weights.data(), w.rows(), w.cols(), w.cols()};
  symmetric_fit_kernel<Fit><<<team_blocks(w.rows() * groups_per_row), team_block_threads, 0, e.stream>>>(
      dw, q.layout().group_size(), groups_per_row, fit, codes.data(), scales.data());
  TERNQ_CUDA_CHECK(cudaGetLastError());
  codes.download(q.codes(), e);
  scales.download(q.scales(), e);  // both row-major `rows x groups`
  return q;
}

}  // namespace detail

/// `quantize(cuda::exec{device, stream}, w, absmean{...})`: the codes and scales of `quantize(cpu_exec, w,
/// absmean{...})`, bit for bit, for any adaptable float matrix.
template <class W>
ternary_matrix quantize(const exec& e, const W& w, const absmean& method) {
  return detail::fit_symmetric_groups(e, detail::float_view(w), method.group_size, detail::absmean_team_fit{},
                                      "cuda::quantize(absmean)");
}

/// `quantize(cuda::exec{device, stream}, w, twn{...})`: the codes and scales of `quantize(cpu_exec, w, twn{...})`,
/// bit for bit, for any adaptable float matrix.
template <class W>
ternary_matrix quantize(const exec& e, const W& w, const twn& method) {
  if (!std::isfinite(method.threshold_ratio) || method.threshold_ratio < 0.0) {
    fail(errc::invalid_argument, "cuda::quantize(twn): threshold_ratio must be finite and >= 0 (got ",
         method.threshold_ratio, ")");
  }
  return detail::fit_symmetric_groups(e, detail::float_view(w), method.group_size,
                                      detail::twn_team_fit{method.threshold_ratio}, "cuda::quantize(twn)");
}

}  // namespace ternq::cuda
