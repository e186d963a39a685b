// SPDX-License-Identifier: MIT
// The GPTQ-style blockwise driver on the GPU (ALGORITHMS.md §3): `cuda::gptq_steps` has the members of the CPU's
// `cpu_gptq_steps` over device memory, and the driver's shared logic (quant/gptq/pass.hpp: orders, SSR, retries,
// report, progress) runs it unchanged. cuSOLVER factors and inverts the damped Hessian, cuBLAS does the `n m^2`
// update and the inverse downdate, and kernels fit the block's grids (the per-group kernels of itf.cuh,
// symmetric.cuh, optimal_symmetric.cuh and itf_aga.cuh, one group per row), score SSR's columns and run GPTQ's inner
// loop with one thread per row.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>
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
#include "ternq/cuda/gptq_kernels.cuh"
#include "ternq/cuda/handles.cuh"
#include "ternq/cuda/itf.cuh"
#include "ternq/cuda/itf_aga.cuh"
#include "ternq/cuda/optimal_symmetric.cuh"
#include "ternq/cuda/symmetric.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/linalg/damped_hessian.hpp"
#include "ternq/linalg/gram_psd.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/detail/atq_rows.hpp"
#include "ternq/quant/gptq/exchanges.hpp"
#include "ternq/quant/gptq/options.hpp"
#include "ternq/quant/gptq/pass.hpp"
#include "ternq/quant/gptq/report.hpp"

namespace ternq::cuda {

/// The GPTQ driver's steps on a CUDA device: the members of `cpu_gptq_steps`, which `gptq_quantize_with` calls in
/// the same order, over device memory, for float weights.
///
/// The device keeps the CPU's *explicit inverse* form for every block order (`cpu_gptq_steps::hessian_form::
/// explicit_inverse`): the lower triangle of `Hinv` of the remaining positions in double, downdated after every
/// block by DSYRK, and the remaining weights (column-major, float) updated after every block by one SGEMM. So the
/// `factor_precision` option, which chooses the precision of the CPU's up-front factor, does not apply: the device
/// factors in double. The Gram matrix crosses the bus once per call (`set_gram`); `H` is built from it on the device,
/// entry for entry as the CPU builds it (the CPU's terms from `damped_hessian_terms`), and factored and inverted by
/// cuSOLVER (`potrf`, `potri`); the positive semi-definiteness check runs on it too (`require_psd`).
///
/// SSR's column swaps are recorded by `swap_columns` and applied together by `factor_block`, which the driver calls
/// next (`compose_exchanges`): the at most `2 g` moved columns of `W` and rows of `Hinv` are saved and placed.
///
/// The grids: ITF, absmean, TWN and the exact optimum by the per-group kernels on the block as rows (one group per
/// row, bit for bit the CPU's fit of the same block), `itf_aga`'s AGA against `P^{-1}` (cuSOLVER's `potri` of the
/// block's factor) or `C[B, B]` by the products and the team solve of itf_aga.cuh; `optimal_aga`'s per-row
/// alternation of inner-loop runs (`align_symmetric_row` on the CPU) by one thread per row.
///
/// What agrees with the CPU: the blocks' weights differ from the CPU's by the rounding of the products (cuBLAS's
/// order, the inner loop's sequential updates where the CPU uses a GEMM per panel), so codes agree except where a
/// weight sits on a rounding boundary, and the errors to rounding (see docs/cuda.md).
class gptq_steps {
 public:
  explicit gptq_steps(const exec& e) : exec_(e), scope_(e.device), blas_(e.stream), solver_(e.stream) {}
  gptq_steps(const gptq_steps&) = delete;
  gptq_steps& operator=(const gptq_steps&) = delete;
  /// Waits for the work still queued (a pass cancelled by progress, or a step that threw, may leave an update
  /// running) before the buffers it uses are freed.
  ~gptq_steps() { (void)cudaStreamSynchronize(exec_.stream); }

  /// Uploads the checked weights (packed row-major, the original for `E_w`) and gathers the column-major working
  /// copy, column `order[p]` at position `p`.
  void load_weights(const matrix_view<const float>& w, std::span<const std::size_t> order) {
    constexpr auto int_max = static_cast<std::size_t>(std::numeric_limits<int>::max());
    if (w.rows() > int_max || w.cols() > int_max) {  // cuBLAS's and cuSOLVER's dimensions are `int`
      fail(errc::unsupported, "cuda::gptq_quantize: a ", w.rows(), "x", w.cols(), " matrix exceeds cuBLAS's int sizes");
    }
    rows_ = w.rows();
    cols_ = w.cols();
    // The driver has checked the weights (`require_weights`): a packed row-major matrix goes up as it is, another is
    // packed first.
    const bool packed = w.col_stride() == 1 && w.row_stride() == static_cast<std::ptrdiff_t>(w.cols());
    original_ = packed
                    ? device_buffer<float>::from_host(std::span<const float>(w.data(), rows_ * cols_), exec_)
                    : device_buffer<float>::from_host(detail::packed_checked_weights(w, "cuda::gptq_quantize"), exec_);
    const auto d_order = device_buffer<std::size_t>::from_host(order, exec_);
    w_ = device_buffer<float>(rows_ * cols_);
    detail::gather_columns_kernel<<<detail::elementwise_blocks(rows_ * cols_), detail::elementwise_threads, 0,
                                    exec_.stream>>>(original_.data(), rows_, cols_, d_order.data(), w_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(exec_.stream));  // `d_order` is freed on return
  }

  /// Uploads the Gram matrix for the passes that follow and for `require_psd` (converted to double, column-major, on
  /// the device): it crosses the bus once per call, and `H` and the check are built on the device. Call it again when
  /// the matrix's contents change; `load_inverse` uploads a matrix it was not given here for its own pass.
  template <class G>
  void set_gram(const matrix_view<const G>& gram) {
    const std::size_t m = gram.cols();
    if (gram.rows() != m) {
      fail(errc::shape_mismatch, "cuda::gptq_steps: a ", gram.rows(), "x", m, " gram matrix is not square");
    }
    if (m == 0) return;
    double* out = scratch(gram_, m * m);
    const detail::staged_square<G> staged = detail::stage_square(gram, exec_);
    if (staged.column_major) {
      detail::to_double_kernel<G><<<detail::elementwise_blocks(m * m), detail::elementwise_threads, 0, exec_.stream>>>(
          staged.values.data(), m * m, out);
    } else {
      const unsigned tiles = static_cast<unsigned>((m + detail::gram_tile - 1) / detail::gram_tile);
      detail::transpose_to_double_kernel<G>
          <<<dim3(tiles, tiles), dim3(detail::gram_tile, 8), 0, exec_.stream>>>(staged.values.data(), m, out);
    }
    TERNQ_CUDA_CHECK(cudaGetLastError());
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(exec_.stream));  // `staged` is freed on return
    gram_source_ = {static_cast<const void*>(gram.data()), m, gram.row_stride(), gram.col_stride()};
  }

  /// `linalg::require_psd`'s check of the Gram matrix, with its messages, on the device: the whole matrix as one
  /// block of `linalg::shift_for_psd_check` (an all-zero matrix passes, a hollow one is refused, else `C` plus
  /// `gram_psd_tolerance` times its mean diagonal must have a Cholesky factorization), factored by cuSOLVER.
  template <class G>
  void require_psd(const matrix_view<const G>& gram, const char* context) {
    if (!holds(gram)) set_gram(gram);
    const std::size_t m = gram.cols();
    double trace = 0.0;
    for (std::size_t q = 0; q < m; ++q) trace += static_cast<double>(gram(q, q));
    int* status = scratch(status_, 2);
    TERNQ_CUDA_CHECK(cudaMemsetAsync(status, 0, sizeof(int), exec_.stream));
    detail::lower_nonzero_kernel<<<detail::elementwise_blocks(m * m), detail::elementwise_threads, 0, exec_.stream>>>(
        gram_.data(), m, status);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    int nonzero = 0;
    copy_out(static_cast<const int*>(status), std::span<int>(&nonzero, 1));
    if (nonzero == 0) return;  // an all-zero matrix is a Gram matrix (of no data)
    if (trace <= 0.0) linalg::fail_zero_trace_gram(context, "gram matrix");
    double* shifted = scratch(hinv_, m * m);  // `H` is built after the check, in the same memory
    detail::psd_shift_kernel<<<detail::elementwise_blocks(m * m), detail::elementwise_threads, 0, exec_.stream>>>(
        gram_.data(), m, linalg::gram_psd_tolerance * trace / static_cast<double>(m), shifted);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    if (!factor_lower(shifted, m)) linalg::fail_not_psd_gram(context, "gram matrix", trace, static_cast<double>(m));
  }

  /// Builds the damped Hessian in the order `order` on the device (the CPU's terms from `damped_hessian_terms`, the
  /// CPU's entries), zeroes the weights of its dead columns, and inverts it (`potrf`, `potri`; lower triangle).
  /// `order_known` is not used: the device keeps the explicit inverse for every order. Returns nullopt when the
  /// Cholesky factorization or the inverse fails.
  template <class G>
  std::optional<linalg::damped_hessian_info> load_inverse(const matrix_view<const G>& gram,
                                                          std::span<const std::size_t> order, double lambda,
                                                          bool /*order_known*/) {
    const std::size_t m = order.size();
    if (!holds(gram)) set_gram(gram);
    std::vector<char> dead;
    const linalg::damped_hessian_info info = linalg::damped_hessian_terms(gram, order, lambda, dead);
    const std::size_t* d_order = copy_in(order_, order);
    const char* d_dead = copy_in(dead_, std::span<const char>(dead));
    double* h = scratch(hinv_, m * m);
    detail::damped_hessian_kernel<<<detail::elementwise_blocks(m * m), detail::elementwise_threads, 0, exec_.stream>>>(
        gram_.data(), m, d_order, d_dead, lambda * info.mean_diagonal, h);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    if (info.dead_columns > 0) {
      detail::zero_dead_columns_kernel<<<detail::elementwise_blocks(rows_ * m), detail::elementwise_threads, 0,
                                         exec_.stream>>>(w_.data(), rows_, m, d_dead);
      TERNQ_CUDA_CHECK(cudaGetLastError());
    }
    pending_.clear();
    if (!factor_lower(h, m) || !invert_from_factor(h, m)) return std::nullopt;
    return info;
  }

  /// SSR's scores of the remaining positions `[first, m)` (see `cpu_gptq_steps::ssr_scores`): the mean column and
  /// each column's norm and dot product in the CPU's order, bit for bit; the mean's norm, a factor common to every
  /// score, to rounding.
  [[nodiscard]] std::vector<double> ssr_scores(std::size_t first) {
    apply_swaps();
    const std::size_t r = cols_ - first;
    double* wbar = scratch(row_doubles_, rows_);
    double* norm = scratch(norm_, 1);
    double* scores = scratch(scores_, r);
    detail::ssr_mean_kernel<<<detail::elementwise_blocks(rows_), detail::elementwise_threads, 0, exec_.stream>>>(
        w_.data(), rows_, first, cols_, wbar);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    detail::ssr_norm_kernel<<<1, detail::ssr_norm_threads, 0, exec_.stream>>>(wbar, rows_, norm);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    detail::ssr_scores_kernel<<<detail::elementwise_blocks(r), detail::elementwise_threads, 0, exec_.stream>>>(
        w_.data(), rows_, first, cols_, wbar, norm, scores);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    std::vector<double> out(r);
    copy_out(scores, std::span<double>(out));
    return out;
  }

  /// Records the exchange of working positions `a` and `b` (both `>= first`); the next `factor_block` or
  /// `ssr_scores` applies every recorded exchange at once.
  void swap_columns(std::size_t first, std::size_t a, std::size_t b) {
    if (a == b) return;
    pending_first_ = pending_.empty() ? first : std::min(pending_first_, first);
    pending_.emplace_back(a, b);
  }

  /// `P = Hinv[B, B]` for the block `B = [first, first + size)` and its Cholesky factor `L` (`P = L L^T`, so the CPU's
  /// `U` is `L^T`). Returns false when `P` is not numerically positive definite.
  bool factor_block(std::size_t first, std::size_t size) {
    apply_swaps();
    double* factor = scratch(factor_, size * size);
    TERNQ_CUDA_CHECK(cudaMemcpy2DAsync(factor, size * sizeof(double), hinv_.data() + first * cols_ + first,
                                       cols_ * sizeof(double), size * sizeof(double), size, cudaMemcpyDeviceToDevice,
                                       exec_.stream));
    if (!factor_lower(factor, size)) return false;
    int* bad = scratch(status_, 2);
    detail::check_diagonal_kernel<<<1, 1, 0, exec_.stream>>>(factor, size, bad);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    int host_bad = 0;
    copy_out(static_cast<const int*>(bad), std::span<int>(&host_bad, 1));
    return host_bad == 0;
  }

  /// The block's grid and codes (see `cpu_gptq_steps::quantize_block`): the grid of every row from the block's
  /// compensated weights, AGA for `itf_aga`, the stored grid rounded on the host as the CPU rounds it, then the inner
  /// loop. Writes codes and grids of group `group` into `q`, keeps `Err` for the update, and returns the block's
  /// `E_w` and damped output error.
  template <class G>
  gptq_block_report quantize_block(std::size_t group, std::size_t first, std::size_t size, const gptq& options,
                                   const matrix_view<const G>& gram, std::span<const std::size_t> columns,
                                   const matrix_view<const float>& /*original*/, ternary_matrix& q) {
    const std::size_t n = rows_;
    const bool asymmetric = q.has_offsets();
    float* block = scratch(block_, n * size);
    detail::block_rows_kernel<<<detail::elementwise_blocks(n * size), detail::elementwise_threads, 0, exec_.stream>>>(
        w_.data(), n, first, size, block);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    const device_matrix_view dw{block, n, size, size};
    std::int8_t* codes = scratch(codes_, n * size);
    gptq_block_report report;
    report.first = first;
    report.size = size;
    std::vector<atq_grid> grids(n);
    // optimal_aga's alternation runs the inner loop itself and stores its grid; its best run's codes have their own
    // memory
    const bool symmetric_aga = std::holds_alternative<optimal_aga>(options.grid);
    std::int8_t* final_codes = codes;
    std::visit(
        [&](const auto& method) {
          using method_type = std::decay_t<decltype(method)>;
          if constexpr (std::is_same_v<method_type, itf> || std::is_same_v<method_type, itf_aga>) {
            atq_grid* d_grids = scratch(grids_, n);
            itf_group_stats* stats = scratch(stats_, n);
            itf_fit_device(exec_, dw, size, method.max_iters, {codes, d_grids, stats});
            if constexpr (std::is_same_v<method_type, itf_aga>) {
              report.grid.aga_fallbacks += align(options.metric, gram, columns, dw, codes, d_grids);
            }
            copy_out(d_grids, std::span<atq_grid>(grids));
            std::vector<itf_group_stats> host_stats(n);
            copy_out(stats, std::span<itf_group_stats>(host_stats));
            for (const auto& st : host_stats) report.grid.add(st);
          } else if constexpr (std::is_same_v<method_type, optimal_aga>) {
            float* scales = scratch(scales_, n);
            detail::optimal_fit_device(exec_, dw, group_layout(size, size), codes, scales);
            final_codes = align_symmetric(method.max_iters, options, gram, columns, dw, codes, scales);
          } else {
            float* scales = scratch(scales_, n);
            if constexpr (std::is_same_v<method_type, optimal_symmetric>) {
              detail::optimal_fit_device(exec_, dw, group_layout(size, size), codes, scales);
            } else {
              const auto launch = [&](auto fit) {
                detail::symmetric_fit_kernel<<<detail::team_blocks(n), detail::team_block_threads, 0, exec_.stream>>>(
                    dw, size, 1, fit, codes, scales);
                TERNQ_CUDA_CHECK(cudaGetLastError());
              };
              if constexpr (std::is_same_v<method_type, absmean>) {
                launch(detail::absmean_team_fit{});
              } else {
                static_assert(std::is_same_v<method_type, twn>);
                launch(detail::twn_team_fit{method.threshold_ratio});
              }
            }
            std::vector<float> host_scales(n);
            copy_out(scales, std::span<float>(host_scales));
            for (std::size_t i = 0; i < n; ++i) grids[i] = {static_cast<double>(host_scales[i]), 0.0};
          }
        },
        options.grid);

    std::vector<float> alpha(n), mu(n, 0.0F);
    if (symmetric_aga) {
      copy_out(static_cast<const float*>(alpha_.data()), std::span<float>(alpha));
    } else {
      // the stored grid, rounded as the CPU rounds it (`round_to` is host code)
      for (std::size_t i = 0; i < n; ++i) {
        alpha[i] = round_to(options.precision, static_cast<float>(grids[i].alpha));
        if (asymmetric) mu[i] = round_to(options.precision, static_cast<float>(grids[i].mu));
      }
      detail::inner_loop_args args{};
      args.w = w_.data();
      args.rows = n;
      args.first = first;
      args.size = size;
      args.factor = factor_.data();
      args.alpha = copy_in(alpha_, std::span<const float>(alpha));
      args.mu = copy_in(mu_, std::span<const float>(mu));
      args.original = original_.data();
      args.cols = cols_;
      args.columns = copy_in(columns_, columns);
      args.codes = codes;
      args.err = scratch(err_, n * size);
      args.output_error = scratch(row_doubles_, n);
      args.weight_error = scratch(row_weight_error_, n);
      detail::gptq_inner_loop_kernel<<<detail::row_blocks(n), detail::row_threads, 0, exec_.stream>>>(args);
      TERNQ_CUDA_CHECK(cudaGetLastError());
    }

    std::vector<std::int8_t> host_codes(n * size);
    copy_out(static_cast<const std::int8_t*>(final_codes), std::span<std::int8_t>(host_codes));
    std::vector<double> host_output(n), host_weight(n);
    copy_out(static_cast<const double*>(row_doubles_.data()), std::span<double>(host_output));
    copy_out(static_cast<const double*>(row_weight_error_.data()), std::span<double>(host_weight));
    for (std::size_t i = 0; i < n; ++i) {
      std::copy_n(host_codes.begin() + static_cast<std::ptrdiff_t>(i * size), size,
                  q.row_codes(i).subspan(first, size).begin());
      q.scale(i, group) = alpha[i];
      if (asymmetric) q.offset(i, group) = mu[i];
    }
    // the rows' errors summed as the CPU sums them: within its fixed chunks of rows, then the chunks in order
    for (std::size_t r0 = 0; r0 < n; r0 += ternq::detail::atq_row_chunk) {
      double output = 0.0, weight = 0.0;
      for (std::size_t i = r0; i < std::min(n, r0 + ternq::detail::atq_row_chunk); ++i) {
        output += host_output[i];
        weight += host_weight[i];
      }
      report.output_error += output;
      report.weight_error += weight;
    }
    return report;
  }

  /// The rank-`g` update of the remaining weights `W[:, F] -= Err K^T` with `K = Hinv[F, B] U^{-1}` (a DTRSM, then
  /// `K` rounded to float and one SGEMM), as `cpu_gptq_steps::update_remaining` in its explicit form.
  void update_remaining(std::size_t first, std::size_t size) {
    const std::size_t f = first + size;
    const std::size_t p = cols_ - f;
    if (p == 0) return;
    double* k = scratch(k_, p * size);
    TERNQ_CUDA_CHECK(cudaMemcpy2DAsync(k, p * sizeof(double), hinv_.data() + first * cols_ + f, cols_ * sizeof(double),
                                       p * sizeof(double), size, cudaMemcpyDeviceToDevice, exec_.stream));
    const double one = 1.0;
    const int pi = static_cast<int>(p), s = static_cast<int>(size);
    // K U = Hinv[F, B] with U = L^T
    TERNQ_CUDA_CHECK(cublasDtrsm(blas_.get(), CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T,
                                 CUBLAS_DIAG_NON_UNIT, pi, s, &one, factor_.data(), s, k, pi));
    float* kf = scratch(k_float_, p * size);
    detail::to_float_kernel<<<detail::elementwise_blocks(p * size), detail::elementwise_threads, 0, exec_.stream>>>(
        k, kf, p * size);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    const float minus_one = -1.0F, plus_one = 1.0F;
    const int n = static_cast<int>(rows_);
    TERNQ_CUDA_CHECK(cublasSgemm(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, n, pi, s, &minus_one, err_.data(), n, kf, pi,
                                 &plus_one, w_.data() + f * rows_, n));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(exec_.stream));  // the report's `seconds.update` is the product's time
  }

  /// The inverse downdate `Hinv[F, F] -= K K^T` (lower triangle, DSYRK); follows `update_remaining`, which computes
  /// `K`.
  void downdate_inverse(std::size_t first, std::size_t size) {
    const std::size_t f = first + size;
    if (f >= cols_) return;
    const int p = static_cast<int>(cols_ - f), s = static_cast<int>(size), m = static_cast<int>(cols_);
    const double minus_one = -1.0, one = 1.0;
    TERNQ_CUDA_CHECK(cublasDsyrk(blas_.get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, p, s, &minus_one, k_.data(), p, &one,
                                 hinv_.data() + f * cols_ + f, m));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(exec_.stream));  // the report's `seconds.downdate` is the product's time
  }

 private:
  /// The block's AGA metric (`options.metric`): `P^{-1}` (cuSOLVER's `potri` of the block's factor) or `C[B, B]`
  /// gathered on the host, as a full symmetric column-major `s x s` matrix in `metric_`, with `M 1` and `1^T M 1`
  /// after each other in `ones_`, as the CPU's `aga_align_rows` forms them.
  template <class G>
  double* block_metric(aga_metric which, const matrix_view<const G>& gram, std::span<const std::size_t> columns,
                       std::size_t s) {
    double* metric = scratch(metric_, s * s);
    if (which == aga_metric::compensated) {
      TERNQ_CUDA_CHECK(
          cudaMemcpyAsync(metric, factor_.data(), s * s * sizeof(double), cudaMemcpyDeviceToDevice, exec_.stream));
      if (!invert_from_factor(metric, s)) {
        fail(errc::numerical, "cuda::gptq_quantize: the inverse of a block's P failed after its factorization");
      }
    } else {
      // C[B, B] column-major as the CPU reads it (`metric(a, b) = C(columns[a], columns[b])`); the kernel below
      // mirrors its lower half, so a Gram matrix symmetric only to `require_gram_for`'s tolerance agrees to rounding
      std::vector<double> host(s * s);
      for (std::size_t a = 0; a < s; ++a) {
        for (std::size_t b = 0; b < s; ++b) host[b * s + a] = static_cast<double>(gram(columns[a], columns[b]));
      }
      copy_in(metric_, std::span<const double>(host));
    }
    double* ones = scratch(ones_, s + 1);  // M 1, then 1^T M 1
    detail::symmetric_metric_kernel<<<1, 256, 0, exec_.stream>>>(metric, s, ones, ones + s);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    return metric;
  }

  /// `optimal_aga` on the block's rows (see `detail::gptq_symmetric_aga_kernel`), from the exact optimum's codes
  /// `initial` and scales `alpha0`: writes the stored scales to `alpha_`, the errors to `err_`, the rows' output and
  /// weight errors, and returns the chosen codes (their own memory).
  template <class G>
  std::int8_t* align_symmetric(unsigned refinements, const gptq& options, const matrix_view<const G>& gram,
                               std::span<const std::size_t> columns, const device_matrix_view& dw,
                               const std::int8_t* initial, const float* alpha0) {
    const std::size_t n = dw.rows;
    const std::size_t s = dw.cols;
    const double* metric = block_metric(options.metric, gram, columns, s);
    double* wd = scratch(t_, n * s);
    detail::to_double_kernel<float>
        <<<detail::elementwise_blocks(n * s), detail::elementwise_threads, 0, exec_.stream>>>(dw.data, n * s, wd);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    double* mw = scratch(tc_, n * s);
    // mw = W M, row-major `n x s` (row i: `(M w_i)^T`, `M` symmetric), as `tc` in `align`
    const double one = 1.0, zero = 0.0;
    const int si = static_cast<int>(s), ni = static_cast<int>(n);
    TERNQ_CUDA_CHECK(
        cublasDgemm(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_N, si, ni, si, &one, metric, si, wd, si, &zero, mw, si));
    detail::symmetric_aga_args args{};
    args.start = dw.data;
    args.rows = n;
    args.size = s;
    args.factor = factor_.data();
    args.metric = metric;
    args.mw = mw;
    args.initial = initial;
    args.alpha0 = alpha0;
    args.refinements = refinements;
    args.fp16 = options.precision == grid_precision::fp16;
    args.work = scratch(block_work_, n * s);
    args.run_err = scratch(run_err_, n * s);
    args.run_codes = scratch(run_codes_, n * s);
    args.original = original_.data();
    args.cols = cols_;
    args.columns = copy_in(columns_, columns);
    args.codes = scratch(chosen_codes_, n * s);
    args.err = scratch(err_, n * s);
    args.alpha = scratch(alpha_, n);
    args.output_error = scratch(row_doubles_, n);
    args.weight_error = scratch(row_weight_error_, n);
    detail::gptq_symmetric_aga_kernel<<<detail::row_blocks(n), detail::row_threads, 0, exec_.stream>>>(args);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    return args.codes;
  }

  /// AGA on the block's rows with the codes frozen (itf_aga.cuh's `aga_align_kernel`, one group per row) against the
  /// metric: `P^{-1}` (`potri` of the block's factor) or `C[B, B]` gathered on the host. Returns the fallbacks.
  template <class G>
  std::size_t align(aga_metric which, const matrix_view<const G>& gram, std::span<const std::size_t> columns,
                    const device_matrix_view& dw, std::int8_t* codes, atq_grid* grids) {
    const std::size_t n = dw.rows;
    const std::size_t s = dw.cols;
    const double* metric = block_metric(which, gram, columns, s);
    const double* ones = ones_.data();
    double* t = scratch(t_, n * s);
    double* tc = scratch(tc_, n * s);
    detail::codes_as_double_kernel<<<detail::elementwise_blocks(n * s), detail::elementwise_threads, 0, exec_.stream>>>(
        codes, t, n * s);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    // tc = T M, row-major `n x s`: in cuBLAS's column-major terms `M^T T^T`, and `M` is symmetric
    const double one = 1.0, zero = 0.0;
    const int si = static_cast<int>(s), ni = static_cast<int>(n);
    TERNQ_CUDA_CHECK(
        cublasDgemm(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_N, si, ni, si, &one, metric, si, t, si, &zero, tc, si));
    unsigned char* fallbacks = scratch(fallbacks_, n);
    detail::aga_align_kernel<<<detail::team_blocks(n), detail::team_block_threads, 0, exec_.stream>>>(
        dw, s, 1, tc, ones, ones + s, codes, grids, fallbacks);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    std::vector<unsigned char> host_fallbacks(n);
    copy_out(static_cast<const unsigned char*>(fallbacks), std::span<unsigned char>(host_fallbacks));
    std::size_t count = 0;
    for (const unsigned char f : host_fallbacks) count += f;
    return count;
  }

  /// Applies the recorded exchanges of working positions (`swap_columns`) to `W` and `Hinv` at once.
  void apply_swaps() {
    if (pending_.empty()) return;
    const std::size_t first = pending_first_;
    const std::size_t r = cols_ - first;
    const composed_exchanges x = compose_exchanges(first, cols_, pending_);
    pending_.clear();
    const std::vector<std::size_t>& moved = x.moved;
    const std::vector<std::size_t>& from = x.from;
    const std::vector<std::size_t>& source = x.source;
    if (moved.empty()) return;
    const std::size_t count = moved.size();
    // one upload of the three index arrays: `moved`, `from`, `source`
    std::vector<std::size_t> indices;
    indices.reserve(2 * count + r);
    indices.insert(indices.end(), moved.begin(), moved.end());
    indices.insert(indices.end(), from.begin(), from.end());
    indices.insert(indices.end(), source.begin(), source.end());
    const std::size_t* d_moved = copy_in(indices_, std::span<const std::size_t>(indices));
    const std::size_t* d_from = d_moved + count;
    const std::size_t* d_source = d_from + count;
    float* saved_columns = scratch(saved_columns_, rows_ * count);
    double* saved_rows = scratch(saved_rows_, r * count);
    const unsigned threads = detail::elementwise_threads;
    detail::save_moved_columns_kernel<<<detail::elementwise_blocks(rows_ * count), threads, 0, exec_.stream>>>(
        w_.data(), rows_, d_moved, count, saved_columns);
    detail::save_moved_rows_kernel<<<detail::elementwise_blocks(r * count), threads, 0, exec_.stream>>>(
        hinv_.data(), cols_, first, d_moved, count, saved_rows);
    detail::place_moved_columns_kernel<<<detail::elementwise_blocks(rows_ * count), threads, 0, exec_.stream>>>(
        w_.data(), rows_, d_moved, d_from, count, saved_columns);
    detail::place_moved_rows_kernel<<<detail::elementwise_blocks(r * count), threads, 0, exec_.stream>>>(
        hinv_.data(), cols_, first, d_moved, d_from, d_source, count, saved_rows);
    TERNQ_CUDA_CHECK(cudaGetLastError());
  }

  /// Whether `set_gram` uploaded `gram` (the same memory and shape).
  template <class G>
  [[nodiscard]] bool holds(const matrix_view<const G>& gram) const noexcept {
    return gram_source_.data == static_cast<const void*>(gram.data()) && gram_source_.cols == gram.cols() &&
           gram_source_.row_stride == gram.row_stride() && gram_source_.col_stride == gram.col_stride();
  }

  /// Cholesky factorization in place of the lower triangle of the column-major `n x n` `a` (cuSOLVER's `potrf`);
  /// false when it fails.
  bool factor_lower(double* a, std::size_t n) {
    const int ni = static_cast<int>(n);
    int lwork = 0;
    TERNQ_CUDA_CHECK(cusolverDnDpotrf_bufferSize(solver_.get(), CUBLAS_FILL_MODE_LOWER, ni, a, ni, &lwork));
    double* work = scratch(work_, static_cast<std::size_t>(std::max(lwork, 1)));
    int* status = scratch(status_, 2);
    TERNQ_CUDA_CHECK(cusolverDnDpotrf(solver_.get(), CUBLAS_FILL_MODE_LOWER, ni, a, ni, work, lwork, status));
    int host_status = 0;
    copy_out(static_cast<const int*>(status), std::span<int>(&host_status, 1));
    return host_status == 0;
  }

  /// The lower triangle of `A^{-1}` in place of that of its Cholesky factor `L` (`A = L L^T`, column-major `n x n`;
  /// cuSOLVER's `potri`); false when it fails.
  bool invert_from_factor(double* a, std::size_t n) {
    const int ni = static_cast<int>(n);
    int lwork = 0;
    TERNQ_CUDA_CHECK(cusolverDnDpotri_bufferSize(solver_.get(), CUBLAS_FILL_MODE_LOWER, ni, a, ni, &lwork));
    double* work = scratch(work_, static_cast<std::size_t>(std::max(lwork, 1)));
    int* status = scratch(status_, 2);
    TERNQ_CUDA_CHECK(cusolverDnDpotri(solver_.get(), CUBLAS_FILL_MODE_LOWER, ni, a, ni, work, lwork, status));
    int host_status = 0;
    copy_out(static_cast<const int*>(status), std::span<int>(&host_status, 1));
    return host_status == 0;
  }

  /// `buffer`'s memory, reallocated only when it holds fewer than `count` elements: the block scratch is allocated
  /// once per size, not once per block (an allocation and its free cost more than most of a block's kernels).
  template <class T>
  static T* scratch(device_buffer<T>& buffer, std::size_t count) {
    if (buffer.size() < count) buffer = device_buffer<T>(count);
    return buffer.data();
  }

  /// `host` copied into the front of `buffer` (grown when needed), in stream order; returns the copy. Pageable host
  /// memory: the call returns when the data are staged, so `host` may go.
  template <class T>
  T* copy_in(device_buffer<T>& buffer, std::span<const T> host) {
    T* out = scratch(buffer, host.size());
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(out, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, exec_.stream));
    return out;
  }

  /// The first `host.size()` elements at `device` copied out; waits for the stream.
  template <class T>
  void copy_out(const T* device, std::span<T> host) const {
    TERNQ_CUDA_CHECK(
        cudaMemcpyAsync(host.data(), device, host.size() * sizeof(T), cudaMemcpyDeviceToHost, exec_.stream));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(exec_.stream));
  }

  exec exec_;
  device_scope scope_;
  blas_handle blas_;
  solver_handle solver_;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  device_buffer<float> original_;  // the checked weights, packed row-major
  device_buffer<float> w_;         // working weights, column-major, working positions
  device_buffer<double> gram_;     // the Gram matrix, double, column-major (`set_gram`)
  struct {
    const void* data = nullptr;
    std::size_t cols = 0;
    std::ptrdiff_t row_stride = 0;
    std::ptrdiff_t col_stride = 0;
  } gram_source_;                 // what `gram_` holds
  device_buffer<double> hinv_;    // lower triangle of the inverse Hessian of the remaining positions
  device_buffer<double> factor_;  // the current block's L (P = L L^T)
  device_buffer<float> err_;      // Err = D U^{-1}, column-major rows x g
  device_buffer<double> k_;       // K = Hinv[F, B] U^{-1}, column-major |F| x g
  // scratch, grown as needed (see `scratch`)
  device_buffer<double> work_;                         // cuSOLVER's workspace
  device_buffer<int> status_;                          // cuSOLVER's info, the diagonal check
  device_buffer<double> row_doubles_, norm_, scores_;  // SSR; the rows' output errors
  device_buffer<double> row_weight_error_;
  device_buffer<float> block_, scales_, alpha_, mu_, k_float_, saved_columns_, block_work_, run_err_;
  device_buffer<std::int8_t> codes_, chosen_codes_, run_codes_;
  device_buffer<atq_grid> grids_;
  device_buffer<itf_group_stats> stats_;
  device_buffer<std::size_t> columns_, indices_, order_;
  device_buffer<char> dead_;
  device_buffer<double> metric_, ones_, t_, tc_, saved_rows_;
  device_buffer<unsigned char> fallbacks_;
  std::vector<std::pair<std::size_t, std::size_t>> pending_;  // exchanges not yet applied
  std::size_t pending_first_ = 0;
};

/// `gptq_quantize` on a CUDA device (ALGORITHMS.md §3): the driver's shared logic with `gptq_steps` and the Gram
/// matrix's positive semi-definiteness checked on the device (the CPU's check and messages), for float weights and a
/// float or double Gram matrix. Returns the same `gptq_result` as the CPU's `gptq_quantize` up to the rounding
/// described at `gptq_steps`; an all-zero Gram matrix gets the CPU's data-free answer (computed on the host).
template <class G>
gptq_result gptq_quantize(const exec& e, const matrix_view<const float>& w, const matrix_view<const G>& gram,
                          const gptq& options) {
  const device_scope scope(e.device);
  gptq_steps steps(e);
  return gptq_quantize_with(steps, w, gram, options,
                            [&](const matrix_view<const G>& c, const char* context) { steps.require_psd(c, context); });
}

/// `gptq_quantize` on a device for any adaptable float weights and Gram matrix (Eigen, xtensor, views).
template <class W, class G>
requires(!a_matrix_view<W> || !a_matrix_view<G>) gptq_result
    gptq_quantize(const exec& e, const W& w, const G& gram, const gptq& options) {
  return gptq_quantize(e, detail::float_view(w), as_const_view(gram), options);
}

/// `quantize(cuda::exec{device, stream}, w, gptq{...}, gram)`: the matrix of `cuda::gptq_quantize`, the GPU
/// counterpart of `quantize(cpu_exec, w, gptq{...}, gram)`.
template <class W, class C>
ternary_matrix quantize(const exec& e, const W& w, const gptq& method, const C& gram) {
  return gptq_quantize(e, detail::float_view(w), as_const_view(gram), method).matrix;
}

}  // namespace ternq::cuda
