// SPDX-License-Identifier: MIT
// Calibration statistics on the GPU: C = sum over batches of X_b^T X_b by cuBLAS SYRK, summed in double on the
// device, with the CPU gram_accumulator's chunking and error bound.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "ternq/core/checks.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/handles.cuh"
#include "ternq/linalg/gram_products.hpp"

namespace ternq::cuda {

namespace detail {

/// `sum += chunk` on the lower triangle (both column-major `m x m`), the chunk widened to double. (Kernels in
/// these headers are templates, so that every translation unit that includes them may define them.)
template <class S>
__global__ void add_lower_kernel(double* sum, const S* chunk, std::size_t m) {
  const std::size_t count = m * m;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t row = k % m, col = k / m;
    if (row >= col) sum[k] += static_cast<double>(chunk[k]);
  }
}

/// The first non-finite element of the row-major `rows x cols` matrix at `x` (rows `ld` apart), as the row-major
/// index `row * cols + col`, into `*first` (left alone if none): an atomic minimum of the indices, so the report
/// names the same element whatever the launch order.
template <class S>
__global__ void first_non_finite_kernel(const S* x, std::size_t rows, std::size_t cols, std::size_t ld,
                                        unsigned long long* first) {
  const std::size_t count = rows * cols;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    if (!isfinite(x[(k / cols) * ld + k % cols])) atomicMin(first, static_cast<unsigned long long>(k));
  }
}

/// `to[k] = from[k]` widened to double (exact).
template <class S>
__global__ void widen_kernel(double* to, const S* from, std::size_t count) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    to[k] = static_cast<double>(from[k]);
  }
}

}  // namespace detail

/// `gram_accumulator` on a CUDA device: accumulates `C = sum_t x_t x_t^T` over activation batches, and the number
/// of tokens. Batches come from the host (`add`, any adaptable matrix, checked finite there) or already on the
/// device (`add_device`, row-major `tokens x features` floats, checked finite on the device). A refused batch adds
/// nothing.
///
/// Numerics, as the CPU's (`gram_products`): with `float_chunks` each chunk of at most 1024 tokens is one cuBLAS
/// SSYRK in float, added to the double sum on the device, so the CPU's bound
/// `|dC_ij| <= 1025 * 2^-24 sqrt(C_ii C_jj)` holds (it does not depend on the order of a chunk's float sums, which
/// cuBLAS chooses); with `double_products` every product and sum is in double (DSYRK into the sum). Only the lower
/// triangle is accumulated; `matrix()` mirrors it.
class gram_accumulator {
 public:
  explicit gram_accumulator(std::size_t features, gram_products products = gram_products::float_chunks,
                            const exec& e = {})
      : exec_(e), products_(products), features_(features) {
    if (features == 0) fail(errc::empty_matrix, "cuda::gram_accumulator: zero input features");
    if (features > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
      fail(errc::unsupported, "cuda::gram_accumulator: ", features, " features exceed cuBLAS's int dimensions");
    }
    const device_scope scope(e.device);  // the handle and the buffers belong to e.device
    blas_.emplace(e.stream);
    sum_ = device_buffer<double>(features * features);
    chunk_ = device_buffer<float>(chunk_tokens * features);
    if (products_ == gram_products::float_chunks) product_ = device_buffer<float>(features * features);
    if (products_ == gram_products::double_products) chunk_double_ = device_buffer<double>(chunk_tokens * features);
    first_bad_ = device_buffer<unsigned long long>(1);
    reset();
  }

  /// Adds a host batch laid out `tokens x features` (one row per token), any storage order.
  template <class M>
  void add(const M& batch) {
    const auto x = as_const_view(batch);
    constexpr const char* context = "cuda::gram_accumulator::add";
    require_columns(x.cols(), context);
    require_finite(x, context, "activations");
    const device_scope scope(exec_.device);
    for (std::size_t t0 = 0; t0 < x.rows(); t0 += chunk_tokens) {
      const std::size_t n = std::min(chunk_tokens, x.rows() - t0);
      if (products_ == gram_products::float_chunks) {
        upload_chunk(x, t0, n, host_float_, chunk_);
        add_float_chunk(chunk_.data(), n);
      } else {
        upload_chunk(x, t0, n, host_double_, chunk_double_);
        add_double_chunk(chunk_double_.data(), n);
      }
    }
    tokens_ += x.rows();
  }

  /// Adds `tokens` rows of `features` floats at `x` in device memory (row-major, rows `ld` floats apart), enqueued
  /// on the accumulator's stream. A non-finite activation is reported with its place, as `add` does.
  void add_device(const float* x, std::size_t tokens, std::size_t ld) {
    constexpr const char* context = "cuda::gram_accumulator::add_device";
    if (ld < features_) fail(errc::shape_mismatch, context, ": row stride ", ld, " below ", features_, " features");
    if (tokens == 0) return;
    const device_scope scope(exec_.device);
    require_finite_on_device(x, tokens, ld, context);  // the whole batch first: a refused batch adds nothing
    for (std::size_t t0 = 0; t0 < tokens; t0 += chunk_tokens) {
      const std::size_t n = std::min(chunk_tokens, tokens - t0);
      // a packed copy of the chunk, SYRK's contiguous operand
      TERNQ_CUDA_CHECK(cudaMemcpy2DAsync(chunk_.data(), features_ * sizeof(float), x + t0 * ld, ld * sizeof(float),
                                         features_ * sizeof(float), n, cudaMemcpyDeviceToDevice, exec_.stream));
      if (products_ == gram_products::float_chunks) {
        add_float_chunk(chunk_.data(), n);
      } else {
        widen_chunk(n);
        add_double_chunk(chunk_double_.data(), n);
      }
    }
    tokens_ += tokens;
  }

  [[nodiscard]] std::size_t features() const noexcept { return features_; }
  [[nodiscard]] std::uint64_t tokens() const noexcept { return tokens_; }

  /// The lower triangle of `C` in device memory, column-major `features x features` (the strictly upper part is
  /// not maintained). Valid until the accumulator changes; ordered after the work enqueued on its stream.
  [[nodiscard]] const double* device_lower() const noexcept { return sum_.data(); }

  /// The full symmetric `C` on the host, `features x features` (symmetric, so row- and column-major alike; waits
  /// for the stream).
  [[nodiscard]] std::vector<double> matrix() const {
    const device_scope scope(exec_.device);
    std::vector<double> c(features_ * features_);
    sum_.download(c, exec_);
    for (std::size_t j = 0; j < features_; ++j) {
      for (std::size_t i = j + 1; i < features_; ++i) c[i * features_ + j] = c[j * features_ + i];
    }
    return c;
  }

  void reset() {
    const device_scope scope(exec_.device);
    TERNQ_CUDA_CHECK(cudaMemsetAsync(sum_.data(), 0, features_ * features_ * sizeof(double), exec_.stream));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(exec_.stream));
    tokens_ = 0;
  }

 private:
  /// Tokens per chunk, as the CPU accumulator: the float sums of `float_chunks` run over at most this many tokens.
  static constexpr std::size_t chunk_tokens = 1024;

  void require_columns(std::size_t cols, const char* context) const {
    if (cols != features_) fail(errc::shape_mismatch, context, ": batch has ", cols, " features, expected ", features_);
  }

  /// Tokens `[t0, t0 + n)` of the host batch `x`, converted to `S` in `host` (packed, row-major), copied into `to`.
  template <class S, class T>
  void upload_chunk(const matrix_view<const T>& x, std::size_t t0, std::size_t n, std::vector<S>& host,
                    device_buffer<S>& to) {
    host.resize(n * features_);
    for (std::size_t t = 0; t < n; ++t) {
      for (std::size_t j = 0; j < features_; ++j) host[t * features_ + j] = static_cast<S>(x(t0 + t, j));
    }
    TERNQ_CUDA_CHECK(
        cudaMemcpyAsync(to.data(), host.data(), host.size() * sizeof(S), cudaMemcpyHostToDevice, exec_.stream));
    // `host` is reused for the next chunk: wait until the copy has read it.
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(exec_.stream));
  }

  /// Fails naming the first non-finite activation of the `tokens`-row batch at `x` (rows `ld` floats apart).
  void require_finite_on_device(const float* x, std::size_t tokens, std::size_t ld, const char* context) {
    const unsigned long long none = ~0ULL;
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(first_bad_.data(), &none, sizeof(none), cudaMemcpyHostToDevice, exec_.stream));
    detail::first_non_finite_kernel<<<detail::elementwise_blocks(tokens * features_), detail::elementwise_threads, 0,
                                      exec_.stream>>>(x, tokens, features_, ld, first_bad_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    unsigned long long first = none;
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(&first, first_bad_.data(), sizeof(first), cudaMemcpyDeviceToHost, exec_.stream));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(exec_.stream));
    if (first != none) {
      const std::size_t row = first / features_, col = first % features_;
      float value = 0.0F;
      TERNQ_CUDA_CHECK(cudaMemcpy(&value, x + row * ld + col, sizeof(value), cudaMemcpyDeviceToHost));
      fail_non_finite(value, row, col, context, "activations");
    }
  }

  /// `C += X_c^T X_c` for a float chunk: SSYRK into the float product, then widened into the double sum. The
  /// row-major `n x m` chunk is the column-major `m x n` matrix `A = X_c^T`, so the product is `A A^T`.
  void add_float_chunk(const float* chunk, std::size_t n) {
    const float one = 1.0F, zero = 0.0F;
    const int m = static_cast<int>(features_);
    TERNQ_CUDA_CHECK(cublasSsyrk(blas_->get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, m, static_cast<int>(n), &one, chunk,
                                 m, &zero, product_.data(), m));
    const std::size_t count = features_ * features_;
    detail::add_lower_kernel<<<detail::elementwise_blocks(count), detail::elementwise_threads, 0, exec_.stream>>>(
        sum_.data(), product_.data(), features_);
    TERNQ_CUDA_CHECK(cudaGetLastError());
  }

  /// `C += X_c^T X_c` in double (DSYRK into the sum).
  void add_double_chunk(const double* chunk, std::size_t n) {
    const double one = 1.0;
    const int m = static_cast<int>(features_);
    TERNQ_CUDA_CHECK(cublasDsyrk(blas_->get(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, m, static_cast<int>(n), &one, chunk,
                                 m, &one, sum_.data(), m));
  }

  /// The float chunk in `chunk_` widened into `chunk_double_` (exact).
  void widen_chunk(std::size_t n) {
    const std::size_t count = n * features_;
    detail::widen_kernel<<<detail::elementwise_blocks(count), detail::elementwise_threads, 0, exec_.stream>>>(
        chunk_double_.data(), chunk_.data(), count);
    TERNQ_CUDA_CHECK(cudaGetLastError());
  }

  exec exec_;
  std::optional<blas_handle> blas_;
  gram_products products_;
  std::size_t features_;
  std::uint64_t tokens_ = 0;
  device_buffer<double> sum_;
  device_buffer<float> chunk_;
  device_buffer<float> product_;
  device_buffer<double> chunk_double_;
  device_buffer<unsigned long long> first_bad_;
  std::vector<float> host_float_;
  std::vector<double> host_double_;
};

}  // namespace ternq::cuda
