// SPDX-License-Identifier: MIT
// The scales of a symmetric ternary matrix re-fitted jointly per row to the layer's output error on the GPU: the
// counterpart of `refit_scales_to_output` (quant/scale_refit.hpp, where the quadratic `A a = b` is derived).
//
// The cost is in the systems: `A_i(g, h) = t_g^T C t_h` and `b_i = T_i C w_i` over all rows are `rows m^2` products,
// built here by cuBLAS DGEMMs in double (one per group of columns) and reduced per (row, group) by teams. The
// `G x G` systems are then solved by batched cuSOLVER Cholesky; a row whose factorization fails or whose factor is
// too ill-conditioned takes the least-norm solution from an eigendecomposition (`syevd`), as the CPU takes the
// complete orthogonal decomposition's. The rounding of the new scales and the choice per row (keep the old scales
// unless the new ones lower the row's error) are the CPU's, on the host.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "ternq/core/adapt.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/grid_precision.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/handles.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/quant/scale_refit_report.hpp"
#include "ternq/quant/scale_refit_system.hpp"

namespace ternq::cuda {

namespace detail {

/// `out(a, b) = c(orig[a], orig[b])` in double, column-major: the packed `m x m` Gram matrix `c` (row-major when
/// `row_major`, else column-major) in a ternary matrix's stored column order (`orig` null: the identity).
template <class G>
__global__ void permuted_gram_kernel(const G* c, bool row_major, std::size_t m, const std::size_t* orig, double* out) {
  const std::size_t count = m * m;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t a = k % m, b = k / m;
    const std::size_t p = orig != nullptr ? orig[a] : a, q = orig != nullptr ? orig[b] : b;
    out[k] = static_cast<double>(row_major ? c[p * m + q] : c[q * m + p]);
  }
}

/// Rows `[first, first + count)` of the row-major `w` (float) and `codes` as double row-major `count x m` matrices.
template <class Unused = void>
__global__ void refit_rows_kernel(const float* w, const std::int8_t* codes, std::size_t m, std::size_t first,
                                  std::size_t count, double* wp, double* tp) {
  const std::size_t total = count * m;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    wp[k] = static_cast<double>(w[first * m + k]);
    tp[k] = static_cast<double>(codes[first * m + k]);
  }
}

/// Where the per-(row, group) sums of `group_dots_kernel` go: `out[i * row_stride + g]`.
struct group_dots_args {
  const double* t;  ///< `rows x m`, row-major
  const double* x;  ///< `rows x m`, row-major
  std::size_t rows;
  std::size_t m;
  std::size_t group_size;
  std::size_t groups;
  double* out;
  std::size_t row_stride;
};

/// `sum_{j in group g} t(i, j) x(i, j)` for every row `i` and group `g`, one team of eight threads per pair.
template <class Unused = void>
__global__ void group_dots_kernel(group_dots_args a) {
  const team_place team = this_team();
  const std::size_t pairs = a.rows * a.groups;
  for (std::size_t pair = team.first; pair < pairs; pair += team.stride) {
    const std::size_t i = pair / a.groups, g = pair % a.groups;
    const std::size_t begin = g * a.group_size;
    const std::size_t n = begin + a.group_size <= a.m ? a.group_size : a.m - begin;
    const double* t = a.t + i * a.m + begin;
    const double* x = a.x + i * a.m + begin;
    double v = 0.0;
    for (std::size_t j = team.lane; j < n; j += team_size) v += t[j] * x[j];
    v = team_tree_sum(v, team.mask);
    if (team.lane == 0) a.out[i * a.row_stride + g] = v;
  }
}

/// Per row of the `G x G` systems `a` (column-major, one after another) and right-hand sides `b`: which groups have
/// a say (`A(g, g) > 0`, the CPU's test), the right-hand side with the others zeroed, and the largest active
/// diagonal (the value the inactive groups' diagonal takes, so the padded system keeps the active one's scale).
template <class Unused = void>
__global__ void refit_active_kernel(const double* a, const double* b, std::size_t rows, std::size_t groups,
                                    char* active, double* rhs, double* pad) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const double* ai = a + i * groups * groups;
    double largest = 0.0;
    for (std::size_t g = 0; g < groups; ++g) {
      const double d = ai[g * groups + g];
      const bool on = ternq::detail::refit_group_active(d);
      active[i * groups + g] = on ? 1 : 0;
      rhs[i * groups + g] = on ? b[i * groups + g] : 0.0;
      if (on && d > largest) largest = d;
    }
    pad[i] = ternq::detail::refit_pad(largest);
  }
}

/// The padded systems of rows `[first, first + count)` into `f` (from its start): the active groups' `A`, the
/// inactive ones decoupled with the diagonal `pad[i]`. Their solution is the active subsystem's with zeros
/// elsewhere, whichever way it is solved.
template <class Unused = void>
__global__ void refit_padded_kernel(const double* a, const char* active, const double* pad, std::size_t first,
                                    std::size_t count, std::size_t groups, double* f) {
  const std::size_t square = groups * groups;
  const std::size_t total = count * square;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = first + k / square, local = k % square;
    const std::size_t g = local % groups, h = local / groups;
    f[k] = ternq::detail::refit_padded_entry(a[i * square + local], active[i * groups + g] != 0,
                                             active[i * groups + h] != 0, g == h, pad[i]);
  }
}

/// 1 in `fallback[i]` where row `i`'s Cholesky factorization failed (`info`) or its factor is too ill-conditioned
/// to solve with (`refit_factor_usable`).
template <class Unused = void>
__global__ void refit_fallback_kernel(const double* factors, const int* info, std::size_t rows, std::size_t groups,
                                      char* fallback) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    double lo = INFINITY, hi = 0.0;
    for (std::size_t g = 0; g < groups; ++g) {
      const double d = factors[i * groups * groups + g * groups + g];
      lo = fmin(lo, d);
      hi = fmax(hi, d);
    }
    fallback[i] = info[i] != 0 || !ternq::detail::refit_factor_usable(lo, hi) ? 1 : 0;
  }
}

/// The least-norm step of one row from its eigendecomposition: `y_k / lambda_k` where `lambda_k` exceeds the
/// pseudo-inverse's cut (`refit_pseudo_inverse_cut`), else 0. One thread.
template <class Unused = void>
__global__ void pseudo_inverse_scale_kernel(const double* lambda, std::size_t n, double* y) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double largest = 0.0;
  for (std::size_t k = 0; k < n; ++k) largest = fmax(largest, fabs(lambda[k]));
  const double cut = ternq::detail::refit_pseudo_inverse_cut(largest, n);
  for (std::size_t k = 0; k < n; ++k) y[k] = lambda[k] > cut ? y[k] / lambda[k] : 0.0;
}

/// Row `i`'s output error `wcw_i - 2 b_i^T s + s^T A_i s` for both of its candidates (`s[2 i]`: the old scales,
/// `s[2 i + 1]`: the new ones), the CPU's quadratic.
template <class Unused = void>
__global__ void refit_errors_kernel(const double* a, const double* b, const double* wcw, const double* s,
                                    std::size_t rows, std::size_t groups, double* errors) {
  const std::size_t total = 2 * rows;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = k / 2;
    errors[k] = ternq::detail::refit_row_error(a + i * groups * groups, b + i * groups, wcw[i], s + k * groups, groups);
  }
}

/// The refit of `q` against the device's Gram matrix `cp` (`m x m`, double, column-major, in `q`'s stored column
/// order) and the weights `w` (row-major, float, in `q`'s stored column order, on the host). Rows run in chunks
/// whose temporaries stay near 1.5 GiB (four `chunk x m` and two `chunk x G^2` double buffers, each at most
/// 256 MiB). Rows that leave Cholesky are solved one at a time from the host (`syevd`): fine for the rare singular
/// row, slow if most rows are.
inline scale_refit_report refit_scales_with_device_gram(const exec& e, ternary_matrix& q, std::span<const float> w,
                                                        const double* cp, grid_precision precision) {
  const std::size_t rows = q.rows(), m = q.cols();
  const group_layout& layout = q.layout();
  const std::size_t groups = layout.count(), square = groups * groups;
  scale_refit_report report;
  if (rows == 0 || m == 0) return report;
  if (m > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      square > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    fail(errc::unsupported, "cuda::refit_scales_to_output: ", m, " columns exceed cuBLAS's int sizes");
  }
  const std::size_t per_row = std::max(m, square);
  const std::size_t chunk = std::clamp<std::size_t>((std::size_t{1} << 25) / per_row, 1, rows);
  const auto d_w = device_buffer<float>::from_host(w, e);
  const auto d_codes = device_buffer<std::int8_t>::from_host(q.codes(), e);
  device_buffer<double> wp(chunk * m), tp(chunk * m), wc(chunk * m), th(chunk * m);
  device_buffer<double> a(chunk * square), f(chunk * square), b(chunk * groups), rhs(chunk * groups);
  device_buffer<double> wcw(chunk), pad(chunk), candidates(2 * chunk * groups), errors(2 * chunk);
  device_buffer<char> active(chunk * groups), fallback(chunk);
  device_buffer<int> info(chunk), solve_info(1);
  device_buffer<double*> factor_ptrs(chunk), rhs_ptrs(chunk);
  {
    std::vector<double*> fp(chunk), rp(chunk);
    for (std::size_t i = 0; i < chunk; ++i) {
      fp[i] = f.data() + i * square;
      rp[i] = rhs.data() + i * groups;
    }
    factor_ptrs.upload(fp, e);
    rhs_ptrs.upload(rp, e);
  }
  const blas_handle blas(e.stream);
  const solver_handle solver(e.stream);
  const int n = static_cast<int>(m), gs = static_cast<int>(groups);
  // The fallback's scratch: one padded system, its eigenvalues, a projection and syevd's workspace.
  device_buffer<double> one_system(square), eigenvalues(groups), projected(groups);
  int lwork = 0;
  TERNQ_CUDA_CHECK(cusolverDnDsyevd_bufferSize(solver.get(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, gs,
                                               one_system.data(), gs, eigenvalues.data(), &lwork));
  device_buffer<double> work(static_cast<std::size_t>(std::max(lwork, 1)));

  std::vector<double> host_rhs(chunk * groups), host_candidates(2 * chunk * groups), host_errors(2 * chunk);
  std::vector<char> host_active(chunk * groups), host_fallback(chunk), usable(chunk);
  for (std::size_t r0 = 0; r0 < rows; r0 += chunk) {
    const std::size_t rn = std::min(chunk, rows - r0);
    const int rc = static_cast<int>(rn);
    refit_rows_kernel<<<elementwise_blocks(rn * m), elementwise_threads, 0, e.stream>>>(d_w.data(), d_codes.data(), m,
                                                                                        r0, rn, wp.data(), tp.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    const double one = 1.0, zero = 0.0;
    // Row-major `rn x m` matrices are column-major `m x rn` ones: (W C)^T = C^T W^T, as the CPU's `wp * cp`.
    TERNQ_CUDA_CHECK(
        cublasDgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, n, rc, n, &one, cp, n, wp.data(), n, &zero, wc.data(), n));
    const unsigned teams = team_blocks(rn * groups);
    // b_i(h) = t_h . (W C)_i over group h; wcw_i = w_i . (W C)_i, the whole row as one group.
    group_dots_kernel<<<teams, team_block_threads, 0, e.stream>>>(
        {tp.data(), wc.data(), rn, m, layout.group_size(), groups, b.data(), groups});
    TERNQ_CUDA_CHECK(cudaGetLastError());
    group_dots_kernel<<<team_blocks(rn), team_block_threads, 0, e.stream>>>(
        {wp.data(), wc.data(), rn, m, m, 1, wcw.data(), 1});
    TERNQ_CUDA_CHECK(cudaGetLastError());
    for (std::size_t h = 0; h < groups; ++h) {
      // (T_h C[h, :])^T = C[h, :]^T T_h^T: rows h of the stored-order C times the codes of group h, every row.
      const std::size_t hb = layout.begin(h);
      TERNQ_CUDA_CHECK(cublasDgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, n, rc, static_cast<int>(layout.size(h)), &one,
                                   cp + hb, n, tp.data() + hb, n, &zero, th.data(), n));
      // A_i(g, h) = t_g . (T_h C[h, :])_i over group g: column h of each row's column-major system.
      group_dots_kernel<<<teams, team_block_threads, 0, e.stream>>>(
          {tp.data(), th.data(), rn, m, layout.group_size(), groups, a.data() + h * groups, square});
      TERNQ_CUDA_CHECK(cudaGetLastError());
    }
    refit_active_kernel<<<elementwise_blocks(rn), elementwise_threads, 0, e.stream>>>(
        a.data(), b.data(), rn, groups, active.data(), rhs.data(), pad.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    refit_padded_kernel<<<elementwise_blocks(rn * square), elementwise_threads, 0, e.stream>>>(
        a.data(), active.data(), pad.data(), 0, rn, groups, f.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    TERNQ_CUDA_CHECK(
        cusolverDnDpotrfBatched(solver.get(), CUBLAS_FILL_MODE_LOWER, gs, factor_ptrs.data(), gs, info.data(), rc));
    refit_fallback_kernel<<<elementwise_blocks(rn), elementwise_threads, 0, e.stream>>>(f.data(), info.data(), rn,
                                                                                        groups, fallback.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    TERNQ_CUDA_CHECK(cusolverDnDpotrsBatched(solver.get(), CUBLAS_FILL_MODE_LOWER, gs, 1, factor_ptrs.data(), gs,
                                             rhs_ptrs.data(), gs, solve_info.data(), rc));
    fallback.download_first(std::span<char>(host_fallback.data(), rn), e);
    for (std::size_t i = 0; i < rn; ++i) {
      if (host_fallback[i] == 0) continue;
      // A singular or ill-conditioned metric: the least-norm optimum V diag(1 / lambda) V^T b, with b rebuilt
      // (the batched solve overwrote it) by the same kernel.
      refit_padded_kernel<<<elementwise_blocks(square), elementwise_threads, 0, e.stream>>>(
          a.data(), active.data(), pad.data(), i, 1, groups, one_system.data());
      TERNQ_CUDA_CHECK(cudaGetLastError());
      refit_active_kernel<<<1, 1, 0, e.stream>>>(a.data() + i * square, b.data() + i * groups, 1, groups,
                                                 active.data() + i * groups, rhs.data() + i * groups, pad.data() + i);
      TERNQ_CUDA_CHECK(cudaGetLastError());
      TERNQ_CUDA_CHECK(cusolverDnDsyevd(solver.get(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, gs,
                                        one_system.data(), gs, eigenvalues.data(), work.data(), lwork,
                                        info.data() + i));
      double* x = rhs.data() + i * groups;
      TERNQ_CUDA_CHECK(
          cublasDgemv(blas.get(), CUBLAS_OP_T, gs, gs, &one, one_system.data(), gs, x, 1, &zero, projected.data(), 1));
      pseudo_inverse_scale_kernel<<<1, 1, 0, e.stream>>>(eigenvalues.data(), groups, projected.data());
      TERNQ_CUDA_CHECK(cudaGetLastError());
      TERNQ_CUDA_CHECK(
          cublasDgemv(blas.get(), CUBLAS_OP_N, gs, gs, &one, one_system.data(), gs, projected.data(), 1, &zero, x, 1));
    }
    rhs.download_first(std::span<double>(host_rhs.data(), rn * groups), e);
    active.download_first(std::span<char>(host_active.data(), rn * groups), e);
    // The CPU's candidates: the old scales, and the solution at the value that will be stored (active groups).
    for (std::size_t i = 0; i < rn; ++i) {
      double* old = host_candidates.data() + 2 * i * groups;
      double* next = old + groups;
      bool any = false, finite = true;
      for (std::size_t g = 0; g < groups; ++g) {
        old[g] = q.scale(r0 + i, g);
        next[g] = old[g];
        if (host_active[i * groups + g] != 0) {
          any = true;
          next[g] = static_cast<double>(round_to(precision, static_cast<float>(host_rhs[i * groups + g])));
        }
        finite = finite && std::isfinite(next[g]);
      }
      usable[i] = any && finite ? 1 : 0;
    }
    candidates.upload_first(std::span<const double>(host_candidates.data(), 2 * rn * groups), e);
    refit_errors_kernel<<<elementwise_blocks(2 * rn), elementwise_threads, 0, e.stream>>>(
        a.data(), b.data(), wcw.data(), candidates.data(), rn, groups, errors.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    errors.download_first(std::span<double>(host_errors.data(), 2 * rn), e);
    for (std::size_t i = 0; i < rn; ++i) {
      const double before = host_errors[2 * i], after = host_errors[2 * i + 1];
      report.output_error_before += before;
      if (usable[i] == 0 || !(after < before)) {
        report.output_error_after += before;
        continue;
      }
      report.output_error_after += after;
      ++report.rows_changed;
      const double* next = host_candidates.data() + (2 * i + 1) * groups;
      for (std::size_t g = 0; g < groups; ++g) q.scale(r0 + i, g) = static_cast<float>(next[g]);
    }
  }
  return report;
}

/// The packed `m x m` host Gram matrix `gram` on the device in double, column-major, in `q`'s stored column order.
template <class G>
device_buffer<double> stored_order_gram(const exec& e, const ternary_matrix& q, const matrix_view<const G>& gram) {
  const std::size_t m = gram.cols();
  const staged_square<G> staged = stage_square(gram, e);
  const auto orig =
      q.has_permutation() ? device_buffer<std::size_t>::from_host(q.permutation(), e) : device_buffer<std::size_t>();
  device_buffer<double> out(m * m);
  permuted_gram_kernel<G><<<elementwise_blocks(m * m), elementwise_threads, 0, e.stream>>>(
      staged.values.data(), !staged.column_major, m, orig.data(), out.data());
  TERNQ_CUDA_CHECK(cudaGetLastError());
  TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));  // `staged` and `orig` are freed on return
  return out;
}

/// The rows of `w` with their columns in `q`'s stored order, packed row-major.
inline std::vector<float> stored_order_weights(const ternary_matrix& q, const matrix_view<const float>& w) {
  std::vector<float> out(w.rows() * w.cols());
  for (std::size_t i = 0; i < w.rows(); ++i) {
    for (std::size_t j = 0; j < w.cols(); ++j) out[i * w.cols() + j] = w(i, q.original_column(j));
  }
  return out;
}

}  // namespace detail

/// `refit_scales_to_output(q, w, gram, precision)` on the device: every scale of the symmetric ternary matrix `q`
/// (codes, groups and column permutation kept) re-fitted jointly per row to `tr((W - Q) C (W - Q)^T)` for the
/// float weights `w` and the float or double Gram matrix `gram` (of the original column order); a row keeps its
/// scales unless the new ones lower its error, so E_x never increases. The same refusals as the CPU's.
///
/// Against the CPU: the systems are the same sums in double in other orders, the well-conditioned rows are solved
/// by Cholesky instead of LDLT, and the ill-conditioned ones by the eigendecomposition's pseudo-inverse instead of
/// the complete orthogonal decomposition; so the new scales agree to rounding where the system is well posed, and
/// each row's choice is made on the CPU's rule either way.
template <class W, class G>
scale_refit_report refit_scales_to_output(const exec& e, ternary_matrix& q, const W& w, const G& gram,
                                          grid_precision precision = grid_precision::fp32) {
  const matrix_view<const float> wv = detail::float_view(w);
  const auto gv = as_const_view(gram);
  ternq::detail::require_refit_shapes(q, wv.rows(), wv.cols(), gv.rows(), gv.cols());
  if (q.rows() == 0 || q.cols() == 0) return {};
  const device_scope scope(e.device);
  const device_buffer<double> cp = detail::stored_order_gram(e, q, gv);
  return detail::refit_scales_with_device_gram(e, q, detail::stored_order_weights(q, wv), cp.data(), precision);
}

}  // namespace ternq::cuda
