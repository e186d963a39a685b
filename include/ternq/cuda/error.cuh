// SPDX-License-Identifier: MIT
// CUDA, cuBLAS and cuSOLVER status codes as ternq::error (id `device`), naming the failing call.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "ternq/core/error.hpp"

namespace ternq::cuda {

inline void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    fail(errc::device, call, ": ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
  }
}

inline void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) fail(errc::device, call, ": ", cublasGetStatusName(status));
}

inline void check(cusolverStatus_t status, const char* call) {
  if (status != CUSOLVER_STATUS_SUCCESS) fail(errc::device, call, ": cuSOLVER status ", static_cast<int>(status));
}

}  // namespace ternq::cuda

/// Checks a CUDA runtime, cuBLAS or cuSOLVER call; a failure throws `ternq::error` (`[ternq.device] <call>: ...`).
#define TERNQ_CUDA_CHECK(call) ::ternq::cuda::check((call), #call)
