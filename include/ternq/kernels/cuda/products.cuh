// SPDX-License-Identifier: MIT
// Y = X W^T on the GPU straight from packed TQ2_0 and Q2_0 blocks (f32 activations): a decode GEMV and a
// small-batch product, one warp per weight row.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/kernels/cpu/packed_view.hpp"
#include "ternq/kernels/cuda/block_math.hpp"

namespace ternq::kernels::cuda {

/// A packed tensor in device memory (`bytes` is a device pointer), as `make_device_view` checks it.
struct device_packed_view {
  pack::format format = pack::format::tq2_0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  const std::uint8_t* bytes = nullptr;
};

/// A device copy of a checked host view (shape, size and scales checked on the host by `make_packed_view`).
struct device_packed_matrix {
  ternq::cuda::device_buffer<std::uint8_t> storage;
  device_packed_view view;
};

inline bool supported_on_device(pack::format f) noexcept {
  return f == pack::format::tq2_0 || f == pack::format::q2_0;
}

inline device_packed_matrix upload(const packed_view& host, const ternq::cuda::exec& e = {}) {
  if (!supported_on_device(host.format)) {
    fail(errc::unsupported, "CUDA packed product: ", pack::name_of(host.format),
         " has no CUDA kernel (TQ2_0 and Q2_0 have)");
  }
  const ternq::cuda::device_scope scope(e.device);
  device_packed_matrix out;
  out.storage = ternq::cuda::device_buffer<std::uint8_t>::from_host(host.bytes, e);
  out.view = {host.format, host.rows, host.cols, out.storage.data()};
  return out;
}

namespace detail {

inline constexpr unsigned warp = 32;
inline constexpr unsigned rows_per_cta = 4;  // one warp per row, four warps a block of threads
inline constexpr unsigned token_tile = 8;    // activation vectors per pass of a small-batch product

__device__ inline float warp_sum(float v) {
  for (unsigned offset = warp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xFFFFFFFFU, v, offset);
  return v;
}

/// TQ2_0 rows: lane `lane` reads code bytes `lane` and `32 + lane` of every block (see `cuda_math::tq2_0_element`),
/// so a warp's activation loads are 32 consecutive floats. `Tile` vectors per pass, from vector `t0`.
template <unsigned Tile>
__global__ void tq2_0_rows(const std::uint8_t* w, std::size_t rows, std::size_t cols, const float* x, std::size_t n,
                           float* y) {
  const std::size_t row = static_cast<std::size_t>(blockIdx.x) * rows_per_cta + threadIdx.x / warp;
  const unsigned lane = threadIdx.x % warp;
  const std::size_t t0 = static_cast<std::size_t>(blockIdx.y) * Tile;
  if (row >= rows) return;
  const std::size_t blocks = cols / cuda_math::tq2_0_elements;
  float acc[Tile] = {};
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint8_t* block = w + (row * blocks + b) * cuda_math::tq2_0_bytes;
    const float d = cuda_math::scale_at(block + 64);
    const std::uint8_t codes[2] = {block[lane], block[32 + lane]};
    float s[Tile] = {};
    for (unsigned h = 0; h < 2; ++h) {
      for (unsigned l = 0; l < 4; ++l) {
        const auto v = static_cast<float>(cuda_math::value_of_field(codes[h], l));
        const std::size_t e = b * cuda_math::tq2_0_elements + cuda_math::tq2_0_element(lane, h, l);
        for (unsigned t = 0; t < Tile; ++t) {
          if (t0 + t < n) s[t] += v * x[(t0 + t) * cols + e];
        }
      }
    }
    for (unsigned t = 0; t < Tile; ++t) acc[t] += d * s[t];
  }
  for (unsigned t = 0; t < Tile; ++t) {
    const float total = warp_sum(acc[t]);
    if (lane == 0 && t0 + t < n) y[(t0 + t) * rows + row] = total;
  }
}

/// Q2_0 rows: each half-warp takes one block at a time (the halves alternate blocks); lane `k` of a half reads
/// code byte `k` and the four activations it covers as one float4.
template <unsigned Tile>
__global__ void q2_0_rows(const std::uint8_t* w, std::size_t rows, std::size_t cols, const float* x, std::size_t n,
                          float* y) {
  const std::size_t row = static_cast<std::size_t>(blockIdx.x) * rows_per_cta + threadIdx.x / warp;
  const unsigned lane = threadIdx.x % warp;
  const unsigned half = lane / 16, k = lane % 16;
  const std::size_t t0 = static_cast<std::size_t>(blockIdx.y) * Tile;
  if (row >= rows) return;
  const std::size_t blocks = cols / cuda_math::q2_0_elements;
  float acc[Tile] = {};
  for (std::size_t b = half; b < blocks; b += 2) {
    const std::uint8_t* block = w + (row * blocks + b) * cuda_math::q2_0_bytes;
    const float d = cuda_math::scale_at(block);
    const std::uint8_t byte = block[2 + k];
    const std::size_t e = b * cuda_math::q2_0_elements + cuda_math::q2_0_element(k, 0);
    for (unsigned t = 0; t < Tile; ++t) {
      if (t0 + t >= n) break;
      const float4 a = *reinterpret_cast<const float4*>(x + (t0 + t) * cols + e);
      const float s = static_cast<float>(cuda_math::value_of_field(byte, 0)) * a.x +
                      static_cast<float>(cuda_math::value_of_field(byte, 1)) * a.y +
                      static_cast<float>(cuda_math::value_of_field(byte, 2)) * a.z +
                      static_cast<float>(cuda_math::value_of_field(byte, 3)) * a.w;
      acc[t] += d * s;
    }
  }
  for (unsigned t = 0; t < Tile; ++t) {
    const float total = warp_sum(acc[t]);
    if (lane == 0 && t0 + t < n) y[(t0 + t) * rows + row] = total;
  }
}

template <unsigned Tile>
void launch(const device_packed_view& w, const float* x, std::size_t n, float* y, cudaStream_t stream) {
  const dim3 threads(warp * rows_per_cta);
  const dim3 grid(static_cast<unsigned>((w.rows + rows_per_cta - 1) / rows_per_cta),
                  static_cast<unsigned>((n + Tile - 1) / Tile));
  if (w.format == pack::format::tq2_0) {
    tq2_0_rows<Tile><<<grid, threads, 0, stream>>>(w.bytes, w.rows, w.cols, x, n, y);
  } else {
    q2_0_rows<Tile><<<grid, threads, 0, stream>>>(w.bytes, w.rows, w.cols, x, n, y);
  }
  TERNQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail

/// `Y = X W^T` with device pointers: `x` is `n x w.cols` row-major (16-byte aligned, as cudaMalloc gives), `y`
/// is `n x w.rows` row-major. Enqueued on `e.stream`; not synchronized. The f32 path: each lane sums its elements
/// in float, a block's sum is scaled by its fp16 scale, and the warp adds its lanes' totals; the result is within
/// `kernels::f32_path_bound` of the CPU reference (tested where a GPU is present).
inline void matmul(const device_packed_view& w, const float* x, std::size_t n, float* y,
                   const ternq::cuda::exec& e = {}) {
  if (!supported_on_device(w.format)) {
    fail(errc::unsupported, "CUDA packed product: ", pack::name_of(w.format), " has no CUDA kernel");
  }
  if (n == 0) return;
  if (reinterpret_cast<std::uintptr_t>(x) % 16 != 0) {
    fail(errc::invalid_argument, "CUDA packed product: the activations are not 16-byte aligned");
  }
  const ternq::cuda::device_scope scope(e.device);
  if (n == 1) {
    detail::launch<1>(w, x, n, y, e.stream);
  } else {
    detail::launch<detail::token_tile>(w, x, n, y, e.stream);
  }
}

}  // namespace ternq::kernels::cuda
