// SPDX-License-Identifier: MIT
// y = W x and Y = X W^T straight from packed ternary blocks: the public entry points, threads and variant selection.
#pragma once

#include <cstddef>
#include <span>

#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/view.hpp"
#include "ternq/kernels/cpu/activations.hpp"
#include "ternq/kernels/cpu/detail/avx2_2bit.hpp"
#include "ternq/kernels/cpu/detail/avx2_base3.hpp"
#include "ternq/kernels/cpu/detail/avx512_base3.hpp"
#include "ternq/kernels/cpu/detail/avx512_2bit.hpp"
#include "ternq/kernels/cpu/packed_view.hpp"
#include "ternq/kernels/cpu/reference.hpp"

namespace ternq::kernels {

/// How the products read the activations.
enum class activation_precision {
  int8,  ///< quantized to int8 per weight block (as llama.cpp does); exact integer dot products (the fast path)
  f32,   ///< read as floats: no activation rounding (the exactness reference of the int8 path)
};

struct product_options {
  activation_precision activations = activation_precision::int8;
  cpu_exec exec{};
};

/// Rows of `W` per work item. Each row's result is computed the same way in any work item, so the split (and so
/// the thread count) never changes a bit; whole pieces keep the variants' row-blocked loops full.
inline constexpr std::size_t row_piece = 64;

namespace detail {

using int8_rows_fn = void (*)(const packed_view&, const int8_activations&, std::size_t, std::size_t,
                              matrix_view<float>);
using f32_rows_fn = void (*)(const packed_view&, matrix_view<const float>, std::size_t, std::size_t,
                             matrix_view<float>);

/// The row kernels of one (variant, format). A variant without a kernel for a format leaves it null and the
/// portable one runs.
struct row_kernels {
  int8_rows_fn int8 = nullptr;
  f32_rows_fn f32 = nullptr;
};

inline row_kernels select_kernels([[maybe_unused]] simd_level level, [[maybe_unused]] pack::format f) {
  row_kernels k;
#if TERNQ_HAS_AVX2_VARIANT
  if (level == simd_level::avx2) avx2_base3::select(f, k.int8, k.f32);
#endif
#if TERNQ_HAS_AVX512_VARIANT
  if (level == simd_level::avx512) avx512_base3::select(f, k.int8, k.f32);
#endif
#if TERNQ_HAS_AVX512_VARIANT
  if (level == simd_level::avx512) {
    using pack::format;
    switch (f) {
      case format::tq2_0: k = {&avx512_2bit::rows_int8<format::tq2_0>, &avx512_2bit::rows_f32<format::tq2_0>}; break;
      case format::q2_0: k = {&avx512_2bit::rows_int8<format::q2_0>, &avx512_2bit::rows_f32<format::q2_0>}; break;
      case format::pq2_0: k = {&avx512_2bit::rows_int8<format::pq2_0>, &avx512_2bit::rows_f32<format::pq2_0>}; break;
      case format::i2_s: k = {&avx512_2bit::rows_int8<format::i2_s>, &avx512_2bit::rows_f32<format::i2_s>}; break;
      default: break;
    }
  }
#endif
#if TERNQ_HAS_AVX2_VARIANT
  if (level == simd_level::avx2) {
    using pack::format;
    switch (f) {
      case format::tq2_0: k = {&avx2_2bit::rows_int8<format::tq2_0>, &avx2_2bit::rows_f32<format::tq2_0>}; break;
      case format::q2_0: k = {&avx2_2bit::rows_int8<format::q2_0>, &avx2_2bit::rows_f32<format::q2_0>}; break;
      case format::pq2_0: k = {&avx2_2bit::rows_int8<format::pq2_0>, &avx2_2bit::rows_f32<format::pq2_0>}; break;
      case format::i2_s: k = {&avx2_2bit::rows_int8<format::i2_s>, &avx2_2bit::rows_f32<format::i2_s>}; break;
      default: break;
    }
  }
#endif
  if (k.int8 == nullptr) k.int8 = &rows_int8_portable;
  if (k.f32 == nullptr) k.f32 = &rows_f32_portable;
  return k;
}

inline void require_product_shapes(const packed_view& w, std::size_t n, std::size_t cols, matrix_view<float> y) {
  if (cols != w.cols) {
    fail(errc::shape_mismatch, "packed product: activations of ", cols, " features for a ", w.rows, "x", w.cols, " ",
         pack::name_of(w.format), " matrix");
  }
  if (y.rows() != n || y.cols() != w.rows) {
    fail(errc::shape_mismatch, "packed product: the output is ", y.rows(), "x", y.cols(), ", expected ", n, "x",
         w.rows);
  }
}

template <class Rows>
void run_pieces(const packed_view& w, const cpu_exec& exec, Rows&& rows) {
  const std::size_t pieces = (w.rows + row_piece - 1) / row_piece;
  parallel_for(pieces, exec.thread_count(), [&](std::size_t p0, std::size_t p1) {
    rows(p0 * row_piece, std::min(w.rows, p1 * row_piece));
  });
}

}  // namespace detail

/// `Y = X W^T` on activations already quantized (`x.block` must be `w`'s block): `y(t, r)` = row `r` of `w` times
/// vector `t`, `y` being `x.n x w.rows`. Quantize once, multiply by every matrix that reads the same input (q, k, v).
inline void matmul(const packed_view& w, const int8_activations& x, matrix_view<float> y, const cpu_exec& exec = {}) {
  detail::require_product_shapes(w, x.n, x.cols, y);
  if (x.block != w.block_elements()) {
    fail(errc::shape_mismatch, "packed product: activations quantized in blocks of ", x.block, " for ",
         pack::name_of(w.format), "'s blocks of ", w.block_elements());
  }
  const detail::row_kernels k = detail::select_kernels(exec.simd_variant(), w.format);
  detail::run_pieces(w, exec, [&](std::size_t r0, std::size_t r1) { k.int8(w, x, r0, r1, y); });
}

/// `Y = X W^T`: `x` is `n x w.cols` (rows contiguous, one activation vector each), `y` is `n x w.rows`. Batches of
/// a few vectors (prefill) decode each weight block once for all of them.
inline void matmul(const packed_view& w, matrix_view<const float> x, matrix_view<float> y,
                   const product_options& options = {}) {
  detail::require_product_shapes(w, x.rows(), x.cols(), y);
  if (!x.rows_contiguous()) {
    fail(errc::invalid_argument, "packed product: the activation rows are not contiguous (column stride ",
         x.col_stride(), ")");
  }
  if (options.activations == activation_precision::int8) {
    int8_activations q;
    quantize_activations(x, w.block_elements(), q, options.exec.simd_variant());
    matmul(w, q, y, options.exec);
    return;
  }
  const detail::row_kernels k = detail::select_kernels(options.exec.simd_variant(), w.format);
  detail::run_pieces(w, options.exec, [&](std::size_t r0, std::size_t r1) { k.f32(w, x, r0, r1, y); });
}

/// `y = W x` for one vector (decode).
inline void matvec(const packed_view& w, std::span<const float> x, std::span<float> y,
                   const product_options& options = {}) {
  matmul(w, row_major(x.data(), 1, x.size(), x.size()), row_major(y.data(), 1, y.size(), y.size()), options);
}

}  // namespace ternq::kernels
