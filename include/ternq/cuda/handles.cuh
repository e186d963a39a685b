// SPDX-License-Identifier: MIT
// cuBLAS and cuSOLVER handles bound to a stream, owned by RAII.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "ternq/cuda/error.cuh"

namespace ternq::cuda {

/// A cuBLAS handle bound to a stream, owned by RAII.
class blas_handle {
 public:
  explicit blas_handle(cudaStream_t stream) {
    TERNQ_CUDA_CHECK(cublasCreate(&handle_));
    TERNQ_CUDA_CHECK(cublasSetStream(handle_, stream));
  }
  ~blas_handle() {
    if (handle_ != nullptr) (void)cublasDestroy(handle_);
  }
  blas_handle(const blas_handle&) = delete;
  blas_handle& operator=(const blas_handle&) = delete;
  [[nodiscard]] cublasHandle_t get() const noexcept { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

/// A cuSOLVER dense handle bound to a stream, owned by RAII.
class solver_handle {
 public:
  explicit solver_handle(cudaStream_t stream) {
    TERNQ_CUDA_CHECK(cusolverDnCreate(&handle_));
    TERNQ_CUDA_CHECK(cusolverDnSetStream(handle_, stream));
  }
  ~solver_handle() {
    if (handle_ != nullptr) (void)cusolverDnDestroy(handle_);
  }
  solver_handle(const solver_handle&) = delete;
  solver_handle& operator=(const solver_handle&) = delete;
  [[nodiscard]] cusolverDnHandle_t get() const noexcept { return handle_; }

 private:
  cusolverDnHandle_t handle_ = nullptr;
};

}  // namespace ternq::cuda
