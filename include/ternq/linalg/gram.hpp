// SPDX-License-Identifier: MIT
// Calibration statistics: the Gram matrix C = sum over batches of X_b^T X_b, summed in double.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/linalg/gram_products.hpp"
#include "ternq/linalg/tasks.hpp"

namespace ternq {

/// Options of `gram_accumulator`.
struct gram_options {
  gram_products products = gram_products::float_chunks;
  /// The threads of `add` (tiles of `C` in parallel; the result does not depend on the count).
  cpu_exec exec{};
};

/// Accumulates `C = sum_t x_t x_t^T` over activation batches (ALGORITHMS.md
/// §0: `C = X X^T` with one column of `X` per token), together with the
/// number of tokens seen.
///
/// Numerics: see `gram_products`; in both modes the running sum is in
/// double, so long calibration runs lose nothing to the number of batches.
/// Each chunk's lower triangle is computed in fixed 512x512 tiles, one
/// Eigen GEMM (or rank update) per tile, on `options.exec`'s threads:
/// bit-identical for any thread count.
class gram_accumulator {
 public:
  /// An empty accumulator for activations with `features` input features (`m`).
  explicit gram_accumulator(std::size_t features, gram_options options = {})
      : sum_(dense_type::Zero(static_cast<Eigen::Index>(features), static_cast<Eigen::Index>(features))),
        products_(options.products),
        threads_(options.exec.thread_count()) {
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
  template <class S>
  using chunk_type = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  /// Tokens per chunk: the float sums of `float_chunks` run over this many tokens; bounds the scratch memory.
  static constexpr std::size_t chunk_tokens = 1024;
  /// Rows and columns per tile of `C` (512: Eigen's GEMM and rank update run near their full-matrix rate).
  static constexpr Eigen::Index tile = 512;

  template <class T>
  void add_tokens(const matrix_view<const T>& x, const char* context) {
    if (x.cols() != features()) {
      fail(errc::shape_mismatch, context, ": batch has ", x.cols(), " features, expected ", features());
    }
    require_finite(x, context, "activations");
    const auto all = linalg::map(x);
    for (std::size_t t0 = 0; t0 < x.rows(); t0 += chunk_tokens) {
      const auto n = static_cast<Eigen::Index>(std::min(chunk_tokens, x.rows() - t0));
      const auto rows = all.middleRows(static_cast<Eigen::Index>(t0), n);
      if (products_ == gram_products::float_chunks) {
        chunk_f_ = rows.template cast<float>();
        add_chunk(chunk_f_);
      } else {
        chunk_d_ = rows.template cast<double>();
        add_chunk(chunk_d_);
      }
    }
    if (x.rows() > 0) lower_only_ = true;
    tokens_ += x.rows();
  }

  /// `C += X_c^T X_c` on the lower triangle, one product per tile on or below
  /// the diagonal (a symmetric rank update on diagonal tiles).
  template <class S>
  void add_chunk(const chunk_type<S>& chunk) {
    const Eigen::Index m = sum_.rows();
    const Eigen::Index t = tile;
    const auto count = static_cast<std::size_t>((m + t - 1) / t);
    tiles_.clear();
    for (std::size_t i = 0; i < count; ++i) {
      for (std::size_t j = 0; j <= i; ++j)
        tiles_.emplace_back(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
    }
    linalg::parallel_tasks(tiles_.size(), threads_, [&](std::size_t k) {
      const Eigen::Index i0 = tiles_[k].first * t;
      const Eigen::Index j0 = tiles_[k].second * t;
      const Eigen::Index h = std::min(t, m - i0);
      const Eigen::Index w = std::min(t, m - j0);
      const auto xi = chunk.middleCols(i0, h);
      if constexpr (std::is_same_v<S, double>) {
        if (i0 == j0) {
          sum_.block(i0, i0, h, h).template selfadjointView<Eigen::Lower>().rankUpdate(xi.transpose());
        } else {
          sum_.block(i0, j0, h, w).noalias() += xi.transpose() * chunk.middleCols(j0, w);
        }
      } else {
        Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic> tile(h, w);
        if (i0 == j0) {
          tile.setZero();
          tile.template selfadjointView<Eigen::Lower>().rankUpdate(xi.transpose());
          sum_.block(i0, i0, h, h).template triangularView<Eigen::Lower>() += tile.template cast<double>();
        } else {
          tile.noalias() = xi.transpose() * chunk.middleCols(j0, w);
          sum_.block(i0, j0, h, w) += tile.template cast<double>();
        }
      }
    });
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
  gram_products products_ = gram_products::float_chunks;
  unsigned threads_ = 1;
  chunk_type<float> chunk_f_;
  chunk_type<double> chunk_d_;
  std::vector<std::pair<Eigen::Index, Eigen::Index>> tiles_;
};

}  // namespace ternq
