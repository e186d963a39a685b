// SPDX-License-Identifier: MIT
// The best symmetric grid for the output error: the exact optimum's codes, then AGA's closed form restricted
// to `alpha T`, alternated with flexible rounding (symmetric, so every ternary block format stores it).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/quant/aga_methods.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/detail/atq_rows.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/optimal_symmetric.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq {

/// The scale `alpha` minimizing `(w - alpha t) C (w - alpha t)^T` for frozen
/// codes `t` under the positive semi-definite metric `c`:
/// `alpha = t C w^T / t C t^T` (the `mu = 0` row of AGA's normal equations).
/// Nullopt when `t C t^T` is not positive (all-zero codes, or codes in the
/// metric's null space) or anything is not finite. The value may be
/// negative; the caller then negates the codes and takes `|alpha|`.
template <class T, class Metric>
std::optional<double> symmetric_aga_scale(std::span<const T> w, std::span<const std::int8_t> t,
                                          const Eigen::MatrixBase<Metric>& c) {
  const auto n = static_cast<Eigen::Index>(w.size());
  if (t.size() != w.size() || c.rows() != n || c.cols() != n) {
    fail(errc::shape_mismatch, "symmetric_aga_scale: ", w.size(), " weights, ", t.size(), " codes and a ", c.rows(),
         "x", c.cols(), " metric");
  }
  Eigen::VectorXd wd(n), td(n);
  for (Eigen::Index j = 0; j < n; ++j) {
    wd(j) = static_cast<double>(w[static_cast<std::size_t>(j)]);
    td(j) = t[static_cast<std::size_t>(j)];
  }
  const Eigen::VectorXd ct = c.template cast<double>() * td;
  const double den = td.dot(ct);
  const double num = wd.dot(ct);
  if (!(den > 0.0) || !std::isfinite(den) || !std::isfinite(num)) return std::nullopt;
  return num / den;
}

namespace detail {

/// One row-group state of `optimal_aga`: its codes (a slice of the result's
/// row), scale, and the output-error reduction `b1^2 / a11` of the best
/// (codes, scale) so far (the error is `w C w^T` minus it).
struct symmetric_aga_state {
  double alpha = 0.0;
  double gain = 0.0;
  bool active = true;
};

/// `a11 = t C t^T` and `b1 = w C t^T` of every row of the `rows x g` codes
/// `t` and weights `w` (double), as two matrix products.
inline void symmetric_aga_terms(const Eigen::MatrixXd& w, const Eigen::MatrixXd& t, const Eigen::MatrixXd& c,
                                Eigen::VectorXd& a11, Eigen::VectorXd& b1) {
  const Eigen::MatrixXd tc = t * c;
  a11 = tc.cwiseProduct(t).rowwise().sum();
  b1 = tc.cwiseProduct(w).rowwise().sum();
}

}  // namespace detail

/// `optimal_aga` on `w` with the `m x m` Gram matrix `gram`, with
/// `exec`'s threads (fixed row chunks: the same bits for any thread count).
template <class T, class G>
ternary_matrix optimal_aga_quantize(const cpu_exec& exec, const matrix_view<const T>& w,
                                    const matrix_view<const G>& gram, const optimal_aga& method) {
  constexpr const char* context = "quantize(optimal_aga)";
  require_nonempty(w, context, "weight matrix");
  require_gram_for(gram, w.cols(), context);
  ternary_matrix out(w.rows(), w.cols(), method.group_size, false);
  const group_layout& layout = out.layout();
  const auto c = linalg::map(gram);
  const auto wm = linalg::map(w);
  std::vector<Eigen::MatrixXd> blocks(layout.count());
  for (std::size_t k = 0; k < layout.count(); ++k) {
    const auto b = static_cast<Eigen::Index>(layout.begin(k));
    const auto n = static_cast<Eigen::Index>(layout.size(k));
    blocks[k] = c.block(b, b, n, n).template cast<double>();
  }
  const simd_level simd = exec.simd_variant();
  detail::for_each_row_chunk(w.rows(), exec.thread_count(), [&](std::size_t, std::size_t r0, std::size_t r1) {
    std::vector<T> scratch(w.rows_contiguous() ? 0 : w.cols());
    optimal_symmetric_workspace<T> ws;
    ws.simd = simd;
    const auto rows = static_cast<Eigen::Index>(r1 - r0);
    std::vector<detail::symmetric_aga_state> state(r1 - r0);
    std::vector<std::int8_t> trial;
    Eigen::MatrixXd td, wd;
    Eigen::VectorXd a11, b1;
    for (std::size_t i = r0; i < r1; ++i) require_weight_row(detail::row_of(w, i, scratch), i, context);
    for (std::size_t k = 0; k < layout.count(); ++k) {
      const std::size_t b = layout.begin(k);
      const std::size_t n = layout.size(k);
      const auto ni = static_cast<Eigen::Index>(n);
      wd = wm.block(static_cast<Eigen::Index>(r0), static_cast<Eigen::Index>(b), rows, ni).template cast<double>();
      td.resize(rows, ni);
      for (std::size_t i = r0; i < r1; ++i) {  // the exact symmetric optimum of each group
        const std::span<const T> row = detail::row_of(w, i, scratch).subspan(b, n);
        const auto codes = out.row_codes(i).subspan(b, n);
        state[i - r0] = {optimal_symmetric_fit_group(row, codes, ws), 0.0, true};
        for (std::size_t j = 0; j < n; ++j) td(static_cast<Eigen::Index>(i - r0), static_cast<Eigen::Index>(j)) = codes[j];
      }
      trial.resize(n);
      for (unsigned it = 0; it <= method.max_iters; ++it) {
        detail::symmetric_aga_terms(wd, td, blocks[k], a11, b1);
        bool any = false;
        for (std::size_t i = r0; i < r1; ++i) {
          const auto r = static_cast<Eigen::Index>(i - r0);
          detail::symmetric_aga_state& s = state[i - r0];
          if (!s.active) continue;
          const auto codes = out.row_codes(i).subspan(b, n);
          // The codes in `td` row r are either the group's codes (first pass) or a re-rounded trial.
          const bool accept = a11(r) > 0.0 && std::isfinite(b1(r)) && b1(r) * b1(r) / a11(r) > s.gain;
          if (it > 0 && accept) {
            for (std::size_t j = 0; j < n; ++j) codes[j] = static_cast<std::int8_t>(td(r, static_cast<Eigen::Index>(j)));
          }
          if (!accept) {  // keep the best codes and scale; this row is done
            s.active = false;
            continue;
          }
          s.gain = b1(r) * b1(r) / a11(r);
          s.alpha = b1(r) / a11(r);
          if (s.alpha < 0.0) {  // the closed form flipped the sign: negate the codes
            s.alpha = -s.alpha;
            for (auto& x : codes) x = static_cast<std::int8_t>(-x);
          }
          // The next trial: the codes re-rounded to the nearest level of the new scale.
          bool changed = false;
          for (std::size_t j = 0; j < n; ++j) {
            const std::int8_t code = nearest_level_code(wd(r, static_cast<Eigen::Index>(j)), s.alpha, 0.0);
            changed = changed || code != codes[j];
            td(r, static_cast<Eigen::Index>(j)) = code;
          }
          s.active = changed;
          any = any || changed;
        }
        if (!any) break;
      }
      for (std::size_t i = r0; i < r1; ++i) out.scale(i, k) = static_cast<float>(state[i - r0].alpha);
    }
  });
  return out;
}

/// `optimal_aga_quantize` for any adaptable weights and Gram matrix.
template <class W, class G>
requires(!a_matrix_view<W> || !a_matrix_view<G>) ternary_matrix
    optimal_aga_quantize(const cpu_exec& exec, const W& w, const G& gram, const optimal_aga& method) {
  return optimal_aga_quantize(exec, as_const_view(w), as_const_view(gram), method);
}

/// `quantize` entry for optimal_aga (see ternq/quant/quantize.hpp).
template <class T, class G>
ternary_matrix quantize_view(const cpu_exec& exec, const matrix_view<const T>& w, const optimal_aga& method,
                             const matrix_view<const G>& gram) {
  return optimal_aga_quantize(exec, w, gram, method);
}

}  // namespace ternq
