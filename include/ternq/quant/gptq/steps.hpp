// SPDX-License-Identifier: MIT
// The hot steps of the GPTQ driver on the CPU: the seam a CUDA implementation replaces (ALGORITHMS.md §3).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <type_traits>
#include <variant>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "ternq/core/parallel.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/cholesky.hpp"
#include "ternq/linalg/damping.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/linalg/spd_inverse.hpp"
#include "ternq/linalg/tasks.hpp"
#include "ternq/linalg/tiled_products.hpp"
#include "ternq/quant/aga.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/detail/atq_rows.hpp"
#include "ternq/quant/gptq/options.hpp"
#include "ternq/quant/gptq/report.hpp"
#include "ternq/quant/itf_aga.hpp"
#include "ternq/quant/optimal_aga.hpp"

namespace ternq {

/// The CPU implementation of the driver's steps. It owns the working state
/// — the weights `W` (column-major, leading dimension padded to 16 so every
/// column has the same alignment), the Hessian in one of the two forms
/// below, and `O(n g)` block scratch — in *working positions*: the driver
/// moves each chosen block to the front of the remaining positions
/// (`swap_columns`), so the remaining columns are always the trailing
/// positions `[first, m)` and every product below works on contiguous
/// blocks.
///
/// The two forms of the Hessian (ALGORITHMS.md §3 computes the same
/// blocks either way):
/// - *explicit inverse* (any order, needed by SSR): the lower triangle of
///   `Hinv` of the remaining columns, downdated after every block, and the
///   remaining weights updated after every block (right-looking);
/// - *up-front factor* (the block order known before the first block:
///   sequential, act-order, random, given): the upper triangular `V` with
///   `H = V V^T` in working order, from one Cholesky factorization of the
///   reversed `H`. With `U = V^{-1}` the upper Cholesky factor of `H^{-1}`
///   (classic GPTQ's factor), block `B`'s `P = U_BB^T U_BB` with
///   `U_BB = V_BB^{-1}`, nothing is downdated, and the weights of a block
///   are compensated only when it comes next (left-looking): with
///   `E = W - Q` the residual of the blocks done, the compensated block is
///   `W_B + E_{<B} V_{<B,B} U_BB`, which equals classic GPTQ's
///   `W_B - Err_{<B} U_{<B,B}` because `W - Q = Err U` and `V U = I`.
///   That is `m^3 / 3` flops of setup instead of the explicit form's
///   `4 m^3 / 3` (inverse and downdates), and the same `n m^2` product.
///
/// The driver (`driver.hpp`) calls only these members, in this order per
/// block: [`ssr_scores`, `swap_columns`], `factor_block`, `quantize_block`,
/// `update_remaining`, `downdate_inverse`. A CUDA implementation provides
/// a class with the same members over device memory; the driver's logic
/// (orders, retries, report, progress) does not change.
///
/// Every parallel step splits its work into pieces of a fixed shape (row
/// chunks, product tiles, panels) independent of the thread count, so the
/// result is bit-identical for any number of threads.
///
/// `T` is the working precision of `W` (the input's scalar type: float
/// weights are compensated in float, as in GPTQ, so the `n m^2` update runs
/// at SGEMM speed); the Hessian's factors are kept in double, the up-front
/// one in float on request (`factor_precision::fp32`; see
/// docs/algorithms/gptq.md).
template <class T>
class cpu_gptq_steps {
 public:
  using weights_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using row_block = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  /// Which form of the Hessian the steps keep (see the class comment).
  enum class hessian_form {
    automatic,         ///< the up-front factor when the order is known, else the explicit inverse
    explicit_inverse,  ///< always the explicit inverse (the reference the up-front factor is tested against)
  };

  /// `factor`: the precision of the up-front factor (see `factor_precision`). `simd`: the instruction-set variant
  /// of the per-group grid fits (ITF's passes, the exact optimum's search; from `cpu_exec::simd_variant()`, which
  /// checks it); every variant gives the same result.
  explicit cpu_gptq_steps(unsigned threads, hessian_form form = hessian_form::automatic,
                          factor_precision factor = factor_precision::fp64, simd_level simd = simd_level::portable)
      : threads_(std::max(1U, threads)), form_(form), factor_(factor), simd_(simd) {}

  /// Copies `w` into the working weights, column `order[p]` at position `p`.
  void load_weights(const matrix_view<const T>& w, std::span<const std::size_t> order) {
    rows_ = w.rows();
    const auto n = static_cast<Eigen::Index>(rows_);
    const Eigen::Index ld = (n + 15) / 16 * 16;
    w_.resize(ld, static_cast<Eigen::Index>(order.size()));
    if (ld > n) w_.bottomRows(ld - n).setZero();
    const auto src = linalg::map(w);
    // bands of 64 rows, so that a row-major source is read one cache line per row at a time, not one page per element
    constexpr Eigen::Index band = 64;
    parallel_for(static_cast<std::size_t>((n + band - 1) / band), threads_, [&](std::size_t b0, std::size_t b1) {
      for (auto r0 = static_cast<Eigen::Index>(b0) * band; r0 < std::min(n, static_cast<Eigen::Index>(b1) * band);
           r0 += band) {
        const Eigen::Index h = std::min(band, n - r0);
        for (std::size_t p = 0; p < order.size(); ++p) {
          w_.col(static_cast<Eigen::Index>(p)).segment(r0, h) =
              src.col(static_cast<Eigen::Index>(order[p])).segment(r0, h);
        }
      }
    });
  }

  /// Builds the damped Hessian in the order `order` (ALGORITHMS.md §3),
  /// zeroes the weights of dead columns, and factors it: the up-front factor
  /// `V` when `order_known` (the blocks will be taken in `order`) and the
  /// form allows it, the explicit inverse otherwise. Returns nullopt when the
  /// Cholesky factorization fails.
  template <class G>
  std::optional<linalg::damped_hessian_info> load_inverse(const matrix_view<const G>& gram,
                                                          std::span<const std::size_t> order, double lambda,
                                                          bool order_known) {
    upfront_ = order_known && form_ == hessian_form::automatic;
    std::vector<char> dead;
    linalg::damped_hessian_info info;
    v_.resize(0, 0);
    v_single_.resize(0, 0);
    hinv_.resize(0, 0);
    single_ = false;
    if (upfront_) {
      // H in reversed order: its lower Cholesky factor, reversed, is V (H = V V^T)
      const std::vector<std::size_t> reversed(order.rbegin(), order.rend());
      const std::span<const std::size_t> r(reversed);
      if (factor_ == factor_precision::fp32) {
        info = linalg::build_damped_hessian(gram, r, lambda, v_single_, dead, threads_);
        single_ = linalg::cholesky_lower_by_tiles(v_single_, threads_);
        if (single_) {
          linalg::reverse_in_place(v_single_, threads_);
        } else {
          v_single_.resize(0, 0);  // failed in float: redone in double below
        }
      }
      if (!single_) {
        info = linalg::build_damped_hessian(gram, r, lambda, v_, dead, threads_);
        if (!linalg::cholesky_lower_by_tiles(v_, threads_)) return std::nullopt;
        linalg::reverse_in_place(v_, threads_);
      }
      std::reverse(dead.begin(), dead.end());
    } else {
      info = linalg::build_damped_hessian(gram, order, lambda, hinv_, dead, threads_);
      if (!linalg::invert_spd_lower(hinv_, threads_)) return std::nullopt;
    }
    for (std::size_t p = 0; p < dead.size(); ++p) {
      if (dead[p]) w_.col(static_cast<Eigen::Index>(p)).setZero();
    }
    return info;
  }

  /// SSR scoring (ALGORITHMS.md §3): with `wbar` the mean of the remaining
  /// columns `[first, m)` of the compensated weights, the cosine similarity
  /// of each remaining column with `wbar` (0 for a zero column or a zero
  /// `wbar`). Two passes over the remaining columns, each reading them in
  /// memory order: `wbar` as the sum of fixed 256-column panels' sums (a
  /// panel per task, added in panel order), then each column's squared norm
  /// and dot product with `wbar` in one sweep, in four double lanes each.
  [[nodiscard]] std::vector<double> ssr_scores(std::size_t first) const {
    const auto n = static_cast<Eigen::Index>(rows_);
    const auto f = static_cast<Eigen::Index>(first);
    const Eigen::Index r = w_.cols() - f;
    constexpr Eigen::Index panel = 256;
    const Eigen::Index panels = (r + panel - 1) / panel;
    Eigen::MatrixXd partial(n, panels);
    linalg::parallel_tasks(static_cast<std::size_t>(panels), threads_, [&](std::size_t p) {
      const Eigen::Index c0 = f + static_cast<Eigen::Index>(p) * panel;
      auto sum = partial.col(static_cast<Eigen::Index>(p));
      sum.setZero();
      for (Eigen::Index j = c0; j < std::min(c0 + panel, w_.cols()); ++j)
        sum += w_.col(j).head(n).template cast<double>();
    });
    Eigen::VectorXd wbar = partial.col(0);
    for (Eigen::Index p = 1; p < panels; ++p) wbar += partial.col(p);
    wbar /= static_cast<double>(r);
    const double wbar_norm = wbar.norm();
    std::vector<double> scores(static_cast<std::size_t>(r), 0.0);
    parallel_for(scores.size(), threads_, [&](std::size_t c0, std::size_t c1) {
      for (std::size_t c = c0; c < c1; ++c) {
        const T* x = &w_(0, f + static_cast<Eigen::Index>(c));
        constexpr Eigen::Index lanes = 4;
        double squares[lanes] = {};
        double dots[lanes] = {};
        Eigen::Index i = 0;
        for (; i + lanes <= n; i += lanes) {
          for (Eigen::Index l = 0; l < lanes; ++l) {
            const auto v = static_cast<double>(x[i + l]);
            squares[l] += v * v;
            dots[l] += v * wbar(i + l);
          }
        }
        for (; i < n; ++i) {
          const auto v = static_cast<double>(x[i]);
          squares[0] += v * v;
          dots[0] += v * wbar(i);
        }
        const double norm = std::sqrt((squares[0] + squares[1]) + (squares[2] + squares[3]));
        const double dot = (dots[0] + dots[1]) + (dots[2] + dots[3]);
        if (norm > 0.0 && wbar_norm > 0.0) scores[c] = dot / (norm * wbar_norm);
      }
    });
    return scores;
  }

  /// Exchanges working positions `a` and `b` (both `>= first`): the weight
  /// columns and the rows and columns of the remaining inverse Hessian.
  void swap_columns(std::size_t first, std::size_t a, std::size_t b) {
    if (a == b) return;
    w_.col(static_cast<Eigen::Index>(a)).swap(w_.col(static_cast<Eigen::Index>(b)));
    linalg::swap_symmetric_lower(hinv_, static_cast<Eigen::Index>(first), static_cast<Eigen::Index>(a),
                                 static_cast<Eigen::Index>(b));
  }

  /// `P = Hinv[B, B]` for the block `B = [first, first + size)` and its upper
  /// Cholesky factor `U` (`P = U^T U`; with the up-front factor,
  /// `U = V_BB^{-1}`). Returns false when `P` is not numerically positive
  /// definite.
  bool factor_block(std::size_t first, std::size_t size) {
    const auto f = static_cast<Eigen::Index>(first);
    const auto s = static_cast<Eigen::Index>(size);
    if (upfront_) {
      u_ = upper_inverse(f, s);
    } else {
      const Eigen::MatrixXd p = hinv_.block(f, f, s, s).selfadjointView<Eigen::Lower>();
      const Eigen::LLT<Eigen::MatrixXd> llt(p);
      if (llt.info() != Eigen::Success) return false;
      u_ = llt.matrixU();
    }
    if (!u_.diagonal().allFinite() || (u_.diagonal().array() <= 0.0).any()) return false;
    u_t_ = u_.template cast<T>();
    return true;
  }

  /// The block's grid and codes (ALGORITHMS.md §3, per block): the grid of
  /// every row from the block's current (compensated) weights — ITF, then
  /// AGA against `P^{-1}` or `C[B, B]` for `itf_aga` — then the GPTQ inner
  /// loop: for each column `j` of the block in order, the nearest level `q`
  /// of the stored grid (float, or rounded to fp16 by `options.precision`),
  /// `e = (w_j - q) / U_jj`, and the later columns of the block absorb
  /// `e U[j, j']`. Writes codes and grids of group `group` into `q`, keeps
  /// `Err = D U^{-1}` for the update, and returns the block's `E_w`
  /// (against `original`, columns `columns`) and damped output error
  /// `||Err||^2`.
  ///
  /// `optimal_aga` alternates instead: the inner loop's error of a row is
  /// exactly `(w - alpha t) M (w - alpha t)^T` for its codes `t` (`w` the
  /// row at block start, `M` the metric), so the scale minimizing it for
  /// those codes is `t M w^T / t M t^T`; the loop runs with the exact
  /// optimum's scale, with the scale solved for the optimum's codes, then
  /// again with the scale solved for the codes of the best run so far, up to
  /// `max_iters` times, and keeps the run of least error.
  template <class G>
  gptq_block_report quantize_block(std::size_t group, std::size_t first, std::size_t size, const gptq& options,
                                   const matrix_view<const G>& gram, std::span<const std::size_t> columns,
                                   const matrix_view<const T>& original, ternary_matrix& q) {
    const auto s = static_cast<Eigen::Index>(size);
    const bool symmetric_aga = std::holds_alternative<optimal_aga>(options.grid);
    const bool aga = std::holds_alternative<itf_aga>(options.grid) || symmetric_aga;
    const bool asymmetric = q.has_offsets();
    Eigen::MatrixXd metric;
    if (aga && options.metric == aga_metric::compensated) {
      Eigen::MatrixXd uinv = Eigen::MatrixXd::Identity(s, s);
      u_.triangularView<Eigen::Upper>().solveInPlace(uinv);
      metric = uinv * uinv.transpose();  // P^{-1} = U^{-1} U^{-T}
      metric = (0.5 * (metric + metric.transpose())).eval();
    } else if (aga) {
      metric.resize(s, s);
      for (Eigen::Index a = 0; a < s; ++a) {
        for (Eigen::Index b = 0; b < s; ++b) {
          metric(a, b) =
              static_cast<double>(gram(columns[static_cast<std::size_t>(a)], columns[static_cast<std::size_t>(b)]));
        }
      }
    }
    err_.resize(static_cast<Eigen::Index>(rows_), s);
    // up-front factor: the block's compensation was computed by the last update_remaining
    const bool compensate = upfront_ && first > 0;
    TERNQ_ASSERT(!compensate || comp_.cols() == s);
    const std::size_t chunks = (rows_ + detail::atq_row_chunk - 1) / detail::atq_row_chunk;
    std::vector<gptq_block_report> parts(chunks);
    detail::for_each_row_chunk(rows_, threads_, [&](std::size_t c, std::size_t r0, std::size_t r1) {
      gptq_block_report& part = parts[c];
      const auto rc = static_cast<Eigen::Index>(r1 - r0);
      const auto rb = static_cast<Eigen::Index>(r0);
      // The chunk's block as a contiguous column-major copy (the inner loop runs along its columns) and
      // row by row for the grid fit; reading the rows straight from W would touch a page per column per row.
      weights_matrix start = w_.block(rb, static_cast<Eigen::Index>(first), rc, s);
      weights_matrix work = compensate ? weights_matrix(start + comp_.middleRows(rb, rc)) : start;
      row_block wb = work;
      weights_matrix values;  // up-front factor: the stored values, for the residual
      if (upfront_) values.resize(rc, s);
      std::vector<std::int8_t> codes(static_cast<std::size_t>(rc) * size);
      std::vector<atq_grid> grids(static_cast<std::size_t>(rc));
      fit_grids(options.grid, wb, codes, grids, part.grid);
      if (symmetric_aga) {
        const unsigned refinements = std::get<optimal_aga>(options.grid).max_iters;
        const Eigen::MatrixXd wd = wb.template cast<double>();
        const Eigen::MatrixXd mw = wd * metric;  // row r: (M w_r)^T, M symmetric
        row_scratch scratch(size);
        for (Eigen::Index r = 0; r < rc; ++r) {
          const std::size_t i = r0 + static_cast<std::size_t>(r);
          const std::span<const std::int8_t> initial(codes.data() + static_cast<std::size_t>(r) * size, size);
          const float alpha_f =
              align_symmetric_row(&wb(r, 0), mw.row(r), metric, initial, grids[static_cast<std::size_t>(r)].alpha,
                                  refinements, options.precision, scratch);
          q.scale(i, group) = alpha_f;
          const auto out = q.row_codes(i).subspan(first, size);
          std::copy(scratch.best_codes.begin(), scratch.best_codes.end(), out.begin());
          std::copy(scratch.best_err.begin(), scratch.best_err.end(), &err_(static_cast<Eigen::Index>(i), 0));
          part.output_error += scratch.best_error;
          account_weight_error(out, alpha_f, 0.0F, original, i, columns, part);
          if (upfront_) {
            for (Eigen::Index j = 0; j < s; ++j)
              values(r, j) = stored_value(out[static_cast<std::size_t>(j)], alpha_f, 0.0F);
          }
        }
      } else {
        quantize_rows(r0, first, group, options, aga, asymmetric, metric, work, wb, codes, grids, original, columns, q,
                      upfront_ ? &values : nullptr, part);
      }
      if (upfront_) {  // the residual W - Q replaces the block's weights
        start -= values;
        w_.block(rb, static_cast<Eigen::Index>(first), rc, s) = start;
      }
    });
    gptq_block_report block;
    block.first = first;
    block.size = size;
    for (const auto& p : parts) {
      block.weight_error += p.weight_error;
      block.output_error += p.output_error;
      block.grid.merge(p.grid);
    }
    return block;
  }

  /// The rank-`g` update of the remaining weights,
  /// `W[:, F] -= D P^{-1} Hinv[B, F]`, computed as `Err K^T` with
  /// `Err = D U^{-1}` (kept by `quantize_block`) and `K = Hinv[F, B] U^{-1}`:
  /// the same product (`P^{-1} = U^{-1} U^{-T}`) with one triangular solve
  /// instead of two. One GEMM per fixed band of rows.
  ///
  /// With the up-front factor the remaining weights are compensated lazily:
  /// this computes only the next block's compensation `E_{<N} Z` with
  /// `Z = V_{<N,N} U_NN` (`N` the next `min(size, m - f)` positions, `E`
  /// the residual `W - Q` of the blocks done, kept by `quantize_block` in
  /// place of their weights), one GEMM per fixed band of rows; `quantize_block`
  /// adds it to the block's weights.
  void update_remaining(std::size_t first, std::size_t size) {
    const auto f = static_cast<Eigen::Index>(first + size);
    const Eigen::Index p = w_.cols() - f;
    if (p == 0) return;
    const auto s = static_cast<Eigen::Index>(size);
    if (upfront_) {
      compensate_next(f, std::min(s, p));
      return;
    }
    k_ = hinv_.block(f, static_cast<Eigen::Index>(first), p, s);
    const auto bands = static_cast<std::size_t>((p + linalg::product_tile - 1) / linalg::product_tile);
    linalg::parallel_tasks(bands, threads_, [&](std::size_t b) {
      const Eigen::Index r0 = static_cast<Eigen::Index>(b) * linalg::product_tile;
      auto band = k_.middleRows(r0, std::min(linalg::product_tile, p - r0));
      u_.triangularView<Eigen::Upper>().template solveInPlace<Eigen::OnTheRight>(band);  // K U = Hinv[F, B]
    });
    kt_ = k_.transpose().template cast<T>();
    auto target = w_.block(0, f, static_cast<Eigen::Index>(rows_), p);
    linalg::subtract_product_by_row_tiles(target, err_, kt_, threads_);
  }

  /// The inverse downdate `Hinv[F, F] -= Hinv[F, B] P^{-1} Hinv[B, F] = K K^T`
  /// (lower triangle, fixed tiles); must follow `update_remaining`, which computes `K`.
  void downdate_inverse(std::size_t first, std::size_t size) {
    if (upfront_) return;  // the up-front factor needs no downdate
    const auto f = static_cast<Eigen::Index>(first + size);
    if (f >= hinv_.rows()) return;
    linalg::lower_downdate_by_tiles(hinv_, f, k_, threads_);
  }

  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] unsigned threads() const noexcept { return threads_; }

 private:
  using err_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using code_block = Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic>;

  /// `quantize_block` on one chunk of rows for the grids other than
  /// `optimal_aga`: AGA on the chunk when `aga`, then the inner loop with
  /// every row's stored grid on `work` (the chunk's block, column-major);
  /// `values`, when given, receives the stored values (`alpha q + mu`).
  void quantize_rows(std::size_t r0, std::size_t first, std::size_t group, const gptq& options, bool aga,
                     bool asymmetric, const Eigen::MatrixXd& metric, weights_matrix& work, const row_block& wb,
                     const std::vector<std::int8_t>& codes, std::vector<atq_grid>& grids,
                     const matrix_view<const T>& original, std::span<const std::size_t> columns, ternary_matrix& q,
                     weights_matrix* values, gptq_block_report& part) {
    const Eigen::Index rc = work.rows();
    const Eigen::Index s = work.cols();
    const auto size = static_cast<std::size_t>(s);
    if (aga) {
      const Eigen::MatrixXd td =
          Eigen::Map<const Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(codes.data(),
                                                                                                        rc, s)
              .template cast<double>();
      std::vector<aga_outcome> outcome(grids.size());
      for (std::size_t r = 0; r < grids.size(); ++r) outcome[r].grid = grids[r];
      const Eigen::MatrixXd wd = wb.template cast<double>();
      part.grid.aga_fallbacks += aga_align_rows(wd, td, metric, std::span<aga_outcome>(outcome));
      for (std::size_t r = 0; r < grids.size(); ++r) grids[r] = outcome[r].grid;  // codes are re-rounded below
    }
    std::vector<float> alpha(static_cast<std::size_t>(rc));
    std::vector<float> mu(static_cast<std::size_t>(rc), 0.0F);
    for (Eigen::Index r = 0; r < rc; ++r) {
      const auto k = static_cast<std::size_t>(r);
      const std::size_t i = r0 + k;
      alpha[k] = round_to(options.precision, static_cast<float>(grids[k].alpha));
      if (asymmetric) mu[k] = round_to(options.precision, static_cast<float>(grids[k].mu));
      q.scale(i, group) = alpha[k];
      if (asymmetric) q.offset(i, group) = mu[k];
    }
    code_block block_codes(rc, s);
    weights_matrix err(rc, s);
    std::vector<double> error(static_cast<std::size_t>(rc), 0.0);
    inner_loop_rows(work, alpha, mu, block_codes, err, error);
    for (Eigen::Index r = 0; r < rc; ++r) {
      const auto k = static_cast<std::size_t>(r);
      const std::size_t i = r0 + k;
      const auto out = q.row_codes(i).subspan(first, size);
      for (Eigen::Index j = 0; j < s; ++j) out[static_cast<std::size_t>(j)] = block_codes(r, j);
      part.output_error += error[k];
      account_weight_error(out, alpha[k], mu[k], original, i, columns, part);
    }
    err_.middleRows(static_cast<Eigen::Index>(r0), rc) = err;
    if (values != nullptr) {
      for (Eigen::Index j = 0; j < s; ++j) {
        for (Eigen::Index r = 0; r < rc; ++r) {
          const auto k = static_cast<std::size_t>(r);
          (*values)(r, j) = stored_value(block_codes(r, j), alpha[k], mu[k]);
        }
      }
    }
  }

  /// `V_BB^{-1}` for the diagonal block `[f, f + s)` of the up-front factor
  /// (upper triangular, exact zeros below the diagonal).
  [[nodiscard]] Eigen::MatrixXd upper_inverse(Eigen::Index f, Eigen::Index s) const {
    Eigen::MatrixXd u = Eigen::MatrixXd::Identity(s, s);
    if (single_) {
      const Eigen::MatrixXd v = v_single_.block(f, f, s, s).cast<double>();
      v.triangularView<Eigen::Upper>().solveInPlace(u);
    } else {
      v_.block(f, f, s, s).triangularView<Eigen::Upper>().solveInPlace(u);
    }
    return u;
  }

  /// Up-front factor: `comp_ = E_{[0, f)} V_{[0, f), N} U_NN` for the next
  /// block `N = [f, f + s)`; `Z = V_{<N,N} U_NN` in working precision, both
  /// products in fixed bands of rows.
  void compensate_next(Eigen::Index f, Eigen::Index s) {
    const weights_matrix un = upper_inverse(f, s).template cast<T>();
    kt_.resize(f, s);
    const auto bands = static_cast<std::size_t>((f + linalg::product_tile - 1) / linalg::product_tile);
    linalg::parallel_tasks(bands, threads_, [&](std::size_t b) {
      const Eigen::Index r0 = static_cast<Eigen::Index>(b) * linalg::product_tile;
      const Eigen::Index h = std::min(linalg::product_tile, f - r0);
      weights_matrix v;
      if (single_) {
        v = v_single_.block(r0, f, h, s).template cast<T>();
      } else {
        v = v_.block(r0, f, h, s).template cast<T>();
      }
      kt_.middleRows(r0, h).noalias() = v * un.template triangularView<Eigen::Upper>();
    });
    comp_.resize(w_.rows(), s);
    auto target = comp_.topRows(static_cast<Eigen::Index>(rows_));
    linalg::assign_product_by_row_tiles(target, w_.block(0, 0, static_cast<Eigen::Index>(rows_), f), kt_, threads_);
    if (comp_.rows() > target.rows()) comp_.bottomRows(comp_.rows() - target.rows()).setZero();
  }

  /// A stored value `alpha q + mu`, exactly as the inner loop computes it.
  static T stored_value(std::int8_t code, float alpha_f, float mu_f) {
    return static_cast<T>(alpha_f) * static_cast<T>(code) + static_cast<T>(mu_f);
  }

  /// The grid of every row of `wb` (one group per row) by the block's grid method.
  void fit_grids(const gptq_grid& grid, row_block& wb, std::vector<std::int8_t>& codes, std::vector<atq_grid>& grids,
                 atq_stats& stats) const {
    const auto size = static_cast<std::size_t>(wb.cols());
    std::visit(
        [&](const auto& method) {
          using method_type = std::decay_t<decltype(method)>;
          if constexpr (std::is_same_v<method_type, itf> || std::is_same_v<method_type, itf_aga>) {
            fit_itf_grids(method.max_iters, wb, codes, grids, stats);
          } else {
            [[maybe_unused]] optimal_symmetric_workspace<T> ws;
            ws.simd = simd_;
            for (Eigen::Index r = 0; r < wb.rows(); ++r) {
              const std::span<const T> row(&wb(r, 0), size);
              const std::span<std::int8_t> cs(codes.data() + static_cast<std::size_t>(r) * size, size);
              atq_grid& g = grids[static_cast<std::size_t>(r)];
              if constexpr (std::is_same_v<method_type, absmean>) {
                g = {absmean_fit_group(row, cs), 0.0};
              } else if constexpr (std::is_same_v<method_type, twn>) {
                g = {twn_fit_group(row, cs, method.threshold_ratio), 0.0};
              } else {
                static_assert(std::is_same_v<method_type, optimal_symmetric> ||
                              std::is_same_v<method_type, optimal_aga>);
                g = {optimal_symmetric_fit_group(row, cs, ws), 0.0};
              }
            }
          }
        },
        grid);
  }

  /// ITF on every row of `wb` (one group per row), several rows at once where the processor allows.
  void fit_itf_grids(unsigned max_iters, row_block& wb, std::vector<std::int8_t>& codes, std::vector<atq_grid>& grids,
                     atq_stats& stats) const {
    const auto size = static_cast<std::size_t>(wb.cols());
    const auto rows = static_cast<std::size_t>(wb.rows());
    std::vector<std::span<const T>> groups(rows);
    std::vector<std::span<std::int8_t>> group_codes(rows);
    std::vector<itf_group_result> fits(rows);
    for (std::size_t r = 0; r < rows; ++r) {
      groups[r] = std::span<const T>(&wb(static_cast<Eigen::Index>(r), 0), size);
      group_codes[r] = std::span<std::int8_t>(codes.data() + r * size, size);
    }
    detail::itf_fit_groups_at<T>(simd_, groups, group_codes, max_iters, fits);
    for (std::size_t r = 0; r < rows; ++r) {
      grids[r] = fits[r].grid;
      stats.add(fits[r].stats);
    }
  }

  /// The GPTQ inner loop on one row of the block (the row's working copy
  /// `work`, modified in place): writes the codes and `err`, returns the
  /// row's damped output error `sum e^2`. Rows are independent.
  double inner_loop(T* work, T* err, std::span<std::int8_t> out, float alpha_f, float mu_f) const {
    const std::size_t size = out.size();
    const T alpha = static_cast<T>(alpha_f);
    const T mu = static_cast<T>(mu_f);
    double error = 0.0;
    for (std::size_t j = 0; j < size; ++j) {
      const T x = work[j];
      const std::int8_t c = nearest_level_code(x, alpha, mu);
      const T value = alpha * static_cast<T>(c) + mu;
      const T e = (x - value) / u_t_(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(j));
      err[j] = e;
      const T* u = &u_t_(static_cast<Eigen::Index>(j), 0);
      for (std::size_t k = j + 1; k < size; ++k) work[k] -= e * u[k];
      out[j] = c;
      error += static_cast<double>(e) * static_cast<double>(e);
    }
    return error;
  }

  /// Columns per panel of `inner_loop_rows`.
  static constexpr Eigen::Index inner_panel = 32;

  /// `inner_loop` on every row of `work` (a chunk's block, column-major,
  /// modified in place) at once, each step along a column over all rows
  /// (vectorizable, and the rows' chains of division and rounding
  /// overlap), in panels of `inner_panel` columns: inside a panel the later
  /// columns absorb `e U[j, j']` one column `j` at a time, as in
  /// `inner_loop`; the columns after the panel absorb the whole panel at
  /// once, `W[:, later] -= Err[:, panel] U[panel, later]`, one GEMM (GPTQ's
  /// lazy batch inside the block). Writes the codes and `err` (both
  /// chunk-shaped) and adds each row's `sum e^2` to `error`.
  void inner_loop_rows(weights_matrix& work, const std::vector<float>& alpha_f, const std::vector<float>& mu_f,
                       code_block& codes, weights_matrix& err, std::vector<double>& error) const {
    const Eigen::Index rc = work.rows();
    const Eigen::Index s = work.cols();
    std::vector<T> alpha(alpha_f.begin(), alpha_f.end());
    std::vector<T> mu(mu_f.begin(), mu_f.end());
    for (Eigen::Index j0 = 0; j0 < s; j0 += inner_panel) {
      const Eigen::Index j1 = std::min(s, j0 + inner_panel);
      for (Eigen::Index j = j0; j < j1; ++j) {
        const T d = u_t_(j, j);
        const T* x = &work(0, j);
        std::int8_t* c = &codes(0, j);
        T* e = &err(0, j);
        for (Eigen::Index r = 0; r < rc; ++r) {
          const auto k = static_cast<std::size_t>(r);
          // nearest_level_code, without its branch
          const T centred = x[r] - mu[k];
          const T half = alpha[k] * T(0.5);
          const int code = alpha[k] > T(0) ? static_cast<int>(centred >= half) - static_cast<int>(centred <= -half) : 0;
          const T value = alpha[k] * static_cast<T>(code) + mu[k];
          e[r] = (x[r] - value) / d;
          c[r] = static_cast<std::int8_t>(code);
          error[k] += static_cast<double>(e[r]) * static_cast<double>(e[r]);
        }
        for (Eigen::Index l = j + 1; l < j1; ++l) {
          const T u = u_t_(j, l);
          T* y = &work(0, l);
          for (Eigen::Index r = 0; r < rc; ++r) y[r] -= e[r] * u;
        }
      }
      if (j1 < s) {
        work.rightCols(s - j1).noalias() -= err.middleCols(j0, j1 - j0) * u_t_.block(j0, j1, j1 - j0, s - j1);
      }
    }
  }

  /// Adds the `E_w` of one row's stored block values against the original weights.
  static void account_weight_error(std::span<const std::int8_t> codes, float alpha_f, float mu_f,
                                   const matrix_view<const T>& original, std::size_t i,
                                   std::span<const std::size_t> columns, gptq_block_report& part) {
    constexpr std::size_t lanes = 4;  // independent sums, so the additions overlap
    double sum[lanes] = {};
    const auto squared = [&](std::size_t j) {
      const float stored = alpha_f * static_cast<float>(codes[j]) + mu_f;
      const double d = static_cast<double>(original(i, columns[j])) - static_cast<double>(stored);
      return d * d;
    };
    std::size_t j = 0;
    for (; j + lanes <= codes.size(); j += lanes) {
      for (std::size_t l = 0; l < lanes; ++l) sum[l] += squared(j + l);
    }
    for (; j < codes.size(); ++j) sum[0] += squared(j);
    part.weight_error += (sum[0] + sum[1]) + (sum[2] + sum[3]);
  }

  /// Scratch of `align_symmetric_row`: one run's state and the best run's.
  struct row_scratch {
    explicit row_scratch(std::size_t size) : work(size), err(size), best_err(size), codes(size), best_codes(size) {}
    std::vector<T> work, err, best_err;
    std::vector<std::int8_t> codes, best_codes;
    double best_error = 0.0;
  };

  /// `optimal_aga` on one row of the block (see `quantize_block`): `start`
  /// is the row at block start, `mw` its `(M w)^T`, `initial` and `alpha0`
  /// the exact optimum's codes and scale. Leaves the best run in `scratch`
  /// and returns its (stored-precision) scale.
  template <class MW>
  float align_symmetric_row(const T* start, const Eigen::MatrixBase<MW>& mw, const Eigen::MatrixXd& metric,
                            std::span<const std::int8_t> initial, double alpha0, unsigned refinements,
                            grid_precision precision, row_scratch& scratch) const {
    const std::size_t size = initial.size();
    const auto ni = static_cast<Eigen::Index>(size);
    Eigen::VectorXd t(ni);
    // The scale minimizing the row's error for codes `c`, or nullopt (then the sequence stops).
    const auto solve = [&](std::span<const std::int8_t> c) -> std::optional<float> {
      for (Eigen::Index j = 0; j < ni; ++j) t(j) = c[static_cast<std::size_t>(j)];
      const double den = t.dot(metric * t);
      const double num = mw.dot(t);
      if (!(den > 0.0) || !(num > 0.0) || !std::isfinite(num / den)) return std::nullopt;
      return round_to(precision, static_cast<float>(num / den));
    };
    float best_alpha = 0.0F;
    scratch.best_error = std::numeric_limits<double>::infinity();
    const auto run = [&](float alpha_f) {
      std::copy(start, start + size, scratch.work.begin());
      const double e = inner_loop(scratch.work.data(), scratch.err.data(), scratch.codes, alpha_f, 0.0F);
      if (!(e < scratch.best_error)) return false;
      scratch.best_error = e;
      best_alpha = alpha_f;
      std::swap(scratch.best_err, scratch.err);
      std::swap(scratch.best_codes, scratch.codes);
      return true;
    };
    const float alpha0_f = round_to(precision, static_cast<float>(alpha0));
    run(alpha0_f);
    std::optional<float> next = solve(initial);
    for (unsigned it = 0; next && *next != best_alpha; ++it) {
      if (!run(*next) && it > 0) break;
      if (it == refinements) break;
      next = solve(scratch.best_codes);
    }
    return best_alpha;
  }

  unsigned threads_ = 1;
  hessian_form form_ = hessian_form::automatic;
  bool upfront_ = false;  // this pass keeps the up-front factor
  std::size_t rows_ = 0;
  weights_matrix w_;      // working weights, column-major, padded leading dimension (up-front: residuals before first)
  Eigen::MatrixXd hinv_;  // explicit inverse: lower triangle, inverse Hessian of the remaining positions
  Eigen::MatrixXd v_;     // up-front factor: upper triangle, H = V V^T
  factor_precision factor_ = factor_precision::fp64;
  simd_level simd_ = simd_level::portable;
  bool single_ = false;       // this pass's up-front factor is in float (v_single_)
  Eigen::MatrixXf v_single_;  // up-front factor in float
  weights_matrix comp_;       // up-front factor: the next block's compensation, n x g
  Eigen::MatrixXd u_;         // upper Cholesky factor of the current block's P
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> u_t_;  // u_ in working precision
  err_matrix err_;                                                         // Err = D U^{-1}, n x g
  Eigen::MatrixXd k_;                                                      // K = Hinv[F, B] U^{-1}, |F| x g
  weights_matrix kt_;  // K^T in working precision (up-front factor: Z = V_{<N,N} U_NN)
};

}  // namespace ternq
