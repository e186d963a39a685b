// SPDX-License-Identifier: MIT
// Gram matrices a method relies on: positive semi-definite within a tolerance, checked by a damped Cholesky.
#pragma once

#include <cstddef>
#include <string_view>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "ternq/core/error.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/gram_psd.hpp"

namespace ternq::linalg {

/// Refuses a matrix that is not positive semi-definite within
/// `gram_psd_tolerance` with `[ternq.invalid_argument] <context>: <what> is
/// not positive semi-definite ...`. Reads the lower triangle only (the
/// symmetry is checked by `require_gram_for`). An all-zero matrix passes (a
/// layer whose inputs never fired); a zero trace with any non-zero entry
/// does not. `O(m^3 / 3)` in double.
template <class T>
void require_psd(const matrix_view<const T>& c, std::string_view context, std::string_view what = "gram matrix") {
  const auto m = static_cast<Eigen::Index>(c.rows());
  if (m == 0) return;
  double trace = 0.0;
  for (Eigen::Index j = 0; j < m; ++j)
    trace += static_cast<double>(c(static_cast<std::size_t>(j), static_cast<std::size_t>(j)));
  const double shift = gram_psd_tolerance * trace / static_cast<double>(m);
  Eigen::MatrixXd h(m, m);
  bool all_zero = true;
  for (Eigen::Index q = 0; q < m; ++q) {
    for (Eigen::Index p = q; p < m; ++p) {
      const double v = static_cast<double>(c(static_cast<std::size_t>(p), static_cast<std::size_t>(q)));
      all_zero = all_zero && v == 0.0;
      h(p, q) = v;
    }
    h(q, q) += shift;
  }
  if (all_zero) return;
  if (trace <= 0.0) fail_zero_trace_gram(context, what);
  const Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>, Eigen::Lower> llt(h);
  if (llt.info() != Eigen::Success) fail_not_psd_gram(context, what, trace, static_cast<double>(m));
}

}  // namespace ternq::linalg
