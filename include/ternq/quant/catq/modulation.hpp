// SPDX-License-Identifier: MIT
// CAT-Q's learnable modulation: per-group priors, sigmoid-parameterized factors, hard ternarization (ALGORITHMS.md §4).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/quant/catq/grid.hpp"
#include "ternq/quant/groupwise.hpp"

namespace ternq {

/// How CAT-Q's prior scale `alpha0` is measured on a group.
enum class catq_scale_prior {
  absmean,             ///< `mean|w - mu0|` (ALGORITHMS.md §4)
  standard_deviation,  ///< `sqrt(mean (w - mu0)^2)`
};

/// The statistics-based priors of ALGORITHMS.md §4. The defaults are §4's.
struct catq_priors {
  catq_scale_prior scale = catq_scale_prior::absmean;  ///< what `alpha0` measures
  bool centre = true;                                  ///< `mu0 = mean(w)` (true) or `mu0 = 0`
  double threshold = 0.5;                              ///< `Delta0`, in units of the scale
  double epsilon = 1e-12;                              ///< added to `alpha0` so that it is never 0
};

/// Throws `invalid_argument` for priors outside their domain.
inline void validate(const catq_priors& p, std::string_view context) {
  if (!(std::isfinite(p.threshold) && p.threshold > 0.0)) {
    fail(errc::invalid_argument, context, ": prior threshold Delta0 must be finite and > 0 (got ", p.threshold, ")");
  }
  if (!(std::isfinite(p.epsilon) && p.epsilon > 0.0)) {
    fail(errc::invalid_argument, context, ": prior epsilon must be finite and > 0 (got ", p.epsilon, ")");
  }
}

/// CAT-Q's per-(row, group) state: priors `mu0`, `alpha0`, `Delta0` and the
/// learnable logits `b_mu`, `b_alpha`, `b_Delta` (all 0 at the start, where
/// the factors are 0, 1 and 1). The logits live in one flat array
/// `[b_mu | b_alpha | b_Delta]`, each block row-major `rows x groups`, the
/// layout the optimizer updates.
template <class S>
class catq_modulation {
 public:
  catq_modulation() = default;

  /// Priors measured on `w` (`rows x cols`, any storage) with groups of `group_size`.
  template <class T>
  catq_modulation(const cpu_exec& exec, const matrix_view<const T>& w, group_size_option group_size,
                  const catq_priors& priors)
      : rows_(w.rows()), layout_(w.cols(), group_size, "catq_modulation") {
    validate(priors, "catq_modulation");
    const std::size_t groups = rows_ * layout_.count();
    mu0_.assign(groups, S(0));
    alpha0_.assign(groups, S(1));
    delta0_.assign(groups, static_cast<S>(priors.threshold));
    logits_.assign(3 * groups, S(0));
    parallel_for(rows_, exec.thread_count(), [&](std::size_t r0, std::size_t r1) {
      std::vector<T> scratch(w.rows_contiguous() ? 0 : w.cols());
      for (std::size_t i = r0; i < r1; ++i) {
        const std::span<const T> row = detail::row_of(w, i, scratch);
        for (std::size_t k = 0; k < layout_.count(); ++k) {
          const auto g = row.subspan(layout_.begin(k), layout_.size(k));
          set_prior(i, k, g, priors);
        }
      }
    });
  }

  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t cols() const noexcept { return layout_.cols(); }
  [[nodiscard]] const group_layout& layout() const noexcept { return layout_; }
  [[nodiscard]] std::size_t groups_per_row() const noexcept { return layout_.count(); }
  /// Number of (row, group) pairs: the length of each logit block.
  [[nodiscard]] std::size_t groups() const noexcept { return mu0_.size(); }

  [[nodiscard]] S mu0(std::size_t i, std::size_t k) const noexcept { return mu0_[index(i, k)]; }
  [[nodiscard]] S alpha0(std::size_t i, std::size_t k) const noexcept { return alpha0_[index(i, k)]; }
  [[nodiscard]] S delta0(std::size_t i, std::size_t k) const noexcept { return delta0_[index(i, k)]; }

  /// All logits, `[b_mu | b_alpha | b_Delta]`.
  [[nodiscard]] std::span<S> logits() noexcept { return logits_; }
  [[nodiscard]] std::span<const S> logits() const noexcept { return logits_; }
  [[nodiscard]] S& b_mu(std::size_t i, std::size_t k) noexcept { return logits_[index(i, k)]; }
  [[nodiscard]] S& b_alpha(std::size_t i, std::size_t k) noexcept { return logits_[groups() + index(i, k)]; }
  [[nodiscard]] S& b_delta(std::size_t i, std::size_t k) noexcept { return logits_[2 * groups() + index(i, k)]; }
  [[nodiscard]] S b_mu(std::size_t i, std::size_t k) const noexcept { return logits_[index(i, k)]; }
  [[nodiscard]] S b_alpha(std::size_t i, std::size_t k) const noexcept { return logits_[groups() + index(i, k)]; }
  [[nodiscard]] S b_delta(std::size_t i, std::size_t k) const noexcept { return logits_[2 * groups() + index(i, k)]; }

  /// The grid of (row `i`, group `k`) at the current logits.
  [[nodiscard]] catq_grid<S> grid(std::size_t i, std::size_t k) const noexcept {
    const std::size_t g = index(i, k);
    return catq_grid_of(mu0_[g], alpha0_[g], delta0_[g], logits_[g], logits_[groups() + g], logits_[2 * groups() + g]);
  }

  /// The priors of every (row, group), row-major `rows x groups` (the layout of each logit block).
  [[nodiscard]] std::span<const S> mu0_values() const noexcept { return mu0_; }
  [[nodiscard]] std::span<const S> alpha0_values() const noexcept { return alpha0_; }
  [[nodiscard]] std::span<const S> delta0_values() const noexcept { return delta0_; }

 private:
  [[nodiscard]] std::size_t index(std::size_t i, std::size_t k) const noexcept {
    TERNQ_ASSERT(i < rows_ && k < layout_.count());
    return i * layout_.count() + k;
  }

  template <class T>
  void set_prior(std::size_t i, std::size_t k, std::span<const T> g, const catq_priors& priors) {
    if (std::all_of(g.begin(), g.end(), [&](T x) { return x == g.front(); })) {
      // A constant group (every group of one element, a single column, a constant row): centred on its
      // mean it has no spread, and every code would be 0. Uncentred, the grid {-|c|, 0, |c|} holds it
      // exactly, as every other method's does (alpha0 = |c|, codes sign(c) since |c| / |c| > Delta0).
      const double c = std::abs(static_cast<double>(g.front()));
      mu0_[index(i, k)] = S(0);
      alpha0_[index(i, k)] = static_cast<S>(c > 0.0 ? c : priors.epsilon);
      return;
    }
    const double n = static_cast<double>(g.size());
    double mean = 0.0;
    if (priors.centre) {
      for (T x : g) mean += static_cast<double>(x);
      mean /= n;
    }
    double spread = 0.0;
    if (priors.scale == catq_scale_prior::absmean) {
      for (T x : g) spread += std::abs(static_cast<double>(x) - mean);
      spread /= n;
    } else {
      for (T x : g) spread += (static_cast<double>(x) - mean) * (static_cast<double>(x) - mean);
      spread = std::sqrt(spread / n);
    }
    mu0_[index(i, k)] = static_cast<S>(mean);
    alpha0_[index(i, k)] = static_cast<S>(spread + priors.epsilon);
  }

  std::size_t rows_ = 0;
  group_layout layout_;
  std::vector<S> mu0_;
  std::vector<S> alpha0_;
  std::vector<S> delta0_;
  std::vector<S> logits_;
};

/// The deployed matrix of the current logits: codes `sign(z) [|z| > Delta]`,
/// scale `alpha`, no offset (ALGORITHMS.md §4: `What = alpha T`, symmetric).
template <class S, class T>
ternary_matrix catq_hard_matrix(const cpu_exec& exec, const matrix_view<const T>& w, const catq_modulation<S>& mod) {
  if (w.rows() != mod.rows() || w.cols() != mod.cols()) {
    fail(errc::shape_mismatch, "catq_hard_matrix: weights are ", w.rows(), "x", w.cols(), " but the modulation is ",
         mod.rows(), "x", mod.cols());
  }
  const group_layout& layout = mod.layout();
  ternary_matrix q(w.rows(), w.cols(), layout.group_size(), false);
  parallel_for(w.rows(), exec.thread_count(), [&](std::size_t r0, std::size_t r1) {
    std::vector<T> scratch(w.rows_contiguous() ? 0 : w.cols());
    for (std::size_t i = r0; i < r1; ++i) {
      const std::span<const T> row = detail::row_of(w, i, scratch);
      const auto codes = q.row_codes(i);
      for (std::size_t k = 0; k < layout.count(); ++k) {
        const catq_grid<S> grid = mod.grid(i, k);
        for (std::size_t j = layout.begin(k); j < layout.end(k); ++j) codes[j] = grid.code(static_cast<S>(row[j]));
        q.scale(i, k) = static_cast<float>(grid.alpha);
      }
    }
  });
  return q;
}

}  // namespace ternq
