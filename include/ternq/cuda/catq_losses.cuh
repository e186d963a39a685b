// SPDX-License-Identifier: MIT
// The losses of a CAT-Q calibration on the device: the Gram loss `tr(E C E^T)` and the mean of `rho` over the output
// residual `R = E X^T` of raw activations (the counterparts of the CPU's `gram_loss` and `activation_loss`). Each
// gives its value for a float residual with the product the gradient kernel reads, its value for a deployed matrix's
// residual in double (the final choice's measure), and its closed-form scales where it has them.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "ternq/core/checks.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/grid_precision.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/handles.cuh"
#include "ternq/cuda/itf_aga.cuh"
#include "ternq/cuda/scale_refit.cuh"
#include "ternq/linalg/gram_blocks.hpp"
#include "ternq/linalg/gram_psd.hpp"
#include "ternq/quant/catq/activation_rho.hpp"

namespace ternq::cuda {

/// The arithmetic of the step's products (`E C`, or `E X^T` and `rho'(R) X`: the hot loop).
enum class catq_gemm {
  fp32,  ///< SGEMM in float, as the CPU computes it (the default)
  tf32,  ///< tensor cores with TF32 inputs (10-bit mantissa) and float sums: several times faster, a noisier gradient
};

/// The device's own options of a CAT-Q calibration.
struct catq_device_options {
  catq_gemm gemm = catq_gemm::fp32;
};

namespace detail {

inline constexpr unsigned reduce_threads = 256;

/// The `reduce_threads` values `v` of the block summed in a fixed tree, returned to every thread. Every thread of the
/// block calls it; `partial` is the block's shared scratch, free again on return.
__device__ inline double block_tree_sum(double v, double* partial) {
  partial[threadIdx.x] = v;
  __syncthreads();
  for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
    if (threadIdx.x < h) partial[threadIdx.x] += partial[threadIdx.x + h];
    __syncthreads();
  }
  const double sum = partial[0];
  __syncthreads();
  return sum;
}

/// Row `i`'s term `j` of a dot product: `a_ij b_ij` in double.
template <class A, class B>
struct dot_term {
  const A* a;
  const B* b;
  std::size_t cols;
  __device__ double operator()(std::size_t i, std::size_t j) const {
    return static_cast<double>(a[i * cols + j]) * static_cast<double>(b[i * cols + j]);
  }
};

/// Row `i`'s term `j` of an activation loss: `rho(r_ij)` in double.
template <class R>
struct rho_term {
  const R* r;
  std::size_t cols;
  activation_loss_kind kind;
  double delta;
  __device__ double operator()(std::size_t i, std::size_t j) const {
    return ternq::detail::activation_rho(kind, delta, static_cast<double>(r[i * cols + j]));
  }
};

/// Per row, `sum_j term(i, j)` in double in a fixed order (each thread's strided terms, then a fixed tree), so the
/// same inputs give the same bits on every run.
template <class Term>
__global__ void row_sums_kernel(Term term, std::size_t rows, std::size_t cols, double* out) {
  __shared__ double partial[reduce_threads];
  for (std::size_t i = blockIdx.x; i < rows; i += gridDim.x) {
    double v = 0.0;
    for (std::size_t j = threadIdx.x; j < cols; j += blockDim.x) v += term(i, j);
    const double sum = block_tree_sum(v, partial);
    if (threadIdx.x == 0) out[i] = sum;
  }
}

/// `sum x[0, n)` in double by one block, in a fixed order.
template <class Unused = void>
__global__ void ordered_sum_kernel(const double* x, std::size_t n, double* out) {
  __shared__ double partial[reduce_threads];
  double v = 0.0;
  for (std::size_t j = threadIdx.x; j < n; j += blockDim.x) v += x[j];
  const double sum = block_tree_sum(v, partial);
  if (threadIdx.x == 0) *out = sum;
}

/// `r = rho'(r)` for every element, in float (the CPU's `activation_loss::to_derivative`).
template <class Unused = void>
__global__ void rho_derivative_kernel(float* r, std::size_t count, activation_loss_kind kind, float delta) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    r[k] = ternq::detail::activation_rho_derivative(kind, delta, r[k]);
  }
}

/// Sums over `rows x cols` matrices in double in a fixed order (per row, then over the rows): the same inputs give
/// the same bits on every run. `enqueue_*` queues a sum on the stream; `fetch` waits for the last one and brings it
/// back, so a caller can queue more work in between.
class ordered_sums {
 public:
  ordered_sums(const exec& e, std::size_t rows) : exec_(e), row_sums_(rows), total_(1) {}

  /// Queues `sum a .* b`.
  template <class A, class B>
  void enqueue_dot(const A* a, const B* b, std::size_t cols) const {
    enqueue(dot_term<A, B>{a, b, cols}, cols);
  }

  /// Queues `sum rho(r)`.
  template <class R>
  void enqueue_rho(const R* r, std::size_t cols, activation_loss_kind kind, double delta) const {
    enqueue(rho_term<R>{r, cols, kind, delta}, cols);
  }

  /// The last queued sum, once the stream has reached it.
  [[nodiscard]] double fetch() const {
    double out = 0.0;
    total_.download(std::span<double>(&out, 1), exec_);
    return out;
  }

 private:
  template <class Term>
  void enqueue(const Term& term, std::size_t cols) const {
    const std::size_t rows = row_sums_.size();
    const auto blocks = static_cast<unsigned>(rows < 65535 ? rows : 65535);
    row_sums_kernel<Term><<<blocks, reduce_threads, 0, exec_.stream>>>(term, rows, cols, row_sums_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    ordered_sum_kernel<<<1, reduce_threads, 0, exec_.stream>>>(row_sums_.data(), rows, total_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
  }

  exec exec_;
  device_buffer<double> row_sums_, total_;
};

/// Refuses sizes beyond cuBLAS's `int` dimensions.
inline void require_blas_sizes(std::size_t rows, std::size_t cols, std::size_t tokens, const std::string& context) {
  constexpr auto limit = static_cast<std::size_t>(std::numeric_limits<int>::max());
  if (rows > limit || cols > limit || tokens > limit) {
    fail(errc::unsupported, context, ": a ", rows, "x", cols, " calibration over ", tokens,
         " tokens exceeds cuBLAS's int sizes");
  }
}

inline void set_gemm_math(const blas_handle& blas, catq_gemm gemm) {
  TERNQ_CUDA_CHECK(
      cublasSetMathMode(blas.get(), gemm == catq_gemm::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

/// The Gram loss `L = tr(E C E^T)` (`gram_loss` on the CPU): `C` checked with the CPU's messages (a square `m x m`
/// matrix, positive semi-definite as `linalg::require_psd` asks, factored by cuSOLVER) and kept on the device in
/// double (the deployed error, the refit) and float (the step's SGEMM).
class catq_gram_loss_device {
 public:
  template <class G>
  catq_gram_loss_device(const exec& e, const matrix_view<const G>& gram, std::size_t rows, std::size_t cols,
                        catq_gemm gemm, const std::string& context)
      : exec_(e), rows_(rows), cols_(cols), sums_(e, rows) {
    require_gram_for(gram, cols, context);
    require_blas_sizes(rows, cols, 0, context);
    const group_layout whole(cols, cols, context);
    const linalg::gram_blocks c = linalg::pack_gram_blocks(gram, whole);  // C itself, in double, column-major
    require_psd(c, whole, context.c_str());
    gram_ = device_buffer<double>::from_host(c.packed, e);
    std::vector<float> gram_float(c.packed.size());
    for (std::size_t q = 0; q < gram_float.size(); ++q) gram_float[q] = static_cast<float>(c.packed[q]);
    gram_float_ = device_buffer<float>::from_host(gram_float, e);
    set_gemm_math(blas_, gemm);
  }

  /// `dL/dWhat = gradient_scale() * product`.
  [[nodiscard]] static float gradient_scale() noexcept { return -2.0F; }

  /// Queues `L` of the float residual `e` (`rows x cols`, row-major), leaving `E C` in `product` (which the loss
  /// needs in any case, so `for_gradient` changes nothing here); `fetch` brings `L` back.
  void enqueue(const float* e, float* product, bool /*for_gradient*/) const {
    const float one = 1.0F, zero = 0.0F;
    const int m = static_cast<int>(cols_), n = static_cast<int>(rows_);
    // Row-major E is column-major E^T, and the packed C is column-major, so the transposed operand reads C^T:
    // (E C)^T = C^T E^T. C is symmetric only to the tolerance `require_gram_for` allows, so the transpose is taken
    // as the CPU's `E C` takes it.
    TERNQ_CUDA_CHECK(cublasSgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, m, &one, gram_float_.data(), m, e, m,
                                 &zero, product, m));
    sums_.enqueue_dot(e, static_cast<const float*>(product), cols_);
  }
  [[nodiscard]] double fetch() const { return sums_.fetch(); }

  /// `L` of a deployed matrix's residual `e` (double), in double: the CPU's `output_error` to rounding.
  double deployed(const double* e) const {
    device_buffer<double> ec(rows_ * cols_);
    const double one = 1.0, zero = 0.0;
    const int m = static_cast<int>(cols_), n = static_cast<int>(rows_);
    TERNQ_CUDA_CHECK(
        cublasDgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, m, &one, gram_.data(), m, e, m, &zero, ec.data(), m));
    sums_.enqueue_dot(e, static_cast<const double*>(ec.data()), cols_);
    return sums_.fetch();
  }

  [[nodiscard]] static bool has_closed_form_scales() noexcept { return true; }

  /// Each row's closed-form scales of `q` (no permutation) for the weights `w` (packed row-major) under `C`, which
  /// is already on the device in the form the refit reads; returns the rows changed.
  std::size_t refit(ternary_matrix& q, std::span<const float> w) const {
    return refit_scales_with_device_gram(exec_, q, w, gram_.data(), grid_precision::fp32).rows_changed;
  }

 private:
  void require_psd(const linalg::gram_blocks& c, const group_layout& whole, const char* context) const {
    // The whole matrix as one block: `linalg::require_psd`'s check, factored by cuSOLVER, with its messages.
    const linalg::shifted_gram_blocks shifted = linalg::shift_for_psd_check(c, whole);
    const std::vector<int> info = factor_shifted_blocks(exec_, shifted, c, whole);
    if (shifted.hollow[0] != 0) linalg::fail_zero_trace_gram(context, "gram matrix");
    if (info[0] != 0) {
      linalg::fail_not_psd_gram(context, "gram matrix", shifted.traces[0], static_cast<double>(whole.cols()));
    }
  }

  exec exec_;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  blas_handle blas_{exec_.stream};
  ordered_sums sums_;
  device_buffer<double> gram_;
  device_buffer<float> gram_float_;
};

/// The loss on raw activations `X` (`tokens x cols`), `L = mean rho(R)` over the `rows x tokens` output residual
/// `R = E X^T` (`activation_loss` on the CPU): `X` checked with the CPU's messages and kept on the device in float
/// (the step's two SGEMMs, as the CPU converts it to the compute type) and in double (the deployed error, the
/// refit's `C = X^T X`).
class catq_activation_loss_device {
 public:
  template <class X>
  catq_activation_loss_device(const exec& e, const matrix_view<const X>& x, std::size_t rows, std::size_t cols,
                              const activation_loss_options& options, catq_gemm gemm, const std::string& context)
      : exec_(e), options_(options), rows_(rows), cols_(cols), tokens_(x.rows()), sums_(e, rows) {
    if (x.cols() != cols) {
      fail(errc::shape_mismatch, context, ": activations have ", x.cols(), " features but the weights have ", cols,
           " columns");
    }
    require_nonempty(x, context, "activations");
    require_finite(x, context, "activations");
    require_blas_sizes(rows, cols, tokens_, context);
    if (!(std::isfinite(options.huber_delta) && options.huber_delta > 0.0)) {
      fail(errc::invalid_argument, context, ": huber_delta must be finite and > 0 (got ", options.huber_delta, ")");
    }
    std::vector<float> xf(tokens_ * cols_);
    std::vector<double> xd(tokens_ * cols_);
    for (std::size_t t = 0; t < tokens_; ++t) {
      for (std::size_t j = 0; j < cols_; ++j) {
        xf[t * cols_ + j] = static_cast<float>(x(t, j));
        xd[t * cols_ + j] = static_cast<double>(xf[t * cols_ + j]);  // the CPU's `x_.cast<double>()` of its float copy
      }
    }
    x_ = device_buffer<float>::from_host(xf, e);
    x_double_ = device_buffer<double>::from_host(xd, e);
    residual_ = device_buffer<float>(rows_ * tokens_);
    scale_ = 1.0 / (static_cast<double>(rows_) * static_cast<double>(tokens_));
    set_gemm_math(blas_, gemm);
  }

  /// `dL/dWhat = gradient_scale() * product`, the CPU's `-scale` in float.
  [[nodiscard]] float gradient_scale() const noexcept { return static_cast<float>(-scale_); }

  /// Queues `L` of the float residual `e` (`rows x cols`, row-major) and, with `for_gradient`, `rho'(R) X` into
  /// `product`; `fetch` brings `L` back.
  void enqueue(const float* e, float* product, bool for_gradient) const {
    const float one = 1.0F, zero = 0.0F;
    const int m = static_cast<int>(cols_), n = static_cast<int>(rows_), t = static_cast<int>(tokens_);
    // Row-major `R` (rows x tokens) is column-major R^T = X E^T: X from the row-major X (column-major X^T,
    // transposed), E^T from the row-major E.
    TERNQ_CUDA_CHECK(cublasSgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, t, n, m, &one, x_.data(), m, e, m, &zero,
                                 residual_.data(), t));
    sums_.enqueue_rho(static_cast<const float*>(residual_.data()), tokens_, options_.kind, options_.huber_delta);
    if (!for_gradient) return;
    rho_derivative_kernel<<<elementwise_blocks(residual_.size()), elementwise_threads, 0, exec_.stream>>>(
        residual_.data(), residual_.size(), options_.kind, static_cast<float>(options_.huber_delta));
    TERNQ_CUDA_CHECK(cudaGetLastError());
    // Row-major `rho'(R) X` (rows x cols) is column-major X^T rho'(R)^T.
    TERNQ_CUDA_CHECK(cublasSgemm(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, n, t, &one, x_.data(), m, residual_.data(),
                                 t, &zero, product, m));
  }
  [[nodiscard]] double fetch() const { return scale_ * sums_.fetch(); }

  /// `L` of a deployed matrix's residual `e` (double), in double: the CPU's `activation_loss::exact_error` to
  /// rounding.
  double deployed(const double* e) const {
    device_buffer<double> r(rows_ * tokens_);
    const double one = 1.0, zero = 0.0;
    const int m = static_cast<int>(cols_), n = static_cast<int>(rows_), t = static_cast<int>(tokens_);
    TERNQ_CUDA_CHECK(cublasDgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, t, n, m, &one, x_double_.data(), m, e, m, &zero,
                                 r.data(), t));
    sums_.enqueue_rho(static_cast<const double*>(r.data()), tokens_, options_.kind, options_.huber_delta);
    return scale_ * sums_.fetch();
  }

  /// Only the mean squared loss has closed-form scales (`L = E_x / (rows tokens)` with `C = X^T X`).
  [[nodiscard]] bool has_closed_form_scales() const noexcept {
    return options_.kind == activation_loss_kind::mean_squared;
  }

  /// Each row's closed-form scales of `q` (no permutation) under `C = X^T X` in double (one DGEMM); returns the rows
  /// changed.
  std::size_t refit(ternary_matrix& q, std::span<const float> w) const {
    device_buffer<double> c(cols_ * cols_);
    const double one = 1.0, zero = 0.0;
    const int m = static_cast<int>(cols_), t = static_cast<int>(tokens_);
    // Column-major C = X^T X from the column-major X^T (`cols x tokens`).
    TERNQ_CUDA_CHECK(cublasDgemm(blas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, m, m, t, &one, x_double_.data(), m,
                                 x_double_.data(), m, &zero, c.data(), m));
    return refit_scales_with_device_gram(exec_, q, w, c.data(), grid_precision::fp32).rows_changed;
  }

 private:
  exec exec_;
  activation_loss_options options_;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::size_t tokens_ = 0;
  double scale_ = 1.0;
  blas_handle blas_{exec_.stream};
  ordered_sums sums_;
  device_buffer<float> x_, residual_;
  device_buffer<double> x_double_;
};

}  // namespace detail
}  // namespace ternq::cuda
