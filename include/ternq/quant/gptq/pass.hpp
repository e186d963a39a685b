// SPDX-License-Identifier: MIT
// The GPTQ-style blockwise driver's logic (ALGORITHMS.md §3), whatever runs its steps: any block order, SSR chosen as
// it goes, the others up front; the retries with more damping, the report and progress. Standard library only, so
// the CPU steps (steps.hpp) and a device's share it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "ternq/core/checks.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/progress.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/gram_psd.hpp"
#include "ternq/quant/absmean.hpp"
#include "ternq/quant/gptq/options.hpp"
#include "ternq/quant/gptq/order.hpp"
#include "ternq/quant/gptq/report.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/itf.hpp"
#include "ternq/quant/optimal_symmetric.hpp"
#include "ternq/quant/quantize.hpp"
#include "ternq/quant/twn.hpp"

namespace ternq {

namespace detail {

/// Wall-clock seconds since `start`, added to `*total`.
class step_timer {
 public:
  explicit step_timer(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  step_timer(const step_timer&) = delete;
  step_timer& operator=(const step_timer&) = delete;
  ~step_timer() { total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

/// The damping of the next retry: ten times the last, at least 1e-4.
inline double next_damping(double lambda) noexcept { return std::max(10.0 * lambda, 1e-4); }

/// One pass of the driver at damping `lambda` (ALGORITHMS.md §3). Returns
/// the stage whose factorization failed, or nullopt on success (`q` and
/// `report` then hold the result).
template <class Steps, class T, class G>
std::optional<std::string> gptq_pass(Steps& steps, const matrix_view<const T>& w, const matrix_view<const G>& gram,
                                     const gptq& options, double lambda, ternary_matrix& q, gptq_report& report) {
  const group_layout& layout = q.layout();
  const std::size_t m = w.cols();
  const bool use_ssr = std::holds_alternative<ssr>(options.order);
  std::vector<std::size_t> order;
  {
    step_timer t(report.seconds.setup);
    order = initial_column_order(options.order, gram);
    steps.load_weights(w, order);
    const auto info = steps.load_inverse(gram, std::span<const std::size_t>(order), lambda, !use_ssr);
    if (!info) return std::string("hessian");
    report.dead_columns = info->dead_columns;
  }
  std::vector<std::size_t> position(m);  // position[original column] = working position
  for (std::size_t p = 0; p < m; ++p) position[order[p]] = p;
  report.blocks.clear();
  double running = 0.0;
  for (std::size_t b = 0; b < layout.count(); ++b) {
    const std::size_t first = layout.begin(b);
    const std::size_t size = layout.size(b);
    if (use_ssr) {
      step_timer t(report.seconds.order);
      const std::vector<double> scores = steps.ssr_scores(first);
      const auto chosen = ssr_select(scores, std::span<const std::size_t>(order).subspan(first), size);
      std::vector<std::size_t> columns(chosen.size());
      for (std::size_t k = 0; k < chosen.size(); ++k) columns[k] = order[first + chosen[k]];
      for (std::size_t k = 0; k < columns.size(); ++k) {  // move the chosen columns to the front, best first
        const std::size_t to = first + k;
        const std::size_t from = position[columns[k]];
        steps.swap_columns(first, to, from);
        std::swap(order[to], order[from]);
        position[order[to]] = to;
        position[order[from]] = from;
      }
    }
    {
      step_timer t(report.seconds.factor);
      if (!steps.factor_block(first, size)) return "block " + std::to_string(b);
    }
    gptq_block_report block;
    {
      step_timer t(report.seconds.quantize);
      block = steps.quantize_block(b, first, size, options, gram,
                                   std::span<const std::size_t>(order).subspan(first, size), w, q);
    }
    {
      step_timer t(report.seconds.update);
      steps.update_remaining(first, size);
    }
    {
      step_timer t(report.seconds.downdate);
      steps.downdate_inverse(first, size);
    }
    running += block.output_error;
    report.blocks.push_back(block);
    report_progress(options.progress, {"gptq.block", b + 1, layout.count(), running});
  }
  q.set_permutation(std::move(order));
  return std::nullopt;
}

/// The driver's answer for an all-zero Gram matrix (see `gptq_report::data_free`).
template <class T>
gptq_result gptq_data_free(const matrix_view<const T>& w, const gptq& options) {
  const cpu_exec exec{.threads = 1};
  gptq_result out{std::visit(
                      [&](const auto& g) -> ternary_matrix {
                        using G = std::remove_cvref_t<decltype(g)>;
                        if constexpr (std::is_same_v<G, itf_aga>) {
                          return quantize_view(exec, w, itf{.group_size = g.group_size, .max_iters = g.max_iters});
                        } else if constexpr (std::is_same_v<std::remove_cvref_t<decltype(g)>, optimal_aga>) {
                          // without activations the alignment has nothing to align to: the exact optimum
                          return quantize_view(exec, w, optimal_symmetric{.group_size = g.group_size});
                        } else {
                          return quantize_view(exec, w, g);
                        }
                      },
                      options.grid),
                  {}};
  gptq_report& report = out.report;
  report.damping_requested = options.damping;
  report.damping_used = options.damping;
  report.dead_columns = w.cols();
  report.data_free = true;
  const group_layout& layout = out.matrix.layout();
  for (std::size_t b = 0; b < layout.count(); ++b) {
    gptq_block_report block;
    block.first = layout.begin(b);
    block.size = layout.size(b);
    for (std::size_t i = 0; i < w.rows(); ++i) {
      for (std::size_t j = layout.begin(b); j < layout.end(b); ++j) {
        const double d = static_cast<double>(w(i, j)) - static_cast<double>(out.matrix.value(i, j));
        block.weight_error += d * d;
      }
    }
    report.blocks.push_back(block);
  }
  return out;
}

}  // namespace detail

/// GPTQ-style blockwise quantization (ALGORITHMS.md §3) with the steps of
/// `Steps` (the CPU implementation by default): returns the ternary matrix,
/// whose permutation records the block order, and the report.
///
/// Validation: non-empty finite weights, an `m x m` finite Gram matrix, a
/// finite damping `>= 0`, a non-zero group size. When a Cholesky
/// factorization fails (the damped Hessian or a block's `P`), the whole
/// pass restarts with ten times the damping, up to `damping_retries` times,
/// each recorded in `report.retries`; `errc::numerical` only when the last
/// retry fails too.
///
/// The Gram matrix is checked as `require_gram_for` does (symmetric, finite,
/// non-negative diagonal) and must be positive semi-definite within
/// `linalg::gram_psd_tolerance`: at the default damping this is the
/// Hessian's own factorization (a failure at a damping of at least the
/// tolerance is `[ternq.invalid_argument]`, not retried); a larger damping,
/// which would hide a negative eigenvalue, gets an explicit check first.
/// An all-zero Gram matrix gives the data-free answer (`gptq_report::data_free`).
///
/// `require_psd(gram, context)` is that explicit check (throwing as
/// `linalg::require_psd` does); `driver.hpp`'s overload passes the CPU's,
/// a device's steps their own, so this file needs no linear algebra.
template <class Steps, class T, class G, class PsdCheck>
gptq_result gptq_quantize_with(Steps& steps, const matrix_view<const T>& w, const matrix_view<const G>& gram,
                               const gptq& options, PsdCheck&& require_psd) {
  constexpr const char* context = "quantize(gptq)";
  require_weights(w, context);
  require_gram_for(gram, w.cols(), context);
  if (!std::isfinite(options.damping) || options.damping < 0.0) {
    fail(errc::invalid_argument, context, ": damping must be finite and >= 0 (got ", options.damping, ")");
  }
  if (const auto* t = std::get_if<twn>(&options.grid)) {
    if (!std::isfinite(t->threshold_ratio) || t->threshold_ratio < 0.0) {
      fail(errc::invalid_argument, context, ": twn threshold_ratio must be finite and >= 0 (got ", t->threshold_ratio,
           ")");
    }
  }
  bool all_dead = true;
  for (std::size_t j = 0; j < w.cols() && all_dead; ++j) all_dead = gram(j, j) == G(0);
  if (all_dead) {
    require_psd(gram, context);  // an all-zero diagonal with other entries is no Gram matrix
    return detail::gptq_data_free(w, options);
  }
  if (options.damping > linalg::gram_psd_tolerance) require_psd(gram, context);
  gptq_result out{ternary_matrix(w.rows(), w.cols(), gptq_group_size(options), gptq_asymmetric(options)), {}};
  gptq_report& report = out.report;
  report.damping_requested = options.damping;
  double lambda = options.damping;
  for (unsigned attempt = 0;; ++attempt) {
    const std::optional<std::string> failed = detail::gptq_pass(steps, w, gram, options, lambda, out.matrix, report);
    if (!failed) break;
    if (*failed == "hessian" && lambda >= linalg::gram_psd_tolerance && options.damping <= linalg::gram_psd_tolerance) {
      fail(errc::invalid_argument, context, ": gram matrix is not positive semi-definite: C + ", lambda,
           " mean(diag C) I has no Cholesky factorization, so C has an eigenvalue below -", lambda,
           " x its mean eigenvalue; a Gram matrix X X^T has none");
    }
    report.retries.push_back({lambda, *failed});
    if (attempt == options.damping_retries) {
      fail(errc::numerical, context, ": Cholesky factorization of the ", *failed, " failed at damping ", lambda,
           " after ", attempt, " retries from damping ", options.damping);
    }
    lambda = detail::next_damping(lambda);
  }
  report.damping_used = lambda;
  return out;
}

}  // namespace ternq
