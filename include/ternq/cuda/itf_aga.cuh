// SPDX-License-Identifier: MIT
// The itf_aga method on the GPU: ITF on every group (the bit-exact kernel of itf.cuh), then AGA with the codes
// frozen against each group's Gram block: the products T C by cuBLAS, the 2x2 systems summed and solved by one team
// per group with the CPU's `aga_solve`. The blocks' positive semi-definiteness is checked by cuSOLVER's batched
// Cholesky factorization, as the CPU checks it with Eigen's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "ternq/core/error.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/handles.cuh"
#include "ternq/cuda/itf.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/linalg/gram_blocks.hpp"
#include "ternq/linalg/gram_psd.hpp"
#include "ternq/quant/aga_methods.hpp"
#include "ternq/quant/aga_solve.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq::cuda {

namespace detail {

/// Blocks up to this size are factored in one batched call (cuSOLVER's batched Cholesky is made for many small
/// matrices); larger ones, as in `per_row` grouping, one by one with the blocked `potrf`.
inline constexpr std::size_t batched_cholesky_max = 256;

/// Factors every block of `shifted` (the blocks of `linalg::shift_for_psd_check`, packed as `blocks`) by cuSOLVER's
/// Cholesky, lower triangle as the CPU reads it; returns each block's `info` (0: factored).
inline std::vector<int> factor_shifted_blocks(const exec& e, const linalg::shifted_gram_blocks& shifted,
                                              const linalg::gram_blocks& blocks, const group_layout& layout) {
  const solver_handle solver(e.stream);
  auto d_shifted = device_buffer<double>::from_host(shifted.packed, e);
  device_buffer<int> info(layout.count());
  if (layout.group_size() <= batched_cholesky_max) {
    std::vector<double*> pointers(layout.count());
    for (std::size_t k = 0; k < layout.count(); ++k) pointers[k] = d_shifted.data() + blocks.offset(k);
    const auto d_pointers = device_buffer<double*>::from_host(pointers, e);
    if (blocks.full > 0) {  // one batch of the full blocks, one of the short last block
      const int n = static_cast<int>(layout.group_size());
      TERNQ_CUDA_CHECK(cusolverDnDpotrfBatched(solver.get(), CUBLAS_FILL_MODE_LOWER, n, d_pointers.data(), n,
                                               info.data(), static_cast<int>(blocks.full)));
    }
    if (blocks.full < layout.count()) {
      const int n = static_cast<int>(layout.size(layout.count() - 1));
      TERNQ_CUDA_CHECK(cusolverDnDpotrfBatched(solver.get(), CUBLAS_FILL_MODE_LOWER, n, d_pointers.data() + blocks.full,
                                               n, info.data() + blocks.full, 1));
    }
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));  // the pointers are freed on leaving this scope
  } else {
    for (std::size_t k = 0; k < layout.count(); ++k) {
      const int n = static_cast<int>(layout.size(k));
      double* a = d_shifted.data() + blocks.offset(k);
      int lwork = 0;
      TERNQ_CUDA_CHECK(cusolverDnDpotrf_bufferSize(solver.get(), CUBLAS_FILL_MODE_LOWER, n, a, n, &lwork));
      device_buffer<double> work(static_cast<std::size_t>(lwork > 0 ? lwork : 1));
      TERNQ_CUDA_CHECK(
          cusolverDnDpotrf(solver.get(), CUBLAS_FILL_MODE_LOWER, n, a, n, work.data(), lwork, info.data() + k));
      TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));  // `work` is freed at the end of this iteration
    }
  }
  std::vector<int> host_info(layout.count());
  info.download(host_info, e);
  return host_info;
}

/// Refuses, as `linalg::require_psd` does on the CPU and with its messages, the first block that is not positive
/// semi-definite within `linalg::gram_psd_tolerance` (the shifted blocks factored by `factor_shifted_blocks`).
inline void require_psd_blocks(const exec& e, const linalg::gram_blocks& blocks, const group_layout& layout,
                               const char* context) {
  const linalg::shifted_gram_blocks shifted = linalg::shift_for_psd_check(blocks, layout);
  const std::vector<int> info = factor_shifted_blocks(e, shifted, blocks, layout);
  linalg::refuse_first_non_psd_block(shifted, layout, context, [&](std::size_t k) { return info[k] == 0; });
}

/// Codes as doubles, the operand of the products `T C`.
template <class Unused = void>
__global__ void codes_as_double_kernel(const std::int8_t* codes, double* t, std::size_t count) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    t[i] = static_cast<double>(codes[i]);
  }
}

/// AGA on every group with its codes frozen: team per group sums the system's terms from the group's slice of
/// `tc = T C` (row-major, as the weights), `ones = C 1` and `totals = 1^T C 1`, solves it with `aga_solve` (the ITF
/// grid in `grids` as the fallback), negates the codes on a flip, and writes the grid and whether it fell back.
template <class Unused = void>
__global__ void aga_align_kernel(device_matrix_view w, std::size_t group_size, std::size_t groups_per_row,
                                 const double* tc, const double* ones, const double* totals, std::int8_t* codes,
                                 atq_grid* grids, unsigned char* fallbacks) {
  const team_place team = this_team();
  const unsigned lane = team.lane;
  const unsigned mask = team.mask;
  for (std::size_t group = team.first; group < w.rows * groups_per_row; group += team.stride) {
    const group_span g = group_at(w, group_size, groups_per_row, group, codes);
    const std::size_t row = group / groups_per_row;
    const std::size_t begin = (group % groups_per_row) * group_size;
    const double* p = tc + row * w.cols + begin;
    const double* c1 = ones + begin;
    const float* x = g.x;
    const std::int8_t* t = g.t;
    const atq_grid fallback = grids[group];  // read by every lane before lane 0 writes the group's grid
    aga_system s;
    s.a11 = team_lane_sum(g.n, lane, mask, [p, t](std::size_t j) { return p[j] * static_cast<double>(t[j]); });
    s.a12 = team_lane_sum(g.n, lane, mask, [p](std::size_t j) { return p[j]; });
    s.a22 = totals[group % groups_per_row];
    s.b1 = team_lane_sum(g.n, lane, mask, [p, x](std::size_t j) { return p[j] * static_cast<double>(x[j]); });
    s.b2 = team_lane_sum(g.n, lane, mask, [c1, x](std::size_t j) { return c1[j] * static_cast<double>(x[j]); });
    const aga_outcome out = aga_solve(s, fallback);
    if (out.flip) {
      for (std::size_t j = lane; j < g.n; j += team_size) g.t[j] = static_cast<std::int8_t>(-g.t[j]);
    }
    if (lane == 0) {
      grids[group] = out.grid;
      fallbacks[group] = out.fallback ? 1 : 0;
    }
  }
}

/// `T[:, B] C[B, B]` of every group into `tc` (row-major `rows x cols`, as `t`): one strided batched DGEMM over the
/// full groups and one DGEMM for a short last group. A row-major matrix is its transpose in cuBLAS's column-major
/// terms, so each product is computed as `C[B, B]^T T[:, B]^T`.
inline void gram_block_products(const blas_handle& blas, const linalg::gram_blocks& blocks, const group_layout& layout,
                                const double* d_blocks, const double* t, double* tc, std::size_t rows,
                                std::size_t cols) {
  const double one = 1.0, zero = 0.0;
  const int n = static_cast<int>(rows);
  const int ld = static_cast<int>(cols);
  if (blocks.full > 0) {
    const int g = static_cast<int>(layout.group_size());
    TERNQ_CUDA_CHECK(cublasDgemmStridedBatched(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, g, n, g, &one, d_blocks, g,
                                               static_cast<long long>(g) * g, t, ld, g, &zero, tc, ld, g,
                                               static_cast<int>(blocks.full)));
  }
  if (blocks.full < layout.count()) {
    const std::size_t k = layout.count() - 1;
    const int s = static_cast<int>(layout.size(k));
    const std::size_t b = layout.begin(k);
    TERNQ_CUDA_CHECK(cublasDgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, s, n, s, &one, d_blocks + blocks.offset(k), s,
                                 t + b, ld, &zero, tc + b, ld));
  }
}

}  // namespace detail

/// `itf_aga_quantize` on the device for a host matrix and Gram matrix: the checks of the CPU's (finite weights, an
/// `m x m` Gram matrix whose diagonal blocks are positive semi-definite, refused with the CPU's messages), ITF on
/// every group bit for bit as the CPU, then AGA against each group's block `C[B, B]`. The AGA sums run in another
/// order than Eigen's products, so grids agree with the CPU's to rounding (about 1e-12 relative in double, then
/// rounded to float), and a group's flip or fallback can differ only where its determinant or scale sits at the
/// decision's edge within that rounding.
template <class G>
atq_result itf_aga_quantize(const exec& e, const matrix_view<const float>& w, const matrix_view<const G>& gram,
                            const itf_aga& method) {
  constexpr const char* context = "cuda::quantize(itf_aga)";
  // the checks in the CPU's order: the weights' shape, the Gram matrix, its blocks, the weights' values
  require_nonempty(w, context, "weight matrix");
  require_gram_for(gram, w.cols(), context);
  const device_scope scope(e.device);
  atq_result result{ternary_matrix(w.rows(), w.cols(), method.group_size, true), {}};
  const group_layout& layout = result.matrix.layout();
  const linalg::gram_blocks blocks = linalg::pack_gram_blocks(gram, layout);
  detail::require_psd_blocks(e, blocks, layout, context);
  const auto weights = detail::upload_checked_weights(e, w, context);

  const std::size_t count = w.rows() * w.cols();
  const std::size_t groups = w.rows() * layout.count();
  const device_matrix_view dw{weights.data(), w.rows(), w.cols(), w.cols()};
  device_buffer<std::int8_t> codes(count);
  device_buffer<atq_grid> grids(groups);
  device_buffer<itf_group_stats> stats(groups);
  itf_fit_device(e, dw, layout.group_size(), method.max_iters, {codes.data(), grids.data(), stats.data()});

  device_buffer<double> t(count);
  device_buffer<double> tc(count);
  detail::codes_as_double_kernel<<<detail::elementwise_blocks(count), detail::elementwise_threads, 0, e.stream>>>(
      codes.data(), t.data(), count);
  TERNQ_CUDA_CHECK(cudaGetLastError());
  const auto d_blocks = device_buffer<double>::from_host(blocks.packed, e);
  const blas_handle blas(e.stream);
  detail::gram_block_products(blas, blocks, layout, d_blocks.data(), t.data(), tc.data(), w.rows(), w.cols());
  const auto d_ones = device_buffer<double>::from_host(blocks.ones, e);
  const auto d_totals = device_buffer<double>::from_host(blocks.totals, e);
  device_buffer<unsigned char> fallbacks(groups);
  detail::aga_align_kernel<<<detail::team_blocks(groups), detail::team_block_threads, 0, e.stream>>>(
      dw, layout.group_size(), layout.count(), tc.data(), d_ones.data(), d_totals.data(), codes.data(), grids.data(),
      fallbacks.data());
  TERNQ_CUDA_CHECK(cudaGetLastError());

  codes.download(result.matrix.codes(), e);
  std::vector<atq_grid> host_grids(groups);
  std::vector<itf_group_stats> host_stats(groups);
  std::vector<unsigned char> host_fallbacks(groups);
  grids.download(host_grids, e);
  stats.download(host_stats, e);
  fallbacks.download(host_fallbacks, e);
  ternq::detail::store_grids(result.matrix, 0, w.rows(), host_grids);
  for (const auto& s : host_stats) result.stats.add(s);
  for (const unsigned char f : host_fallbacks) result.stats.aga_fallbacks += f;
  return result;
}

/// `quantize(cuda::exec{device, stream}, w, itf_aga{...}, gram)` for any adaptable float weights and Gram matrix:
/// the matrix of `cuda::itf_aga_quantize`, the GPU counterpart of `quantize(cpu_exec, w, itf_aga{...}, gram)`.
template <class W, class C>
ternary_matrix quantize(const exec& e, const W& w, const itf_aga& method, const C& gram) {
  return itf_aga_quantize(e, detail::float_view(w), as_const_view(gram), method).matrix;
}

}  // namespace ternq::cuda
