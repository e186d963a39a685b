// SPDX-License-Identifier: MIT
// CAT-Q on the GPU with the Gram loss: the whole calibration step on the device (the grids of the logits, the soft
// step fused with the residual, E C by one cuBLAS SGEMM, the gradient per group by a team, Adam elementwise), run by
// the CPU's own loop bookkeeping (`catq_loop`) and ended by the CPU's choice, with the losses in double on the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "ternq/core/adapt.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/handles.cuh"
#include "ternq/cuda/itf_aga.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/linalg/gram_blocks.hpp"
#include "ternq/linalg/gram_psd.hpp"
#include "ternq/optim/adam.hpp"
#include "ternq/quant/catq/grid.hpp"
#include "ternq/quant/catq/loop.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/options.hpp"
#include "ternq/quant/catq/prescale.hpp"
#include "ternq/quant/catq/soft_step.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq::cuda {

/// The arithmetic of the step's product `E C` (the hot loop: `2 n m^2` flops).
enum class catq_gemm {
  fp32,  ///< SGEMM in float, as the CPU computes it (the default)
  tf32,  ///< tensor cores with TF32 inputs (10-bit mantissa) and float sums: several times faster, a noisier gradient
};

/// The device's own options of a CAT-Q calibration.
struct catq_device_options {
  catq_gemm gemm = catq_gemm::fp32;
};

namespace detail {

/// The grid of every (row, group) at the logits `[b_mu | b_alpha | b_Delta]`, by the CPU's `catq_grid_of`.
template <class Unused = void>
__global__ void catq_grids_kernel(const float* logits, const float* mu0, const float* alpha0, const float* delta0,
                                  std::size_t groups, catq_grid<float>* grids) {
  for (std::size_t g = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    grids[g] = catq_grid_of(mu0[g], alpha0[g], delta0[g], logits[g], logits[groups + g], logits[2 * groups + g]);
  }
}

/// Where a CAT-Q kernel reads: the weights (row-major, packed), their groups and the grids of the current logits.
struct catq_shape {
  const float* w;
  std::size_t rows;
  std::size_t cols;
  std::size_t group_size;
  std::size_t groups_per_row;
};

/// `f`, `df/dz` and `df/dDelta` of weight `x` under `grid` (the hard step, with zero derivatives, when `hard` or
/// at infinite sharpness): the CPU's `soft_step_from_tanh` on the device's `tanhf`.
__device__ inline soft_step<float> catq_step_at(float x, const catq_grid<float>& grid,
                                                const ternq::detail::sharpness_terms<float>& k, bool hard, float& z) {
  soft_step<float> out;
  z = grid.proxy(x);
  if (hard || k.infinite) {
    out.value = static_cast<float>(hard_ternarize(z, grid.delta));
    return out;
  }
  const float ta = tanhf(k.s * (z - grid.delta));
  const float tb = tanhf(k.s * (z + grid.delta));
  ternq::detail::soft_step_from_tanh(z, grid.delta, ta, tb, k, out.value, out.d_z, out.d_delta);
  return out;
}

/// The residual `E = W - alpha f(z)` of every weight (row-major, as `W`).
template <class Unused = void>
__global__ void catq_residual_kernel(catq_shape w, const catq_grid<float>* grids,
                                     ternq::detail::sharpness_terms<float> k, bool hard, float* e) {
  const std::size_t count = w.rows * w.cols;
  for (std::size_t idx = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = idx / w.cols;
    const std::size_t j = idx % w.cols;
    const catq_grid<float> grid = grids[i * w.groups_per_row + j / w.group_size];
    float z = 0.0F;
    const soft_step<float> f = catq_step_at(w.w[idx], grid, k, hard, z);
    e[idx] = w.w[idx] - grid.alpha * f.value;
  }
}

/// The gradient with respect to every logit, one team per (row, group): with `G = -2 E C` (from `ec = E C`),
/// `dL/dalpha = sum G (f - z f_z)`, `dL/dmu = -sum G f_z`, `dL/dDelta = alpha sum G f_D` (only `dL/dalpha = sum G f`
/// in the hard phase), chained through the sigmoid parameterizations as `catq_objective::backward` does.
template <class Unused = void>
__global__ void catq_gradient_kernel(catq_shape w, const catq_grid<float>* grids,
                                     ternq::detail::sharpness_terms<float> k, bool hard, const float* ec,
                                     const float* logits, const float* alpha0, const float* delta0, float* grad) {
  const team_place team = this_team();
  const std::size_t groups = w.rows * w.groups_per_row;
  for (std::size_t group = team.first; group < groups; group += team.stride) {
    const std::size_t row = group / w.groups_per_row;
    const std::size_t begin = (group % w.groups_per_row) * w.group_size;
    const std::size_t n = begin + w.group_size <= w.cols ? w.group_size : w.cols - begin;
    const catq_grid<float> grid = grids[group];
    const float* x = w.w + row * w.cols + begin;
    const float* p = ec + row * w.cols + begin;
    float d_alpha = 0.0F, g_fz = 0.0F, g_fd = 0.0F;
    for (std::size_t j = team.lane; j < n; j += team_size) {
      float z = 0.0F;
      const soft_step<float> f = catq_step_at(x[j], grid, k, hard, z);
      const float g = -2.0F * p[j];
      d_alpha += g * (hard ? f.value : f.value - z * f.d_z);  // z may be infinite under an absurd alpha
      g_fz += g * f.d_z;
      g_fd += g * f.d_delta;
    }
    d_alpha = team_tree_sum(d_alpha, team.mask);
    g_fz = team_tree_sum(g_fz, team.mask);
    g_fd = team_tree_sum(g_fd, team.mask);
    if (team.lane == 0) {
      const float d_mu = hard ? 0.0F : -g_fz;
      const float d_delta = hard ? 0.0F : grid.alpha * g_fd;
      grad[group] = d_mu * alpha0[group] * modulation_slope(logits[group]);
      grad[groups + group] = d_alpha * alpha0[group] * modulation_slope(logits[groups + group]);
      grad[2 * groups + group] = d_delta * delta0[group] * modulation_slope(logits[2 * groups + group]);
    }
  }
}

inline constexpr unsigned reduce_threads = 256;

/// Per row, `sum_j a_ij b_ij` in double in a fixed order (each thread's strided terms, then a fixed tree), so the
/// same inputs give the same bits on every run.
template <class A, class B>
__global__ void row_dot_kernel(const A* a, const B* b, std::size_t rows, std::size_t cols, double* out) {
  __shared__ double partial[reduce_threads];
  for (std::size_t i = blockIdx.x; i < rows; i += gridDim.x) {
    double v = 0.0;
    for (std::size_t j = threadIdx.x; j < cols; j += blockDim.x) {
      v += static_cast<double>(a[i * cols + j]) * static_cast<double>(b[i * cols + j]);
    }
    partial[threadIdx.x] = v;
    __syncthreads();
    for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
      if (threadIdx.x < h) partial[threadIdx.x] += partial[threadIdx.x + h];
      __syncthreads();
    }
    if (threadIdx.x == 0) out[i] = partial[0];
    __syncthreads();
  }
}

/// `sum x[0, n)` in double by one block, in a fixed order.
template <class Unused = void>
__global__ void ordered_sum_kernel(const double* x, std::size_t n, double* out) {
  __shared__ double partial[reduce_threads];
  double v = 0.0;
  for (std::size_t j = threadIdx.x; j < n; j += blockDim.x) v += x[j];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
    if (threadIdx.x < h) partial[threadIdx.x] += partial[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = partial[0];
}

/// One Adam step on every logit: the CPU's `optim::adam_update`.
template <class Unused = void>
__global__ void adam_kernel(float* params, float* m, float* v, const float* grads, std::size_t count,
                            optim::adam_step_terms<float> k) {
  for (std::size_t j = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < count;
       j += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    optim::adam_update(params[j], m[j], v[j], grads[j], k);
  }
}

/// `W - Q` in double for a symmetric ternary matrix in stored order: `w - scale code`, as `ternary_matrix::value`.
template <class Unused = void>
__global__ void deployed_residual_kernel(catq_shape w, const std::int8_t* codes, const float* scales, double* e) {
  const std::size_t count = w.rows * w.cols;
  for (std::size_t idx = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < count;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = idx / w.cols;
    const std::size_t j = idx % w.cols;
    const float q = scales[i * w.groups_per_row + j / w.group_size] * static_cast<float>(codes[idx]);
    e[idx] = static_cast<double>(w.w[idx]) - static_cast<double>(q);
  }
}

}  // namespace detail

/// CAT-Q's calibration with the Gram loss `tr(E C E^T)` on one device, one step at a time (`catq_calibrate` runs it
/// to the end): the counterpart of `catq_calibrator<float, gram_loss<float>>`, with the same loop (`catq_loop`: the
/// schedule, keep-best, the early stop, progress and the monitor) and the same report. Everything a step touches
/// stays on the device; each step brings back the loss (one double, and the hard loss on evaluation steps).
///
/// Against the CPU: the priors are the CPU's (measured on the host), the hard codes of given logits are the CPU's,
/// and the final choice is the CPU's, made on losses in double computed on the device. The soft step runs on the
/// device's `tanhf` and the sums run in other orders, so the loss curve agrees to rounding, which Adam can amplify
/// over many steps. Every call makes `exec.device` current for its duration; besides, the calibrator keeps it
/// current on the thread that made it while it lives (its buffers are freed there when it is destroyed).
class catq_calibrator {
 public:
  /// `w` (`n x m`, float, finite) and the `m x m` Gram matrix `gram` (float or double, positive semi-definite) are
  /// checked with the CPU's messages and copied to the device. `refit_scales` is refused: the closed-form scales
  /// are solved on the host (`refit_scales_to_output`), not yet on the device.
  template <class G>
  catq_calibrator(const exec& e, const matrix_view<const float>& w, const matrix_view<const G>& gram,
                  const catq& options, const catq_device_options& device_options = {},
                  std::string_view context = "cuda::catq_calibrate")
      : exec_(e), scope_(e.device), loop_(options, context), rows_(w.rows()), cols_(w.cols()) {
    if (options.refit_scales) {
      fail(errc::unsupported, context,
           ": refit_scales runs on the host only; calibrate with refit_scales = false and call "
           "refit_scales_to_output on the result");
    }
    const std::string ctx(context);
    host_w_ = detail::packed_checked_weights(w, ctx.c_str());  // the checks of the CPU's require_weights
    require_gram_for(gram, w.cols(), ctx);
    const group_layout whole(w.cols(), w.cols(), ctx);
    const linalg::gram_blocks c = linalg::pack_gram_blocks(gram, whole);  // C itself, in double
    require_psd(c, whole, ctx.c_str());

    mod_ = catq_modulation<float>(cpu_exec{}, weights(), options.group_size, options.priors);
    const std::size_t groups = mod_.groups();
    w_ = device_buffer<float>::from_host(host_w_, e);
    gram_ = device_buffer<double>::from_host(c.packed, e);
    std::vector<float> gram_float(c.packed.size());
    for (std::size_t q = 0; q < gram_float.size(); ++q) gram_float[q] = static_cast<float>(c.packed[q]);
    gram_float_ = device_buffer<float>::from_host(gram_float, e);
    mu0_ = device_buffer<float>::from_host(mod_.mu0_values(), e);
    alpha0_ = device_buffer<float>::from_host(mod_.alpha0_values(), e);
    delta0_ = device_buffer<float>::from_host(mod_.delta0_values(), e);
    logits_ = device_buffer<float>::from_host(mod_.logits(), e);
    best_logits_ = device_buffer<float>::from_host(mod_.logits(), e);
    const std::vector<float> zeros(3 * groups, 0.0F);
    adam_m_ = device_buffer<float>::from_host(zeros, e);
    adam_v_ = device_buffer<float>::from_host(zeros, e);
    grad_ = device_buffer<float>(3 * groups);
    grids_ = device_buffer<catq_grid<float>>(groups);
    residual_ = device_buffer<float>(rows_ * cols_);
    product_ = device_buffer<float>(rows_ * cols_);
    row_sums_ = device_buffer<double>(rows_);
    total_ = device_buffer<double>(1);
    adam_options_ = adam_options_of(options);
    TERNQ_CUDA_CHECK(cublasSetMathMode(
        blas_.get(), device_options.gemm == catq_gemm::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }

  [[nodiscard]] bool done() const noexcept { return loop_.done(); }
  [[nodiscard]] std::size_t steps_done() const noexcept { return loop_.steps_done(); }
  [[nodiscard]] const catq_report& report() const noexcept { return loop_.report(); }
  [[nodiscard]] catq_phase phase_of(std::size_t step) const noexcept { return loop_.phase_of(step); }
  /// The weights as the calibrator holds them (row-major, on the host).
  [[nodiscard]] matrix_view<const float> weights() const noexcept {
    return {host_w_.data(), rows_, cols_, static_cast<std::ptrdiff_t>(cols_), 1};
  }
  /// The logits now, brought back from the device (`[b_mu | b_alpha | b_Delta]`, as `catq_modulation::logits`).
  [[nodiscard]] std::vector<float> logits() const {
    const device_scope scope(exec_.device);
    std::vector<float> out(logits_.size());
    logits_.download(out, exec_);
    return out;
  }

  /// One calibration step; returns what the monitor is told.
  catq_step_event step() {
    const device_scope scope(exec_.device);  // whatever the caller made current since
    const catq_loop::step_plan plan = loop_.next();
    catq_pass pass;
    update_grids();
    const ternq::detail::sharpness_terms<float> k = terms(plan.phase);
    residual_and_product(k, plan.phase.hard);
    launch_gradient(k, plan.phase.hard);
    pass.loss = residual_dot_product();
    if (plan.evaluate) {
      if (plan.phase.hard) {
        pass.hard_loss = pass.loss;
      } else {
        residual_and_product(terms(catq_phase::hard_step()), true);
        pass.hard_loss = residual_dot_product();
      }
    }
    if (loop_.record(plan, pass)) keep_best();
    const optim::adam_step_terms<float> adam(adam_options_, ++adam_steps_);
    detail::adam_kernel<<<detail::elementwise_blocks(logits_.size()), detail::elementwise_threads, 0, exec_.stream>>>(
        logits_.data(), adam_m_.data(), adam_v_.data(), grad_.data(), logits_.size(), adam);
    TERNQ_CUDA_CHECK(cudaGetLastError());
    return loop_.finish_step(plan, pass);
  }

  /// Evaluates the logits after the last update, then returns the best hard solution seen or the initialization,
  /// whichever has the smaller loss in double (`detail::catq_choose`, as the CPU chooses).
  catq_result finish() {
    const device_scope scope(exec_.device);
    update_grids();
    residual_and_product(terms(catq_phase::hard_step()), true);
    if (loop_.offer(loop_.steps_done(), residual_dot_product())) keep_best();
    catq_modulation<float> init = mod_;
    std::fill(init.logits().begin(), init.logits().end(), 0.0F);
    const cpu_exec host{};
    catq_report& report = loop_.report();
    catq_result out;
    out.matrix = ternq::detail::catq_choose(
        report, catq_hard_matrix(host, weights(), init),
        [&] {
          catq_modulation<float> best = mod_;
          best_logits_.download(best.logits(), exec_);
          return catq_hard_matrix(host, weights(), best);
        },
        [&](const ternary_matrix& q) { return deployed_error(q); });
    out.report = report;
    return out;
  }

  /// `tr((W - Q) C (W - Q)^T)` in double on the device for a symmetric ternary matrix `q` of the calibrated shape
  /// (the loss the final choice compares; the CPU's `output_error` to rounding).
  [[nodiscard]] double deployed_error(const ternary_matrix& q) const {
    if (q.rows() != rows_ || q.cols() != cols_ || q.has_offsets() || q.has_permutation()) {
      fail(errc::shape_mismatch, "cuda::catq_calibrator::deployed_error: a ", q.rows(), "x", q.cols(),
           " matrix (offsets ", q.has_offsets(), ", permutation ", q.has_permutation(), ") for a symmetric ", rows_,
           "x", cols_, " calibration");
    }
    const device_scope scope(exec_.device);
    const auto codes = device_buffer<std::int8_t>::from_host(q.codes(), exec_);
    const auto scales = device_buffer<float>::from_host(q.scales(), exec_);
    device_buffer<double> e(rows_ * cols_);
    device_buffer<double> ec(rows_ * cols_);
    const detail::catq_shape shape = this->shape(q.layout());
    detail::deployed_residual_kernel<<<detail::elementwise_blocks(e.size()), detail::elementwise_threads, 0,
                                       exec_.stream>>>(shape, codes.data(), scales.data(), e.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    const double one = 1.0, zero = 0.0;
    const int m = static_cast<int>(cols_), n = static_cast<int>(rows_);
    // Row-major E is column-major E^T, and the packed C read column-major is C^T: (E C)^T = (C^T)^T E^T. C is
    // symmetric only to the tolerance `require_gram_for` allows, so the transpose is taken as the CPU's `E C` takes it.
    TERNQ_CUDA_CHECK(cublasDgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, m, &one, gram_.data(), m, e.data(), m,
                                 &zero, ec.data(), m));
    return dot(e.data(), ec.data());
  }

 private:
  void require_psd(const linalg::gram_blocks& c, const group_layout& whole, const char* context) const {
    // The whole matrix as one block: `linalg::require_psd`'s check, factored by cuSOLVER, with its messages.
    const linalg::shifted_gram_blocks shifted = linalg::shift_for_psd_check(c, whole);
    const std::vector<int> info = detail::factor_shifted_blocks(exec_, shifted, c, whole);
    if (shifted.hollow[0] != 0) linalg::fail_zero_trace_gram(context, "gram matrix");
    if (info[0] != 0) {
      linalg::fail_not_psd_gram(context, "gram matrix", shifted.traces[0], static_cast<double>(whole.cols()));
    }
  }

  [[nodiscard]] detail::catq_shape shape(const group_layout& layout) const noexcept {
    return {w_.data(), rows_, cols_, layout.group_size(), layout.count()};
  }
  static ternq::detail::sharpness_terms<float> terms(const catq_phase& phase) {
    if (!phase.hard) ternq::detail::check_soft_sharpness(phase.sharpness, "cuda::catq_calibrator");
    return ternq::detail::sharpness_terms<float>(phase.hard ? 0.0F : static_cast<float>(phase.sharpness));
  }

  void update_grids() {
    detail::
        catq_grids_kernel<<<detail::elementwise_blocks(grids_.size()), detail::elementwise_threads, 0, exec_.stream>>>(
            logits_.data(), mu0_.data(), alpha0_.data(), delta0_.data(), grids_.size(), grids_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
  }

  /// `residual_ = W - alpha f` at the phase, then `product_ = residual_ C` by one SGEMM.
  void residual_and_product(const ternq::detail::sharpness_terms<float>& k, bool hard) {
    detail::catq_residual_kernel<<<detail::elementwise_blocks(residual_.size()), detail::elementwise_threads, 0,
                                   exec_.stream>>>(shape(mod_.layout()), grids_.data(), k, hard, residual_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    const float one = 1.0F, zero = 0.0F;
    const int m = static_cast<int>(cols_), n = static_cast<int>(rows_);
    // (E C)^T = (C^T)^T E^T, as in `deployed_error`.
    TERNQ_CUDA_CHECK(cublasSgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, m, &one, gram_float_.data(), m,
                                 residual_.data(), m, &zero, product_.data(), m));
  }

  void launch_gradient(const ternq::detail::sharpness_terms<float>& k, bool hard) {
    detail::catq_gradient_kernel<<<detail::team_blocks(grids_.size()), detail::team_block_threads, 0, exec_.stream>>>(
        shape(mod_.layout()), grids_.data(), k, hard, product_.data(), logits_.data(), alpha0_.data(), delta0_.data(),
        grad_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
  }

  /// `sum residual_ .* product_` in double (`L = tr(E C E^T)`).
  double residual_dot_product() const { return dot(residual_.data(), product_.data()); }

  template <class A, class B>
  double dot(const A* a, const B* b) const {
    const unsigned blocks = static_cast<unsigned>(rows_ < 65535 ? rows_ : 65535);
    detail::row_dot_kernel<A, B>
        <<<blocks, detail::reduce_threads, 0, exec_.stream>>>(a, b, rows_, cols_, row_sums_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    detail::ordered_sum_kernel<<<1, detail::reduce_threads, 0, exec_.stream>>>(row_sums_.data(), rows_, total_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    double total = 0.0;
    total_.download(std::span<double>(&total, 1), exec_);
    return total;
  }

  void keep_best() {
    TERNQ_CUDA_CHECK(cudaMemcpyAsync(best_logits_.data(), logits_.data(), logits_.size() * sizeof(float),
                                     cudaMemcpyDeviceToDevice, exec_.stream));
  }

  exec exec_;
  device_scope scope_;
  catq_loop loop_;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::vector<float> host_w_;
  catq_modulation<float> mod_;
  blas_handle blas_{exec_.stream};
  device_buffer<float> w_, gram_float_, mu0_, alpha0_, delta0_, logits_, best_logits_, adam_m_, adam_v_, grad_;
  device_buffer<double> gram_, row_sums_, total_;
  device_buffer<catq_grid<float>> grids_;
  device_buffer<float> residual_, product_;
  optim::adam_options adam_options_{};
  std::size_t adam_steps_ = 0;
};

/// `catq_calibrate(cpu_exec, w, gram, options)` on the device: float weights (any adaptable matrix), a float or
/// double Gram matrix. Weights so small that the CPU prescales them (`max |w| < 2^-20`) are prescaled alike.
template <class W, class G>
catq_result catq_calibrate(const exec& e, const W& w, const G& gram, const catq& options,
                           const catq_device_options& device_options = {}) {
  const matrix_view<const float> wv = detail::float_view(w);
  const auto gv = as_const_view(gram);
  if (const int k = ternq::detail::catq_prescale_exponent(wv); k != 0) {
    const std::vector<float> scaled = ternq::detail::catq_scaled_copy(wv, k);
    catq_result r = catq_calibrate(e, row_major(scaled.data(), wv.rows(), wv.cols()), gram, options, device_options);
    ternq::detail::catq_unscale(r, k);
    return r;
  }
  catq_calibrator calibrator(e, wv, gv, options, device_options);
  while (!calibrator.done()) calibrator.step();
  return calibrator.finish();
}

/// `quantize(cuda::exec{device, stream}, w, catq{...}, gram)`: the matrix of `cuda::catq_calibrate`.
template <class W, class C>
ternary_matrix quantize(const exec& e, const W& w, const catq& method, const C& gram) {
  return catq_calibrate(e, w, gram, method).matrix;
}

}  // namespace ternq::cuda
