// SPDX-License-Identifier: MIT
// The kernels of the GPTQ driver's device steps (ternq/cuda/gptq.cuh): the Gram matrix's upload and the damped
// Hessian built from it, the positive semi-definiteness check's shifted matrix, SSR's scores, the saved-and-placed
// exchanges, the block as rows, the AGA metric, and GPTQ's inner loop.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ternq/cuda/exec.cuh"

namespace ternq::cuda {

namespace detail {

/// Columns per panel of the SSR mean: the CPU's (`cpu_gptq_steps::ssr_scores`), whose panel sums it adds in order.
inline constexpr std::size_t ssr_panel = 256;

/// `w` (column-major, `rows x order.size()`): column `p` is column `order[p]` of the packed row-major `original`.
template <class Unused = void>
__global__ void gather_columns_kernel(const float* original, std::size_t rows, std::size_t cols,
                                      const std::size_t* order, float* w) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < rows * cols;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t p = k / rows;
    const std::size_t i = k % rows;
    w[k] = original[i * cols + order[p]];
  }
}

/// Zeroes the weight columns at the dead positions (`dead[p] != 0`) of the column-major `rows x cols` `w`.
template <class Unused = void>
__global__ void zero_dead_columns_kernel(float* w, std::size_t rows, std::size_t cols, const char* dead) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < rows * cols;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    if (dead[k / rows] != 0) w[k] = 0.0F;
  }
}

/// SSR's mean column of the remaining positions `[first, cols)`, one thread per row: the sums of fixed panels of
/// `ssr_panel` columns added in panel order, divided by their count, as the CPU adds them, bit for bit.
template <class Unused = void>
__global__ void ssr_mean_kernel(const float* w, std::size_t rows, std::size_t first, std::size_t cols, double* wbar) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    double total = 0.0;
    for (std::size_t c0 = first; c0 < cols; c0 += ssr_panel) {
      double part = 0.0;
      for (std::size_t j = c0; j < (c0 + ssr_panel < cols ? c0 + ssr_panel : cols); ++j) {
        part += static_cast<double>(w[j * rows + i]);
      }
      total = c0 == first ? part : total + part;
    }
    wbar[i] = total / static_cast<double>(cols - first);
  }
}

/// `||wbar||` by one block of `ssr_norm_threads` threads (a tree of strided partial sums; the CPU's Eigen norm adds
/// in another order, which only scales every score by the same factor to rounding).
inline constexpr unsigned ssr_norm_threads = 256;

template <class Unused = void>
__global__ void ssr_norm_kernel(const double* wbar, std::size_t rows, double* norm) {
  __shared__ double partial[ssr_norm_threads];
  double s = 0.0;
  for (std::size_t i = threadIdx.x; i < rows; i += ssr_norm_threads) s += __dmul_rn(wbar[i], wbar[i]);
  partial[threadIdx.x] = s;
  __syncthreads();
  for (unsigned half = ssr_norm_threads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *norm = sqrt(partial[0]);
}

/// The cosine of each remaining column with `wbar`, one thread per column, its norm and dot product in the CPU's four
/// double lanes (the products rounded before they are added, as the CPU's code without contraction does).
template <class Unused = void>
__global__ void ssr_scores_kernel(const float* w, std::size_t rows, std::size_t first, std::size_t cols,
                                  const double* wbar, const double* wbar_norm, double* scores) {
  for (std::size_t c = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols - first;
       c += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float* x = w + (first + c) * rows;
    constexpr std::size_t lanes = 4;
    double squares[lanes] = {};
    double dots[lanes] = {};
    std::size_t i = 0;
    for (; i + lanes <= rows; i += lanes) {
      for (std::size_t l = 0; l < lanes; ++l) {
        const auto v = static_cast<double>(x[i + l]);
        squares[l] = squares[l] + __dmul_rn(v, v);
        dots[l] = dots[l] + __dmul_rn(v, wbar[i + l]);
      }
    }
    for (; i < rows; ++i) {
      const auto v = static_cast<double>(x[i]);
      squares[0] = squares[0] + __dmul_rn(v, v);
      dots[0] = dots[0] + __dmul_rn(v, wbar[i]);
    }
    const double norm = sqrt((squares[0] + squares[1]) + (squares[2] + squares[3]));
    const double dot = (dots[0] + dots[1]) + (dots[2] + dots[3]);
    const double wn = *wbar_norm;
    scores[c] = norm > 0.0 && wn > 0.0 ? dot / (norm * wn) : 0.0;
  }
}

/// The weight columns at the moved positions, `saved[k]` = column `moved[k]` (column-major, `rows` long).
template <class Unused = void>
__global__ void save_moved_columns_kernel(const float* w, std::size_t rows, const std::size_t* moved, std::size_t count,
                                          float* saved) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < rows * count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    saved[k] = w[moved[k / rows] * rows + k % rows];
  }
}

/// Column `moved[k]` becomes the saved column `from[k]`.
template <class Unused = void>
__global__ void place_moved_columns_kernel(float* w, std::size_t rows, const std::size_t* moved,
                                           const std::size_t* from, std::size_t count, const float* saved) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < rows * count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    w[moved[k / rows] * rows + k % rows] = saved[from[k / rows] * rows + k % rows];
  }
}

/// The rows of the symmetric matrix `h` (lower triangle, column-major, `m x m`) at the moved positions, restricted to
/// the remaining positions `[first, m)`: `saved[k * r + c] = H(moved[k], first + c)`, `r = m - first`.
template <class Unused = void>
__global__ void save_moved_rows_kernel(const double* h, std::size_t m, std::size_t first, const std::size_t* moved,
                                       std::size_t count, double* saved) {
  const std::size_t r = m - first;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < r * count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t a = moved[k / r];
    const std::size_t b = first + k % r;
    saved[k] = h[(a < b ? a : b) * m + (a < b ? b : a)];
  }
}

/// The permuted `H`: for every moved position `a = moved[k]` and remaining position `b`, `H(a, b) = H_old(source[a],
/// source[b])`, read from the saved row `from[k]` (the row of `source[a]`), written to the lower triangle. An entry
/// whose two positions both moved is written twice with the same value (the old `H` is read from one triangle).
template <class Unused = void>
__global__ void place_moved_rows_kernel(double* h, std::size_t m, std::size_t first, const std::size_t* moved,
                                        const std::size_t* from, const std::size_t* source, std::size_t count,
                                        const double* saved) {
  const std::size_t r = m - first;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < r * count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t a = moved[k / r];
    const std::size_t c = k % r;
    const std::size_t b = first + c;
    h[(a < b ? a : b) * m + (a < b ? b : a)] = saved[from[k / r] * r + (source[c] - first)];
  }
}

/// The packed row-major `m x m` `in` as a double column-major matrix `out` (a transpose through 32x32 tiles, so
/// both sides are read and written along rows of memory). Launch with `gram_tile x 8` threads per block.
inline constexpr unsigned gram_tile = 32;

template <class G>
__global__ void transpose_to_double_kernel(const G* in, std::size_t m, double* out) {
  __shared__ double tile[gram_tile][gram_tile + 1];
  const std::size_t c0 = static_cast<std::size_t>(blockIdx.x) * gram_tile;  // the tile's first column of `in`
  const std::size_t r0 = static_cast<std::size_t>(blockIdx.y) * gram_tile;  // and first row
  for (unsigned r = threadIdx.y; r < gram_tile; r += blockDim.y) {
    if (r0 + r < m && c0 + threadIdx.x < m)
      tile[r][threadIdx.x] = static_cast<double>(in[(r0 + r) * m + c0 + threadIdx.x]);
  }
  __syncthreads();
  for (unsigned r = threadIdx.y; r < gram_tile; r += blockDim.y) {
    // out(p, q) = in(p, q) at q * m + p: here q = c0 + r, p = r0 + threadIdx.x
    if (c0 + r < m && r0 + threadIdx.x < m) out[(c0 + r) * m + r0 + threadIdx.x] = tile[threadIdx.x][r];
  }
}

/// The column-major `in` (`count` elements) in double.
template <class G>
__global__ void to_double_kernel(const G* in, std::size_t count, double* out) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    out[k] = static_cast<double>(in[k]);
  }
}

/// 1 in `flag` when an entry of the lower triangle of the column-major `m x m` `c` is not zero.
template <class Unused = void>
__global__ void lower_nonzero_kernel(const double* c, std::size_t m, int* flag) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < m * m;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    if (k % m >= k / m && c[k] != 0.0) *flag = 1;  // every writer writes the same value
  }
}

/// The lower triangle of `linalg::shift_for_psd_check`'s matrix for the whole non-zero `c` as one block: `C + shift I`
/// (an all-zero `C` passes without a factorization).
template <class Unused = void>
__global__ void psd_shift_kernel(const double* c, std::size_t m, double shift, double* s) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < m * m;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t p = k % m;
    const std::size_t q = k / m;
    if (p < q) continue;
    s[k] = c[k] + (p == q ? shift : 0.0);
  }
}

/// The lower triangle of the damped Hessian in the order `order` (column-major `m x m`), entry for entry as
/// `linalg::build_damped_hessian_into` writes it: `C(order[p], order[q])` read from `C`'s lower triangle, dead rows
/// and columns zero with 1 on the diagonal, `add` on the live diagonal.
template <class Unused = void>
__global__ void damped_hessian_kernel(const double* c, std::size_t m, const std::size_t* order, const char* dead,
                                      double add, double* h) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < m * m;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t p = k % m;
    const std::size_t q = k / m;
    if (p < q) continue;
    const std::size_t op = order[p];
    const std::size_t oq = order[q];
    if (p == q) {
      h[k] = dead[q] != 0 ? 1.0 : c[oq * m + oq] + add;
    } else {
      h[k] = dead[p] != 0 || dead[q] != 0 ? 0.0 : (op >= oq ? c[oq * m + op] : c[op * m + oq]);
    }
  }
}

/// The block `[first, first + s)` of the column-major working weights as a packed row-major `rows x s` matrix, the
/// layout of the per-group kernels (one group per row).
template <class Unused = void>
__global__ void block_rows_kernel(const float* w, std::size_t rows, std::size_t first, std::size_t s, float* out) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < rows * s;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    out[k] = w[(first + k % s) * rows + k / s];
  }
}

/// 1 in `bad` when a diagonal entry of the `s x s` factor is not finite and positive (the CPU's check of `U`).
template <class Unused = void>
__global__ void check_diagonal_kernel(const double* factor, std::size_t s, int* bad) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  int out = 0;
  for (std::size_t j = 0; j < s; ++j) {
    const double d = factor[j * s + j];
    if (!(isfinite(d) && d > 0.0)) out = 1;
  }
  *bad = out;
}

/// The full symmetric metric from the lower triangle of `m` (column-major `s x s`), in place; then its row sums `ones`
/// (`M 1`, each in column order) and their sum `total` (`1^T M 1`), as the CPU's `aga_align_rows` forms them.
template <class Unused = void>
__global__ void symmetric_metric_kernel(double* m, std::size_t s, double* ones, double* total) {
  for (std::size_t k = threadIdx.x; k < s * s; k += blockDim.x) {
    const std::size_t row = k % s;
    const std::size_t col = k / s;
    if (row < col) m[k] = m[row * s + col];
  }
  __syncthreads();
  for (std::size_t a = threadIdx.x; a < s; a += blockDim.x) {
    double sum = 0.0;
    for (std::size_t b = 0; b < s; ++b) sum += m[b * s + a];
    ones[a] = sum;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (std::size_t a = 0; a < s; ++a) sum += ones[a];
    *total = sum;
  }
}

/// The `p x s` double `k` rounded to float (the operand of the SGEMM update, as the CPU's `K^T` in working precision).
template <class Unused = void>
__global__ void to_float_kernel(const double* k, float* out, std::size_t count) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    out[i] = static_cast<float>(k[i]);
  }
}

/// What the inner loop reads and writes (device memory).
struct inner_loop_args {
  float* w;  ///< the working weights, column-major `rows x cols`; the block's columns are consumed
  std::size_t rows;
  std::size_t first;      ///< the block's first working position
  std::size_t size;       ///< its columns
  const double* factor;   ///< `L` (`P = L L^T`, lower, column-major `size x size`): `U = L^T`
  const float* alpha;     ///< each row's stored scale
  const float* mu;        ///< each row's stored offset (0 for a symmetric grid)
  const float* original;  ///< the original weights, packed row-major `rows x cols`
  std::size_t cols;
  const std::size_t* columns;  ///< the block's original columns, in working order
  std::int8_t* codes;          ///< row-major `rows x size`
  float* err;                  ///< `Err = D U^{-1}`, column-major `rows x size`
  double* output_error;        ///< per row, `sum e^2`
  double* weight_error;        ///< per row, `E_w` of its stored values against the original weights
};

/// GPTQ's inner loop on one row (ALGORITHMS.md §3; `cpu_gptq_steps::inner_loop`): for each column `j` of the block
/// in order, the nearest level of the row's stored grid, `e = (w_j - q) / U_jj`, and the later columns of the block
/// absorb `e U[j, j']` (products rounded before they are subtracted, as the CPU's code without contraction). The
/// row's weights are `x[j * x_stride]` (consumed), its errors go to `err[j * err_stride]` and its codes to
/// `codes[j * code_stride]`; returns `sum e^2`.
__device__ inline double inner_loop_row(float* x, std::size_t x_stride, float* err, std::size_t err_stride,
                                        std::int8_t* codes, std::size_t code_stride, const double* factor,
                                        std::size_t s, float alpha, float mu) {
  double error = 0.0;
  for (std::size_t j = 0; j < s; ++j) {
    const float d = static_cast<float>(factor[j * s + j]);
    const float xj = x[j * x_stride];
    const float centred = xj - mu;
    const float half = alpha * 0.5F;
    const int code = alpha > 0.0F ? static_cast<int>(centred >= half) - static_cast<int>(centred <= -half) : 0;
    const float value = alpha * static_cast<float>(code) + mu;  // exact product: the same with or without contraction
    const float e = __fdiv_rn(xj - value, d);                   // IEEE division whatever the consumer's flags
    err[j * err_stride] = e;
    const double* u = factor + j * s;  // U[j, k] = L[k, j]
    for (std::size_t k = j + 1; k < s; ++k) x[k * x_stride] = x[k * x_stride] - __fmul_rn(e, static_cast<float>(u[k]));
    codes[j * code_stride] = static_cast<std::int8_t>(code);
    error = error + __dmul_rn(static_cast<double>(e), static_cast<double>(e));
  }
  return error;
}

/// `E_w` of one row's stored block values `alpha q + mu` against its original weights `original[columns[j]]`, the
/// squares added in the CPU's four lanes (`cpu_gptq_steps::account_weight_error`: whole groups of four, the rest
/// in lane 0).
__device__ inline double weight_error_row(const std::int8_t* codes, std::size_t code_stride, std::size_t s, float alpha,
                                          float mu, const float* original, const std::size_t* columns) {
  constexpr std::size_t lanes = 4;
  const std::size_t laned = s / lanes * lanes;
  double squares[lanes] = {};
  for (std::size_t j = 0; j < s; ++j) {
    const float stored = alpha * static_cast<float>(codes[j * code_stride]) + mu;
    const double d = static_cast<double>(original[columns[j]]) - static_cast<double>(stored);
    const std::size_t lane = j < laned ? j % lanes : 0;
    squares[lane] = squares[lane] + __dmul_rn(d, d);
  }
  return (squares[0] + squares[1]) + (squares[2] + squares[3]);
}

/// The inner loop on every row, one thread per row, with the row's stored grid; the block's columns of the working
/// weights are consumed. The CPU applies the later columns of a 32-column panel by one GEMM
/// (`inner_loop_rows`), so the two agree to rounding.
template <class Unused = void>
__global__ void gptq_inner_loop_kernel(inner_loop_args a) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.rows;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    std::int8_t* codes = a.codes + i * a.size;
    a.output_error[i] = inner_loop_row(a.w + a.first * a.rows + i, a.rows, a.err + i, a.rows, codes, 1, a.factor,
                                       a.size, a.alpha[i], a.mu[i]);
    a.weight_error[i] = weight_error_row(codes, 1, a.size, a.alpha[i], a.mu[i], a.original + i * a.cols, a.columns);
  }
}

/// `round_to(precision, x)` on the device: IEEE binary16 round to nearest even, as the CPU's `fp32_to_fp16_bits`
/// (the same conversion, so the same value for every finite float).
__device__ inline float stored_precision(bool fp16, float x) { return fp16 ? __half2float(__float2half_rn(x)) : x; }

/// What `optimal_aga`'s alternation reads and writes (device memory; the scratch column-major `rows x size`).
struct symmetric_aga_args {
  const float* start;  ///< the block's compensated weights, row-major `rows x size` (the grid fit's input)
  std::size_t rows;
  std::size_t size;
  const double* factor;        ///< `L` of the block's `P`
  const double* metric;        ///< `M`, column-major `size x size`, symmetric
  const double* mw;            ///< row `i`: `(M w_i)^T`, row-major `rows x size`
  const std::int8_t* initial;  ///< the exact optimum's codes, row-major `rows x size`
  const float* alpha0;         ///< the exact optimum's scales
  unsigned refinements;        ///< `optimal_aga::max_iters`
  bool fp16;                   ///< the stored grid's precision
  float* work;                 ///< scratch: one run's weights
  float* run_err;              ///< scratch: one run's errors
  std::int8_t* run_codes;      ///< scratch: one run's codes
  const float* original;       ///< the original weights, packed row-major `rows x cols`
  std::size_t cols;
  const std::size_t* columns;  ///< the block's original columns, in working order
  std::int8_t* codes;          ///< out: the best run's codes, row-major `rows x size` (not `initial`'s memory)
  float* err;                  ///< out: its errors, column-major `rows x size`
  float* alpha;                ///< out: its stored scale
  double* output_error;        ///< out: its `sum e^2`
  double* weight_error;        ///< out: its `E_w`
};

/// `optimal_aga` in the driver, one thread per row, step for step as `cpu_gptq_steps::align_symmetric_row`: the
/// inner loop with the exact optimum's scale, then with the scale `t M w^T / t M t^T` solved for the optimum's codes,
/// then for the codes of the best run so far, up to `refinements` times, keeping the run of least error. The
/// scalar inner loop is the CPU's own order here (no panel GEMM), so only the solve's sums (`M t` in column order,
/// where the CPU's Eigen product may group them otherwise) differ from the CPU's by rounding.
template <class Unused = void>
__global__ void gptq_symmetric_aga_kernel(symmetric_aga_args a) {
  const std::size_t s = a.size;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.rows;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float* start = a.start + i * s;
    const double* mw = a.mw + i * s;
    float* work = a.work + i;  // column j at [j * rows]
    float* run_err = a.run_err + i;
    std::int8_t* run_codes = a.run_codes + i;
    std::int8_t* best_codes = a.codes + i * s;
    float* best_err = a.err + i;
    // The scale minimizing the row's error for codes `c`; `found` false when there is none (the sequence stops).
    struct scale {
      bool found;
      float value;
    };
    const auto solve = [&](const std::int8_t* c) -> scale {
      double den = 0.0;
      for (std::size_t p = 0; p < s; ++p) {
        double mt = 0.0;  // (M t)_p
        for (std::size_t q = 0; q < s; ++q) mt = mt + __dmul_rn(a.metric[q * s + p], static_cast<double>(c[q]));
        den = den + __dmul_rn(static_cast<double>(c[p]), mt);
      }
      double num = 0.0;
      for (std::size_t p = 0; p < s; ++p) num = num + __dmul_rn(mw[p], static_cast<double>(c[p]));
      if (!(den > 0.0) || !(num > 0.0) || !isfinite(num / den)) return {false, 0.0F};
      return {true, stored_precision(a.fp16, static_cast<float>(num / den))};
    };
    double best_error = __longlong_as_double(0x7FF0000000000000LL);  // +Inf, as the CPU starts
    float best_alpha = 0.0F;
    // One run of the inner loop at scale `alpha_f`; kept when its error is below the best so far.
    const auto run = [&](float alpha_f) {
      for (std::size_t j = 0; j < s; ++j) work[j * a.rows] = start[j];
      const double e = inner_loop_row(work, a.rows, run_err, a.rows, run_codes, a.rows, a.factor, s, alpha_f, 0.0F);
      if (!(e < best_error)) return false;
      best_error = e;
      best_alpha = alpha_f;
      for (std::size_t j = 0; j < s; ++j) {
        best_err[j * a.rows] = run_err[j * a.rows];
        best_codes[j] = run_codes[j * a.rows];
      }
      return true;
    };
    run(stored_precision(a.fp16, a.alpha0[i]));
    scale next = solve(a.initial + i * s);
    for (unsigned it = 0; next.found && next.value != best_alpha; ++it) {
      if (!run(next.value) && it > 0) break;
      if (it == a.refinements) break;
      next = solve(best_codes);
    }
    a.alpha[i] = best_alpha;
    a.output_error[i] = best_error;
    a.weight_error[i] = weight_error_row(best_codes, 1, s, best_alpha, 0.0F, a.original + i * a.cols, a.columns);
  }
}

/// Threads per block of the kernels with one thread per row (the inner loops): few, so that a layer's few thousand
/// rows spread over every multiprocessor.
inline constexpr unsigned row_threads = 64;
inline unsigned row_blocks(std::size_t rows) {
  return static_cast<unsigned>(std::max<std::size_t>(1, (rows + row_threads - 1) / row_threads));
}

}  // namespace detail

}  // namespace ternq::cuda
