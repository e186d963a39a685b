// SPDX-License-Identifier: MIT
// CAT-Q's reconstruction losses: tr(E C E^T) on a Gram matrix, or MSE / Huber on raw activations (ALGORITHMS.md §4).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string_view>
#include <type_traits>

#include <Eigen/Core>

#include "ternq/core/checks.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/quant/catq/activation_rho.hpp"
#include "ternq/quant/metrics.hpp"
#include "ternq/quant/quantize.hpp"
#include "ternq/quant/scale_refit.hpp"

namespace ternq {

/// A block of consecutive weight rows (`rows x cols`, row-major): the unit
/// of work of the CAT-Q passes.
template <class S>
using catq_block = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace detail {
/// `sum a .* b` accumulated in double.
template <class S>
double block_dot(const catq_block<S>& a, const catq_block<S>& b) {
  return (a.template cast<double>().array() * b.template cast<double>().array()).sum();
}
}  // namespace detail

/// The output-reconstruction loss `L = tr(E C E^T)` with `E = W - What`
/// (ALGORITHMS.md §4: `E_x` itself) and its gradient `dL/dWhat = -2 E C`.
/// `C` is converted once to the compute type `S`; the product `E C` is one
/// Eigen GEMM per row block, the hot loop of calibration.
template <class S>
class gram_loss {
 public:
  /// Scratch memory of one worker.
  struct workspace {
    catq_block<S> product;
  };

  /// `gram` must stay alive while the loss is used: `exact_error` reads it in
  /// its own precision.
  template <class G>
  explicit gram_loss(const matrix_view<const G>& gram, std::string_view context = "gram_loss")
      : gram_(as_double_view(gram)) {
    require_nonempty(gram, context, "gram matrix");
    require_gram_for(gram, gram.cols(), context);
    c_ = linalg::map(gram).template cast<S>();
    if constexpr (std::is_same_v<G, float>) float_gram_ = gram;
  }

  [[nodiscard]] std::size_t cols() const noexcept { return static_cast<std::size_t>(c_.rows()); }

  /// The block's share of `L`: `sum_i e_i C e_i^T`.
  double value(const catq_block<S>& e, workspace& ws) const {
    ws.product.noalias() = e * c_;
    return detail::block_dot<S>(e, ws.product);
  }

  /// The block's share of `L`, and `g = dL/dWhat = -2 E C` for its rows.
  double gradient(const catq_block<S>& e, catq_block<S>& g, workspace&) const {
    g.noalias() = S(-2) * (e * c_);  // the factor folds into the GEMM
    return -0.5 * detail::block_dot<S>(e, g);
  }

  /// `L` of a deployed matrix, in double from the caller's own `C` (the
  /// reference the calibrator's final choice is made against).
  template <class T>
  double exact_error(const matrix_view<const T>& w, const ternary_matrix& q) const {
    if (float_gram_.data() != nullptr) return output_error(w, q, float_gram_);
    return output_error(w, q, gram_);
  }

  /// The loss has closed-form scales: `L` is quadratic in them for fixed codes.
  [[nodiscard]] bool has_closed_form_scales() const noexcept { return true; }

  /// Replaces the scales of `q` (codes fixed) by each row's joint least-squares
  /// scales under the caller's own `C` (`refit_scales_to_output`): `L` never rises.
  template <class T>
  scale_refit_report refit_scales(const matrix_view<const T>& w, ternary_matrix& q, const cpu_exec& exec) const {
    if (float_gram_.data() != nullptr) return refit_scales_to_output(q, w, float_gram_, grid_precision::fp32, exec);
    return refit_scales_to_output(q, w, gram_, grid_precision::fp32, exec);
  }

 private:
  template <class G>
  static matrix_view<const double> as_double_view(const matrix_view<const G>& g) {
    if constexpr (std::is_same_v<G, double>) return g;
    return {};
  }

  linalg::dense<S> c_;
  matrix_view<const double> gram_;
  matrix_view<const float> float_gram_;
};

/// A loss on the output residual `R = (W - What) X^T` of raw activations `X`
/// (`tokens x cols`, one row per token), averaged over all `rows x tokens`
/// elements: `L = mean rho(R)`, `dL/dWhat = -rho'(R) X / (rows tokens)`. Two
/// GEMMs per row block; for callers who hold activations rather than `C`
/// (with `rho(r) = r^2`, `L = E_x / (rows tokens)`).
template <class S>
class activation_loss {
 public:
  struct workspace {
    catq_block<S> residual;
  };

  /// `x` is copied (as `S`); `rows` is the number of weight rows, for the mean.
  template <class X>
  activation_loss(const matrix_view<const X>& x, std::size_t rows, const activation_loss_options& options,
                  std::string_view context = "activation_loss")
      : options_(options) {
    require_nonempty(x, context, "activations");
    require_finite(x, context, "activations");
    if (!(std::isfinite(options.huber_delta) && options.huber_delta > 0.0)) {
      fail(errc::invalid_argument, context, ": huber_delta must be finite and > 0 (got ", options.huber_delta, ")");
    }
    x_ = linalg::map(x).template cast<S>();
    scale_ = 1.0 / (static_cast<double>(rows) * static_cast<double>(x.rows()));
  }

  [[nodiscard]] std::size_t cols() const noexcept { return static_cast<std::size_t>(x_.cols()); }
  [[nodiscard]] std::size_t tokens() const noexcept { return static_cast<std::size_t>(x_.rows()); }

  double value(const catq_block<S>& e, workspace& ws) const {
    ws.residual.noalias() = e * x_.transpose();
    return scale_ * sum_rho(ws.residual);
  }

  double gradient(const catq_block<S>& e, catq_block<S>& g, workspace& ws) const {
    ws.residual.noalias() = e * x_.transpose();
    const double v = scale_ * sum_rho(ws.residual);
    to_derivative(ws.residual);
    g.noalias() = static_cast<S>(-scale_) * (ws.residual * x_);
    return v;
  }

  /// Only the mean squared loss has closed-form scales (`L = E_x / (rows tokens)` with `C = X^T X`).
  [[nodiscard]] bool has_closed_form_scales() const noexcept {
    return options_.kind == activation_loss_kind::mean_squared;
  }

  /// For the mean squared loss, replaces the scales of `q` by each row's joint
  /// least-squares scales under `C = X^T X` (in double), so `L` never rises;
  /// the Huber loss keeps them (an empty report).
  template <class T>
  scale_refit_report refit_scales(const matrix_view<const T>& w, ternary_matrix& q, const cpu_exec& exec) const {
    if (!has_closed_form_scales()) return {};
    const Eigen::MatrixXd x = x_.template cast<double>();
    const Eigen::MatrixXd c = x.transpose() * x;
    return refit_scales_to_output(q, w, col_major(c.data(), cols(), cols()), grid_precision::fp32, exec);
  }

  /// `L` of a deployed matrix, computed in double (blocks of rows, one GEMM each).
  template <class T>
  double exact_error(const matrix_view<const T>& w, const ternary_matrix& q) const {
    const Eigen::MatrixXd x = x_.template cast<double>();
    constexpr std::size_t block = 256;
    double total = 0.0;
    Eigen::MatrixXd e;
    Eigen::MatrixXd r;
    for (std::size_t i0 = 0; i0 < q.rows(); i0 += block) {
      const std::size_t nb = std::min(block, q.rows() - i0);
      e.resize(static_cast<Eigen::Index>(nb), static_cast<Eigen::Index>(q.cols()));
      for (std::size_t i = 0; i < nb; ++i) {
        for (std::size_t j = 0; j < q.cols(); ++j) {
          const std::size_t c = q.original_column(j);
          e(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(c)) =
              static_cast<double>(w(i0 + i, c)) - static_cast<double>(q.value(i0 + i, j));
        }
      }
      r.noalias() = e * x.transpose();
      for (Eigen::Index t = 0; t < r.size(); ++t) total += rho(r.data()[t]);
    }
    return scale_ * total;
  }

 private:
  [[nodiscard]] double rho(double r) const noexcept {
    return detail::activation_rho(options_.kind, options_.huber_delta, r);
  }
  double sum_rho(const catq_block<S>& r) const {
    double total = 0.0;
    for (Eigen::Index i = 0; i < r.rows(); ++i) {
      for (Eigen::Index t = 0; t < r.cols(); ++t) total += rho(static_cast<double>(r(i, t)));
    }
    return total;
  }
  void to_derivative(catq_block<S>& r) const {
    const activation_loss_kind kind = options_.kind;
    const S d = static_cast<S>(options_.huber_delta);
    r = r.unaryExpr([kind, d](S v) { return detail::activation_rho_derivative(kind, d, v); });
  }

  activation_loss_options options_;
  catq_block<S> x_;
  double scale_ = 1.0;
};

}  // namespace ternq
