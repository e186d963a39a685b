// SPDX-License-Identifier: MIT
// Device time of repeated launches, for the CUDA benchmarks' runners.
#pragma once

#include <cuda_runtime.h>

#include <ternq/cuda/error.cuh>

namespace ternq::testing::cuda {

/// Seconds per call of `launch` (work enqueued on the default stream) over `repeats` calls, after one warm-up
/// call, from CUDA events.
template <class Launch>
double seconds_per_launch(int repeats, Launch&& launch) {
  launch();
  cudaEvent_t start = nullptr, stop = nullptr;
  TERNQ_CUDA_CHECK(cudaEventCreate(&start));
  TERNQ_CUDA_CHECK(cudaEventCreate(&stop));
  TERNQ_CUDA_CHECK(cudaEventRecord(start));
  for (int i = 0; i < repeats; ++i) launch();
  TERNQ_CUDA_CHECK(cudaEventRecord(stop));
  TERNQ_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0.0F;
  TERNQ_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  return static_cast<double>(ms) * 1e-3 / repeats;
}

}  // namespace ternq::testing::cuda
