// SPDX-License-Identifier: MIT
// CAT-Q on the GPU: the whole calibration step on the device (the grids of the logits, the soft step fused with the
// residual, the loss's products by cuBLAS, the gradient per group by a team, Adam elementwise), run by the CPU's own
// loop bookkeeping (`catq_loop`) and ended by the CPU's choice, with the losses in double on the device. The losses
// are the Gram loss `tr(E C E^T)` and the mean of MSE or Huber over the output residual of raw activations
// (cuda/catq_losses.cuh); with `refit_scales`, the closed-form scales are solved on the device too.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "ternq/core/adapt.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/cuda/catq_kernels.cuh"
#include "ternq/cuda/catq_losses.cuh"
#include "ternq/cuda/error.cuh"
#include "ternq/cuda/exec.cuh"
#include "ternq/cuda/team.cuh"
#include "ternq/optim/adam.hpp"
#include "ternq/quant/catq/activation_rho.hpp"
#include "ternq/quant/catq/grid.hpp"
#include "ternq/quant/catq/loop.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/options.hpp"
#include "ternq/quant/catq/prescale.hpp"
#include "ternq/quant/catq/soft_step.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq::cuda {

/// CAT-Q's calibration on one device with the loss `Loss` (`detail::catq_gram_loss_device` or
/// `detail::catq_activation_loss_device`), one step at a time: the counterpart of the CPU's `catq_calibrator`, with
/// the same loop (`catq_loop`: the schedule, keep-best, the early stop, progress and the monitor) and the same
/// report. Everything a step touches stays on the device; each step brings back the loss (one double, and the hard
/// loss on evaluation steps).
///
/// Against the CPU: the priors are the CPU's (measured on the host), the hard codes of given logits are the CPU's,
/// and the final choice is the CPU's, made on losses in double computed on the device. The soft step runs on the
/// device's `tanhf` and the sums run in other orders, so the loss curve agrees to rounding, which Adam can amplify
/// over many steps. Every call makes `exec.device` current for its duration; besides, the calibrator keeps it
/// current on the thread that made it while it lives (its buffers are freed there when it is destroyed).
template <class Loss>
class basic_catq_calibrator {
 public:
  /// `w` (`n x m`, float, finite) is checked with the CPU's messages first, then the loss is made by
  /// `make_loss(rows, cols)` (which checks its own data), then everything is copied to the device.
  template <class MakeLoss>
  basic_catq_calibrator(const exec& e, const matrix_view<const float>& w, const catq& options, std::string_view context,
                        MakeLoss&& make_loss)
      : exec_(e),
        scope_(e.device),
        loop_(options, context),
        rows_(w.rows()),
        cols_(w.cols()),
        host_w_(detail::packed_checked_weights(w, std::string(context).c_str())),  // the CPU's require_weights
        loss_(std::forward<MakeLoss>(make_loss)(rows_, cols_)) {
    mod_ = catq_modulation<float>(cpu_exec{}, weights(), options.group_size, options.priors);
    const std::size_t groups = mod_.groups();
    w_ = device_buffer<float>::from_host(host_w_, e);
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
    adam_options_ = adam_options_of(options);
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
    residual(k, plan.phase.hard);
    loss_.enqueue(residual_.data(), product_.data(), true);
    launch_gradient(k, plan.phase.hard);  // queued before the loss comes back, so the device stays busy
    pass.loss = loss_.fetch();
    if (plan.evaluate) {
      if (plan.phase.hard) {
        pass.hard_loss = pass.loss;
      } else {
        residual(terms(catq_phase::hard_step()), true);
        loss_.enqueue(residual_.data(), product_.data(), false);
        pass.hard_loss = loss_.fetch();
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
  /// whichever has the smaller loss in double (`detail::catq_choose`, as the CPU chooses). With `refit_scales` (and
  /// a loss that has them), the chosen codes then take each row's closed-form scales, solved on the device and kept
  /// where they lower the loss in the same measure, as the CPU's calibrator keeps them.
  catq_result finish() {
    const device_scope scope(exec_.device);
    update_grids();
    residual(terms(catq_phase::hard_step()), true);
    loss_.enqueue(residual_.data(), product_.data(), false);
    if (loop_.offer(loop_.steps_done(), loss_.fetch())) keep_best();
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
    if (loop_.options().refit_scales && loss_.has_closed_form_scales()) {
      ternary_matrix refit = out.matrix;
      const std::size_t rows = loss_.refit(refit, host_w_);
      const double e_refit = rows == 0 ? report.learned_error : deployed_error(refit);
      if (rows != 0 && e_refit < report.learned_error) {
        out.matrix = std::move(refit);
        report.final_error = e_refit;
        report.refit_rows = rows;
      }
    }
    out.report = report;
    return out;
  }

  /// The loss in double, computed on the device, of a symmetric ternary matrix `q` of the calibrated shape (the
  /// measure the final choice compares: the CPU's `Loss::exact_error` to rounding).
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
    detail::deployed_residual_kernel<<<detail::elementwise_blocks(e.size()), detail::elementwise_threads, 0,
                                       exec_.stream>>>(shape(q.layout()), codes.data(), scales.data(), e.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
    return loss_.deployed(e.data());
  }

 private:
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

  /// `residual_ = W - alpha f` at the phase.
  void residual(const ternq::detail::sharpness_terms<float>& k, bool hard) {
    detail::catq_residual_kernel<<<detail::elementwise_blocks(residual_.size()), detail::elementwise_threads, 0,
                                   exec_.stream>>>(shape(mod_.layout()), grids_.data(), k, hard, residual_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
  }

  void launch_gradient(const ternq::detail::sharpness_terms<float>& k, bool hard) {
    detail::catq_gradient_kernel<<<detail::team_blocks(grids_.size()), detail::team_block_threads, 0, exec_.stream>>>(
        shape(mod_.layout()), grids_.data(), k, hard, product_.data(), loss_.gradient_scale(), logits_.data(),
        alpha0_.data(), delta0_.data(), grad_.data());
    TERNQ_CUDA_CHECK(cudaGetLastError());
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
  Loss loss_;
  catq_modulation<float> mod_;
  device_buffer<float> w_, mu0_, alpha0_, delta0_, logits_, best_logits_, adam_m_, adam_v_, grad_;
  device_buffer<catq_grid<float>> grids_;
  device_buffer<float> residual_, product_;
  optim::adam_options adam_options_{};
  std::size_t adam_steps_ = 0;
};

/// CAT-Q's calibration with the Gram loss `tr(E C E^T)` on one device (`cuda::catq_calibrate` runs it to the end):
/// the counterpart of the CPU's `catq_calibrator<float, gram_loss<float>>`.
class catq_calibrator : public basic_catq_calibrator<detail::catq_gram_loss_device> {
 public:
  /// `w` (`n x m`, float, finite) and the `m x m` Gram matrix `gram` (float or double, positive semi-definite) are
  /// checked with the CPU's messages and copied to the device.
  template <class G>
  catq_calibrator(const exec& e, const matrix_view<const float>& w, const matrix_view<const G>& gram,
                  const catq& options, const catq_device_options& device_options = {},
                  std::string_view context = "cuda::catq_calibrate")
      : basic_catq_calibrator(e, w, options, context, [&](std::size_t rows, std::size_t cols) {
          return detail::catq_gram_loss_device(e, gram, rows, cols, device_options.gemm, std::string(context));
        }) {}
};

/// CAT-Q's calibration on raw activations (MSE or Huber on the output residual) on one device
/// (`cuda::catq_calibrate_activations` runs it to the end): the counterpart of the CPU's
/// `catq_calibrator<float, activation_loss<float>>`.
class catq_activation_calibrator : public basic_catq_calibrator<detail::catq_activation_loss_device> {
 public:
  /// `w` (`n x m`, float, finite) and the activations `x` (`tokens x m`, float or double, finite) are checked with
  /// the CPU's messages and copied to the device (`x` as float, as the CPU's float calibration holds it).
  template <class X>
  catq_activation_calibrator(const exec& e, const matrix_view<const float>& w, const matrix_view<const X>& x,
                             const catq& options, const activation_loss_options& loss = {},
                             const catq_device_options& device_options = {},
                             std::string_view context = "cuda::catq_calibrate_activations")
      : basic_catq_calibrator(e, w, options, context, [&](std::size_t rows, std::size_t cols) {
          return detail::catq_activation_loss_device(e, x, rows, cols, loss, device_options.gemm, std::string(context));
        }) {}
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

/// `catq_calibrate_activations(cpu_exec, w, x, options, loss)` on the device: float weights, float or double
/// activations `x` (`tokens x m`). Weights so small that the CPU prescales them are prescaled alike, with the
/// Huber transition scaled with them (the same problem, as on the CPU).
template <class W, class X>
catq_result catq_calibrate_activations(const exec& e, const W& w, const X& x, const catq& options,
                                       const activation_loss_options& loss = {},
                                       const catq_device_options& device_options = {}) {
  const matrix_view<const float> wv = detail::float_view(w);
  const auto xv = as_const_view(x);
  if (const int k = ternq::detail::catq_prescale_exponent(wv); k != 0) {
    const std::vector<float> scaled = ternq::detail::catq_scaled_copy(wv, k);
    activation_loss_options scaled_loss = loss;
    scaled_loss.huber_delta = std::ldexp(loss.huber_delta, k);
    catq_result r = catq_calibrate_activations(e, row_major(scaled.data(), wv.rows(), wv.cols()), x, options,
                                               scaled_loss, device_options);
    ternq::detail::catq_unscale(r, k);
    return r;
  }
  catq_activation_calibrator calibrator(e, wv, xv, options, loss, device_options);
  while (!calibrator.done()) calibrator.step();
  return calibrator.finish();
}

/// `quantize(cuda::exec{device, stream}, w, catq{...}, gram)`: the matrix of `cuda::catq_calibrate`.
template <class W, class C>
ternary_matrix quantize(const exec& e, const W& w, const catq& method, const C& gram) {
  return catq_calibrate(e, w, gram, method).matrix;
}

}  // namespace ternq::cuda
