// SPDX-License-Identifier: MIT
// The CUDA execution policy (device and stream) and device memory owned by RAII.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"

namespace ternq::cuda {

/// Where a CUDA specialization runs: `device` (an ordinal) and `stream` (null: the legacy default stream). Calls
/// taking it enqueue their work on `stream` and return when the results are in the caller's memory (host
/// outputs) or enqueued (device outputs); they restore the caller's current device.
struct exec {
  int device = 0;
  cudaStream_t stream = nullptr;
};

/// Makes `device` current for a scope and restores the previous one.
class device_scope {
 public:
  explicit device_scope(int device) {
    TERNQ_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) TERNQ_CUDA_CHECK(cudaSetDevice(device));
  }
  ~device_scope() { (void)cudaSetDevice(previous_); }
  device_scope(const device_scope&) = delete;
  device_scope& operator=(const device_scope&) = delete;

 private:
  int previous_ = 0;
};

/// `count` elements of `T` in device memory.
template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t count) : count_(count) {
    if (count != 0) TERNQ_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), count * sizeof(T)));
  }
  /// A device copy of `host`.
  static device_buffer from_host(std::span<const T> host, const exec& e = {}) {
    device_buffer out(host.size());
    out.upload(host, e);
    return out;
  }
  ~device_buffer() {
    if (data_ != nullptr) (void)cudaFree(data_);
  }
  device_buffer(device_buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  device_buffer& operator=(device_buffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;

  [[nodiscard]] T* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return count_; }

  /// Copies `host` (exactly `size()` elements) in, synchronously with respect to the host.
  void upload(std::span<const T> host, const exec& e = {}) {
    if (host.size() != count_) {
      fail(errc::shape_mismatch, "device_buffer::upload: ", host.size(), " elements into a buffer of ", count_);
    }
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice, e.stream));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));
  }
  /// Copies `host` into the buffer's first `host.size()` elements (at most `size()`), synchronously.
  void upload_first(std::span<const T> host, const exec& e = {}) {
    if (host.size() > count_) {
      fail(errc::shape_mismatch, "device_buffer::upload_first: ", host.size(), " elements into a buffer of ", count_);
    }
    if (host.empty()) return;
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, e.stream));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));
  }
  /// Copies the buffer's first `host.size()` elements (at most `size()`) out into `host`, synchronously.
  void download_first(std::span<T> host, const exec& e = {}) const {
    if (host.size() > count_) {
      fail(errc::shape_mismatch, "device_buffer::download_first: ", host.size(), " elements from a buffer of ", count_);
    }
    if (host.empty()) return;
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(host.data(), data_, host.size() * sizeof(T), cudaMemcpyDeviceToHost, e.stream));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));
  }
  /// Copies the buffer out into `host` (exactly `size()` elements).
  void download(std::span<T> host, const exec& e = {}) const {
    if (host.size() != count_) {
      fail(errc::shape_mismatch, "device_buffer::download: ", count_, " elements into ", host.size());
    }
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost, e.stream));
    TERNQ_CUDA_CHECK(cudaStreamSynchronize(e.stream));
  }

 private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

namespace detail {

/// Threads per block of an elementwise kernel (one element per thread, grid-striding beyond the grid).
inline constexpr unsigned elementwise_threads = 256;

/// Blocks for an elementwise kernel over `count` elements: enough to fill any current device, grid-striding
/// beyond.
inline unsigned elementwise_blocks(std::size_t count) {
  return static_cast<unsigned>(
      std::clamp<std::size_t>((count + elementwise_threads - 1) / elementwise_threads, 1, 4096));
}

/// A square host matrix staged on the device in its own element type, and the layout it has there.
template <class G>
struct staged_square {
  device_buffer<G> values;
  bool column_major = false;  ///< else row-major
};

/// The `m x m` host matrix `c` on the device: a packed row- or column-major matrix goes up as it is (no host copy),
/// any other layout is packed row-major on the host first. Returns once the copy is done.
template <class G>
staged_square<G> stage_square(const matrix_view<const G>& c, const exec& e) {
  const std::size_t m = c.cols();
  const bool row_major = c.col_stride() == 1 && c.row_stride() == static_cast<std::ptrdiff_t>(m);
  const bool column_major = c.row_stride() == 1 && c.col_stride() == static_cast<std::ptrdiff_t>(m);
  if (row_major || column_major) {
    return {device_buffer<G>::from_host(std::span<const G>(c.data(), m * m), e), column_major && !row_major};
  }
  std::vector<G> packed(m * m);
  for (std::size_t p = 0; p < m; ++p) {
    for (std::size_t q = 0; q < m; ++q) packed[p * m + q] = c(p, q);
  }
  return {device_buffer<G>::from_host(packed, e), false};
}

}  // namespace detail

}  // namespace ternq::cuda
