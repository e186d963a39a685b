// SPDX-License-Identifier: MIT
// The kernels of the GPTQ driver's device steps (ternq/cuda/gptq.cuh): the Gram matrix's upload and the damped
// Hessian built from it, the positive semi-definiteness check's shifted matrix, SSR's scores, the saved-and-placed
// exchanges, the block as rows, the AGA metric, and GPTQ's inner loop.
#pragma once

#include <cstddef>
#include <cstdint>

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

/// The lower triangle of `linalg::shift_for_psd_check`'s matrix for the whole `c` as one block: `C + shift I`, or the
/// identity (`identity`: an all-zero `C`, which passes).
template <class Unused = void>
__global__ void psd_shift_kernel(const double* c, std::size_t m, double shift, bool identity, double* s) {
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < m * m;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t p = k % m;
    const std::size_t q = k / m;
    if (p < q) continue;
    s[k] = identity ? static_cast<double>(p == q) : c[k] + (p == q ? shift : 0.0);
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

/// GPTQ's inner loop, one thread per row (ALGORITHMS.md §3; `cpu_gptq_steps::inner_loop`): for each column `j` of
/// the block in order, the nearest level of the row's stored grid, `e = (w_j - q) / U_jj`, and the later columns of
/// the block absorb `e U[j, j']` (products rounded before they are subtracted, as the CPU's code without
/// contraction). The CPU applies the later columns of a 32-column panel by one GEMM, so the two agree to rounding.
/// The row's weight error adds its squares in the CPU's four lanes (`account_weight_error`).
template <class Unused = void>
__global__ void gptq_inner_loop_kernel(inner_loop_args a) {
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.rows;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float alpha = a.alpha[i];
    const float mu = a.mu[i];
    float* x = a.w + a.first * a.rows + i;  // column j of the block at x[j * rows]
    const std::size_t s = a.size;
    constexpr std::size_t lanes = 4;
    const std::size_t laned = s / lanes * lanes;  // the CPU's lanes take whole groups of four, the rest goes to lane 0
    double squares[lanes] = {};
    double error = 0.0;
    for (std::size_t j = 0; j < s; ++j) {
      const float d = static_cast<float>(a.factor[j * s + j]);
      const float xj = x[j * a.rows];
      const float centred = xj - mu;
      const float half = alpha * 0.5F;
      const int code = alpha > 0.0F ? static_cast<int>(centred >= half) - static_cast<int>(centred <= -half) : 0;
      const float value = alpha * static_cast<float>(code) + mu;  // exact product: the same with or without contraction
      const float e = (xj - value) / d;
      a.err[j * a.rows + i] = e;
      const double* u = a.factor + j * s;  // U[j, k] = L[k, j]
      for (std::size_t k = j + 1; k < s; ++k) x[k * a.rows] = x[k * a.rows] - __fmul_rn(e, static_cast<float>(u[k]));
      a.codes[i * s + j] = static_cast<std::int8_t>(code);
      error = error + __dmul_rn(static_cast<double>(e), static_cast<double>(e));
      const double dw = static_cast<double>(a.original[i * a.cols + a.columns[j]]) - static_cast<double>(value);
      const std::size_t lane = j < laned ? j % lanes : 0;
      squares[lane] = squares[lane] + __dmul_rn(dw, dw);
    }
    a.output_error[i] = error;
    a.weight_error[i] = (squares[0] + squares[1]) + (squares[2] + squares[3]);
  }
}

/// Blocks for a kernel with one thread per item.
inline unsigned blocks_for(std::size_t items) { return elementwise_blocks(items); }

}  // namespace detail

}  // namespace ternq::cuda
