// SPDX-License-Identifier: MIT
// Calibration statistics: the Gram matrix C = sum over batches of X_b^T X_b, accumulated in double.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <Eigen/Core>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/linalg/eigen_bridge.hpp"

namespace ternq {

/// Accumulates `C = sum_t x_t x_t^T` over activation batches (ALGORITHMS.md
/// §0: `C = X X^T` with one column of `X` per token), together with the
/// number of tokens seen.
///
/// Numerics: every product of two floats is exact in double and the sums
/// run in double through Eigen's symmetric rank-k update, so for any
/// realistic calibration run (1e6 tokens) the relative error of `C` stays
/// near 1e-10 of its norm; float activations lose nothing to the format.
class gram_accumulator {
 public:
  /// An empty accumulator for activations with `features` input features (`m`).
  explicit gram_accumulator(std::size_t features)
      : sum_(dense_type::Zero(static_cast<Eigen::Index>(features), static_cast<Eigen::Index>(features))) {
    if (features == 0) fail(errc::empty_matrix, "gram_accumulator: zero input features");
  }

  /// Adds a batch laid out `tokens x features` (one row per token), any storage order.
  template <class M>
  void add(const M& batch) {
    add_tokens(as_const_view(batch), "gram_accumulator::add");
  }

  /// Adds a batch laid out `features x tokens` (one column per token, the `X` of ALGORITHMS.md).
  template <class M>
  void add_transposed(const M& batch) {
    add_tokens(as_const_view(batch).transposed(), "gram_accumulator::add_transposed");
  }

  /// Adds the statistics of another accumulator (e.g. one per thread or shard).
  void merge(const gram_accumulator& other) {
    if (other.features() != features()) {
      fail(errc::shape_mismatch, "gram_accumulator::merge: ", other.features(), " features, expected ", features());
    }
    sync();
    other.sync();
    sum_ += other.sum_;
    tokens_ += other.tokens_;
  }

  [[nodiscard]] std::size_t features() const noexcept { return static_cast<std::size_t>(sum_.rows()); }
  [[nodiscard]] std::uint64_t tokens() const noexcept { return tokens_; }

  /// The full symmetric sum `C` (not divided by the token count).
  [[nodiscard]] const Eigen::MatrixXd& matrix() const {
    sync();
    return sum_;
  }
  /// `C` as a view, for `quantize(w, method, acc.view())`.
  [[nodiscard]] matrix_view<const double> view() const { return linalg::view_of(matrix()); }

  void reset() {
    sum_.setZero();
    tokens_ = 0;
    lower_only_ = false;
  }

 private:
  using dense_type = Eigen::MatrixXd;
  /// Tokens converted to double per rank-k update: bounds the scratch memory.
  static constexpr std::size_t chunk_tokens = 1024;

  template <class T>
  void add_tokens(const matrix_view<const T>& x, const char* context) {
    if (x.cols() != features()) {
      fail(errc::shape_mismatch, context, ": batch has ", x.cols(), " features, expected ", features());
    }
    require_finite(x, context, "activations");
    const auto all = linalg::map(x);
    for (std::size_t t0 = 0; t0 < x.rows(); t0 += chunk_tokens) {
      const auto n = static_cast<Eigen::Index>(std::min(chunk_tokens, x.rows() - t0));
      scratch_ = all.middleRows(static_cast<Eigen::Index>(t0), n).template cast<double>();
      sum_.selfadjointView<Eigen::Lower>().rankUpdate(scratch_.transpose());
    }
    if (x.rows() > 0) lower_only_ = true;
    tokens_ += x.rows();
  }

  // rankUpdate writes the lower triangle only; mirror it before anyone reads C.
  void sync() const {
    if (!lower_only_) return;
    sum_.triangularView<Eigen::StrictlyUpper>() = sum_.transpose();
    lower_only_ = false;
  }

  mutable dense_type sum_;
  mutable bool lower_only_ = false;
  std::uint64_t tokens_ = 0;
  dense_type scratch_;
};

}  // namespace ternq
