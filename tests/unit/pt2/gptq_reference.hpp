// SPDX-License-Identifier: MIT
// Test oracles for the GPTQ driver: classic GPTQ (Cholesky of H^-1, lazy batches) and a literal block-OBS
// transcription.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <vector>

#include <Eigen/Dense>

#include "ternq/ternq.hpp"

namespace ternq::testing {

/// Codes (row-major, stored order), float grids and the column order of a reference run.
struct reference_result {
  std::vector<std::int8_t> codes;
  std::vector<float> scales;
  std::vector<float> offsets;
  std::vector<std::size_t> perm;
};

/// A per-row grid rule: fits the grid of one row of a block from its current values.
using grid_rule = std::function<atq_grid(std::span<const double> row, std::span<std::int8_t> codes)>;

/// The damped Hessian of ALGORITHMS.md §3, dead columns zeroed in `w`.
inline Eigen::MatrixXd reference_hessian(const Eigen::MatrixXd& c, double lambda, Eigen::MatrixXd& w) {
  const Eigen::Index m = c.rows();
  Eigen::MatrixXd h = c;
  const double mean = c.diagonal().sum() / static_cast<double>(m);
  for (Eigen::Index j = 0; j < m; ++j) {
    if (c(j, j) == 0.0) {
      h.row(j).setZero();
      h.col(j).setZero();
      h(j, j) = 1.0;
      w.col(j).setZero();
    } else {
      h(j, j) += lambda * mean;
    }
  }
  return h;
}

/// Classic GPTQ with sequential blocks of `g` columns: `U` = upper Cholesky
/// factor of the full `H^{-1}`; per block, the grid of each row from the
/// block's current weights, then column by column `q` = nearest level,
/// `err = (w - q) / U_jj`, the rest of the block absorbs `err U[j, :]`;
/// after the block, the lazy batch update `W[:, i2:] -= Err U[B, i2:]`.
inline reference_result classic_gptq(const Eigen::MatrixXd& w0, const Eigen::MatrixXd& c, double lambda, std::size_t g,
                                     const grid_rule& fit, bool asymmetric) {
  const Eigen::Index n = w0.rows();
  const Eigen::Index m = w0.cols();
  Eigen::MatrixXd w = w0;
  const Eigen::MatrixXd h = reference_hessian(c, lambda, w);
  const Eigen::MatrixXd hinv = h.llt().solve(Eigen::MatrixXd::Identity(m, m));
  const Eigen::MatrixXd u = hinv.llt().matrixU();
  reference_result out;
  out.codes.assign(static_cast<std::size_t>(n * m), 0);
  const std::size_t groups = (static_cast<std::size_t>(m) + g - 1) / g;
  out.scales.assign(static_cast<std::size_t>(n) * groups, 0.0F);
  out.offsets.assign(out.scales.size(), 0.0F);
  out.perm.resize(static_cast<std::size_t>(m));
  std::iota(out.perm.begin(), out.perm.end(), std::size_t{0});
  for (Eigen::Index i1 = 0, k = 0; i1 < m; i1 += static_cast<Eigen::Index>(g), ++k) {
    const Eigen::Index cnt = std::min<Eigen::Index>(static_cast<Eigen::Index>(g), m - i1);
    const Eigen::Index i2 = i1 + cnt;
    Eigen::MatrixXd w1 = w.middleCols(i1, cnt);
    Eigen::MatrixXd err1(n, cnt);
    for (Eigen::Index r = 0; r < n; ++r) {
      std::vector<double> row(static_cast<std::size_t>(cnt));
      for (Eigen::Index j = 0; j < cnt; ++j) row[static_cast<std::size_t>(j)] = w1(r, j);
      std::vector<std::int8_t> scratch(row.size());
      const atq_grid grid = fit(row, scratch);
      const float alpha = static_cast<float>(grid.alpha);
      const float mu = asymmetric ? static_cast<float>(grid.mu) : 0.0F;
      out.scales[static_cast<std::size_t>(r) * groups + static_cast<std::size_t>(k)] = alpha;
      out.offsets[static_cast<std::size_t>(r) * groups + static_cast<std::size_t>(k)] = mu;
      for (Eigen::Index j = 0; j < cnt; ++j) {
        const double d = u(i1 + j, i1 + j);
        const double x = w1(r, j);
        const std::int8_t code = nearest_level_code(x, static_cast<double>(alpha), static_cast<double>(mu));
        const double q = static_cast<double>(alpha) * code + static_cast<double>(mu);
        const double err = (x - q) / d;
        for (Eigen::Index jj = j + 1; jj < cnt; ++jj) w1(r, jj) -= err * u(i1 + j, i1 + jj);
        err1(r, j) = err;
        out.codes[static_cast<std::size_t>(r * m + i1 + j)] = code;
      }
    }
    if (i2 < m) w.rightCols(m - i2) -= err1 * u.block(i1, i2, cnt, m - i2);
  }
  return out;
}

/// What the literal block-OBS reference does for the block order.
enum class reference_order { fixed, ssr };

/// ALGORITHMS.md §3 transcribed literally with index sets: the full inverse
/// `Hinv` indexed by original columns, `P = Hinv[B, B]`, the GPTQ inner
/// loop, `W[:, F] -= D P^{-1} Hinv[B, F]` and
/// `Hinv[F, F] -= Hinv[F, B] P^{-1} Hinv[B, F]`. Blocks follow `fixed_order`
/// in chunks of `g`, or SSR computed naively: `wbar` and the cosine of every
/// remaining column by plain loops, all remaining columns sorted by
/// (score descending, column ascending). With `aga`, the grid of each row is
/// re-solved by `aga_closed_form` against `P^{-1}` or `C[B, B]`.
inline reference_result block_obs_reference(const Eigen::MatrixXd& w0, const Eigen::MatrixXd& c, double lambda,
                                            std::size_t g, const grid_rule& fit, bool asymmetric, reference_order how,
                                            const std::vector<std::size_t>& fixed_order, bool aga,
                                            bool compensated_metric) {
  const Eigen::Index n = w0.rows();
  const Eigen::Index m = w0.cols();
  Eigen::MatrixXd w = w0;
  const Eigen::MatrixXd h = reference_hessian(c, lambda, w);
  Eigen::MatrixXd hinv = h.llt().solve(Eigen::MatrixXd::Identity(m, m));
  reference_result out;
  const std::size_t groups = (static_cast<std::size_t>(m) + g - 1) / g;
  out.codes.assign(static_cast<std::size_t>(n * m), 0);
  out.scales.assign(static_cast<std::size_t>(n) * groups, 0.0F);
  out.offsets.assign(out.scales.size(), 0.0F);
  std::vector<int> remaining;
  if (how == reference_order::fixed) {
    for (std::size_t j : fixed_order) remaining.push_back(static_cast<int>(j));
  } else {
    for (int j = 0; j < m; ++j) remaining.push_back(j);
  }
  for (std::size_t k = 0; !remaining.empty(); ++k) {
    const std::size_t cnt = std::min(g, remaining.size());
    std::vector<int> block;
    if (how == reference_order::fixed) {
      block.assign(remaining.begin(), remaining.begin() + static_cast<std::ptrdiff_t>(cnt));
    } else {
      std::vector<double> wbar(static_cast<std::size_t>(n), 0.0);
      for (Eigen::Index i = 0; i < n; ++i) {
        for (int j : remaining) wbar[static_cast<std::size_t>(i)] += w(i, j);
        wbar[static_cast<std::size_t>(i)] /= static_cast<double>(remaining.size());
      }
      double wbar_norm = 0.0;
      for (double x : wbar) wbar_norm += x * x;
      wbar_norm = std::sqrt(wbar_norm);
      std::vector<std::pair<double, int>> scored;
      for (int j : remaining) {
        double dot = 0.0, norm = 0.0;
        for (Eigen::Index i = 0; i < n; ++i) {
          dot += w(i, j) * wbar[static_cast<std::size_t>(i)];
          norm += w(i, j) * w(i, j);
        }
        norm = std::sqrt(norm);
        scored.emplace_back(norm > 0.0 && wbar_norm > 0.0 ? dot / (norm * wbar_norm) : 0.0, j);
      }
      std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      for (std::size_t t = 0; t < cnt; ++t) block.push_back(scored[t].second);
    }
    std::vector<int> rest;
    for (int j : remaining) {
      if (std::find(block.begin(), block.end(), j) == block.end()) rest.push_back(j);
    }
    const Eigen::MatrixXd p = hinv(block, block);
    const Eigen::LLT<Eigen::MatrixXd> llt(p);
    const Eigen::MatrixXd u = llt.matrixU();
    const Eigen::MatrixXd pinv = llt.solve(Eigen::MatrixXd::Identity(p.rows(), p.cols()));
    const Eigen::MatrixXd metric = compensated_metric ? pinv : Eigen::MatrixXd(c(block, block));
    const Eigen::MatrixXd wb = w(Eigen::all, block);
    Eigen::MatrixXd work = wb;
    Eigen::MatrixXd qb(n, static_cast<Eigen::Index>(cnt));
    for (Eigen::Index r = 0; r < n; ++r) {
      std::vector<double> row(cnt);
      for (std::size_t j = 0; j < cnt; ++j) row[j] = wb(r, static_cast<Eigen::Index>(j));
      std::vector<std::int8_t> codes(cnt);
      atq_grid grid = fit(row, codes);
      if (aga) grid = aga_closed_form(std::span<const double>(row), std::span(codes), metric, grid).grid;
      const float alpha = static_cast<float>(grid.alpha);
      const float mu = asymmetric ? static_cast<float>(grid.mu) : 0.0F;
      out.scales[static_cast<std::size_t>(r) * groups + k] = alpha;
      out.offsets[static_cast<std::size_t>(r) * groups + k] = mu;
      for (std::size_t j = 0; j < cnt; ++j) {
        const auto jj = static_cast<Eigen::Index>(j);
        const double x = work(r, jj);
        const std::int8_t code = nearest_level_code(x, static_cast<double>(alpha), static_cast<double>(mu));
        const double q = static_cast<double>(alpha) * code + static_cast<double>(mu);
        const double err = (x - q) / u(jj, jj);
        for (Eigen::Index t = jj + 1; t < static_cast<Eigen::Index>(cnt); ++t) work(r, t) -= err * u(jj, t);
        qb(r, jj) = q;
        out.codes[static_cast<std::size_t>(r * m) + k * g + j] = code;
      }
    }
    if (!rest.empty()) {
      const Eigen::MatrixXd d = wb - qb;
      const Eigen::MatrixXd hbf = hinv(block, rest);
      w(Eigen::all, rest) -= d * pinv * hbf;
      hinv(rest, rest) -= hbf.transpose() * pinv * hbf;
    }
    for (int j : block) out.perm.push_back(static_cast<std::size_t>(j));
    remaining = rest;
  }
  return out;
}

/// Grid rules of the library's per-group fits, on double rows.
inline grid_rule absmean_rule() {
  return [](std::span<const double> row, std::span<std::int8_t> codes) {
    return atq_grid{absmean_fit_group(row, codes), 0.0};
  };
}
inline grid_rule twn_rule() {
  return [](std::span<const double> row, std::span<std::int8_t> codes) {
    return atq_grid{twn_fit_group(row, codes), 0.0};
  };
}
inline grid_rule itf_rule(unsigned max_iters = 10) {
  return [max_iters](std::span<const double> row, std::span<std::int8_t> codes) {
    return itf_fit_group(row, codes, max_iters).grid;
  };
}

}  // namespace ternq::testing
