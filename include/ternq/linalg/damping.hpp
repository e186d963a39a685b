// SPDX-License-Identifier: MIT
// The damped Hessian H = C + lambda mean(diag C) I with dead columns, in a chosen column order (ALGORITHMS.md §3),
// into an Eigen matrix (the buffer form is damped_hessian.hpp).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "ternq/core/view.hpp"
#include "ternq/linalg/damped_hessian.hpp"

namespace ternq::linalg {

/// `build_damped_hessian_into` an Eigen matrix `h`, resized to `m x m`.
template <class G, class S>
damped_hessian_info build_damped_hessian(const matrix_view<const G>& c, std::span<const std::size_t> order,
                                         double lambda, Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>& h,
                                         std::vector<char>& dead, unsigned threads = 1) {
  const auto m = static_cast<Eigen::Index>(order.size());
  h.resize(m, m);
  return build_damped_hessian_into(c, order, lambda, h.data(), order.size(), dead, threads);
}

}  // namespace ternq::linalg
