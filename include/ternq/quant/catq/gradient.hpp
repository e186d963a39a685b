// SPDX-License-Identifier: MIT
// CAT-Q's forward pass, loss and analytic gradient with respect to every logit (ALGORITHMS.md §4).
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/quant/catq/loop.hpp"
#include "ternq/quant/catq/loss.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/soft_ternarize.hpp"
#include "ternq/quant/groupwise.hpp"

namespace ternq {

/// Weight rows per block of the CAT-Q passes. A constant, never derived from
/// the thread count: each block is computed by the same instructions
/// whichever thread runs it, and block sums are added in block order, so
/// results are bit-identical for any number of threads.
inline constexpr std::size_t catq_rows_per_block = 128;

/// The CAT-Q objective on one weight matrix: `L(What(b))` for a loss
/// (`gram_loss`, `activation_loss`) and its analytic gradient with respect to
/// the logits `b = [b_mu | b_alpha | b_Delta]`. With `G = dL/dWhat` from the
/// loss and `z = (w - mu) / alpha`, `f`, `f_z`, `f_D` the soft step and its
/// partials (all zero derivatives in the hard phase), per (row, group):
///
///     dL/dalpha = sum_j G_ij (f_ij - z_ij f_z,ij)      (What = alpha f(z))
///     dL/dmu    = -sum_j G_ij f_z,ij
///     dL/dDelta = alpha sum_j G_ij f_D,ij
///     dL/db_mu  = dL/dmu alpha0 2s(1-s),  dL/db_alpha = dL/dalpha alpha0 2s(1-s),
///     dL/db_Delta = dL/dDelta Delta0 2s(1-s)          (s = sigmoid of that logit)
///
/// Work is split into blocks of `catq_rows_per_block` rows: forward
/// elementwise, the loss's GEMM, backward per group, in parallel over blocks.
template <class S, class Loss>
class catq_objective {
 public:
  /// `w` is copied row-major as `S`.
  template <class T>
  catq_objective(const cpu_exec& exec, const matrix_view<const T>& w, Loss loss)
      : exec_(exec), w_(linalg::map(w).template cast<S>()), loss_(std::move(loss)) {
    if (w.cols() != loss_.cols()) {
      fail(errc::shape_mismatch, "catq_objective: weights have ", w.cols(), " columns but the loss expects ",
           loss_.cols());
    }
  }

  [[nodiscard]] const Loss& loss() const noexcept { return loss_; }
  [[nodiscard]] std::size_t rows() const noexcept { return static_cast<std::size_t>(w_.rows()); }
  [[nodiscard]] std::size_t cols() const noexcept { return static_cast<std::size_t>(w_.cols()); }
  /// The weights as the objective holds them (row-major, type `S`).
  [[nodiscard]] matrix_view<const S> weights() const noexcept {
    return {w_.data(), rows(), cols(), static_cast<std::ptrdiff_t>(cols()), 1};
  }

  /// `L` at `phase`.
  [[nodiscard]] double value(const catq_modulation<S>& mod, catq_phase phase) const {
    return run(mod, phase, {}, false).loss;
  }

  /// `L` at `phase` and `dL/db` written to `grad` (`3 * mod.groups()`
  /// elements, laid out like `mod.logits()`). With `with_hard`, also the loss
  /// of the hard ternarization at the same logits (free in the hard phase,
  /// one more GEMM per block otherwise).
  catq_pass gradient(const catq_modulation<S>& mod, catq_phase phase, std::span<S> grad, bool with_hard = false) const {
    if (grad.size() != mod.logits().size()) {
      fail(errc::shape_mismatch, "catq_objective::gradient: ", grad.size(), " gradient entries for ",
           mod.logits().size(), " logits");
    }
    return run(mod, phase, grad, with_hard);
  }

 private:
  struct worker {
    catq_block<S> e, g, f, f_z, f_d;
    std::vector<S> z;
    typename Loss::workspace ws;
  };
  using array_map = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;

  catq_pass run(const catq_modulation<S>& mod, catq_phase phase, std::span<S> grad, bool with_hard) const {
    if (mod.rows() != rows() || mod.cols() != cols()) {
      fail(errc::shape_mismatch, "catq_objective: modulation is ", mod.rows(), "x", mod.cols(), ", weights are ",
           rows(), "x", cols());
    }
    if (!phase.hard) detail::check_soft_sharpness(phase.sharpness, "catq_objective");
    const std::size_t n = rows();
    const std::size_t blocks = (n + catq_rows_per_block - 1) / catq_rows_per_block;
    std::vector<double> block_loss(blocks, 0.0);
    std::vector<double> block_hard(blocks, 0.0);
    parallel_for(blocks, exec_.thread_count(), [&](std::size_t b0, std::size_t b1) {
      worker wk;
      wk.z.resize(mod.layout().group_size());
      for (std::size_t b = b0; b < b1; ++b) {
        const std::size_t r0 = b * catq_rows_per_block;
        const std::size_t nr = std::min(catq_rows_per_block, n - r0);
        forward(mod, phase, r0, nr, wk);
        if (grad.empty()) {
          block_loss[b] = loss_.value(wk.e, wk.ws);
        } else {
          block_loss[b] = loss_.gradient(wk.e, wk.g, wk.ws);
          backward(mod, phase, r0, nr, wk, grad);
        }
        if (with_hard) {
          if (phase.hard) {
            block_hard[b] = block_loss[b];
          } else {
            forward(mod, catq_phase::hard_step(), r0, nr, wk);
            block_hard[b] = loss_.value(wk.e, wk.ws);
          }
        }
      }
    });
    catq_pass out;
    for (double x : block_loss) out.loss += x;
    if (with_hard) {
      double h = 0.0;
      for (double x : block_hard) h += x;
      out.hard_loss = h;
    }
    return out;
  }

  /// E = W - alpha f(z) for rows [r0, r0 + nr); f, f_z, f_D kept for the backward pass.
  void forward(const catq_modulation<S>& mod, catq_phase phase, std::size_t r0, std::size_t nr, worker& wk) const {
    const auto m = static_cast<Eigen::Index>(cols());
    const auto rn = static_cast<Eigen::Index>(nr);
    wk.e.resize(rn, m);
    wk.f.resize(rn, m);
    if (!phase.hard) {
      wk.f_z.resize(rn, m);
      wk.f_d.resize(rn, m);
    }
    const group_layout& layout = mod.layout();
    const S s = static_cast<S>(phase.sharpness);
    for (std::size_t r = 0; r < nr; ++r) {
      const std::size_t i = r0 + r;
      const S* w = &w_(static_cast<Eigen::Index>(i), 0);
      S* e = &wk.e(static_cast<Eigen::Index>(r), 0);
      S* f = &wk.f(static_cast<Eigen::Index>(r), 0);
      for (std::size_t k = 0; k < layout.count(); ++k) {
        const catq_grid<S> grid = mod.grid(i, k);
        const std::size_t j0 = layout.begin(k);
        const std::size_t len = layout.size(k);
        if (phase.hard) {
          for (std::size_t j = j0; j < j0 + len; ++j) {
            f[j] = static_cast<S>(grid.code(w[j]));
            e[j] = w[j] - grid.alpha * f[j];
          }
          continue;
        }
        for (std::size_t j = 0; j < len; ++j) wk.z[j] = grid.proxy(w[j0 + j]);
        soft_ternarize_grad<S>(std::span<const S>(wk.z.data(), len), s, grid.delta, std::span<S>(f + j0, len),
                               std::span<S>(&wk.f_z(static_cast<Eigen::Index>(r), 0) + j0, len),
                               std::span<S>(&wk.f_d(static_cast<Eigen::Index>(r), 0) + j0, len));
        for (std::size_t j = j0; j < j0 + len; ++j) e[j] = w[j] - grid.alpha * f[j];
      }
    }
  }

  /// Per-group sums of G against f, z f_z, f_z, f_D, chained to the logits.
  void backward(const catq_modulation<S>& mod, catq_phase phase, std::size_t r0, std::size_t nr, worker& wk,
                std::span<S> grad) const {
    const group_layout& layout = mod.layout();
    const std::size_t groups = mod.groups();
    for (std::size_t r = 0; r < nr; ++r) {
      const std::size_t i = r0 + r;
      const auto ri = static_cast<Eigen::Index>(r);
      const S* w = &w_(static_cast<Eigen::Index>(i), 0);
      for (std::size_t k = 0; k < layout.count(); ++k) {
        const catq_grid<S> grid = mod.grid(i, k);
        const std::size_t j0 = layout.begin(k);
        const auto len = static_cast<Eigen::Index>(layout.size(k));
        const array_map g(&wk.g(ri, 0) + j0, len);
        const array_map f(&wk.f(ri, 0) + j0, len);
        const std::size_t gi = i * layout.count() + k;
        S d_alpha = 0;
        S d_mu = 0;
        S d_delta = 0;
        if (phase.hard) {
          d_alpha = (g * f).sum();  // codes get no gradient: What = alpha T
        } else {
          for (Eigen::Index j = 0; j < len; ++j) wk.z[static_cast<std::size_t>(j)] = grid.proxy(w[j0 + j]);
          const array_map z(wk.z.data(), len);
          const array_map f_z(&wk.f_z(ri, 0) + j0, len);
          const array_map f_d(&wk.f_d(ri, 0) + j0, len);
          d_alpha = (g * (f - z * f_z)).sum();
          d_mu = -(g * f_z).sum();
          d_delta = grid.alpha * (g * f_d).sum();
        }
        grad[gi] = d_mu * mod.alpha0(i, k) * modulation_slope(mod.b_mu(i, k));
        grad[groups + gi] = d_alpha * mod.alpha0(i, k) * modulation_slope(mod.b_alpha(i, k));
        grad[2 * groups + gi] = d_delta * mod.delta0(i, k) * modulation_slope(mod.b_delta(i, k));
      }
    }
  }

  cpu_exec exec_;
  catq_block<S> w_;
  Loss loss_;
};

}  // namespace ternq
