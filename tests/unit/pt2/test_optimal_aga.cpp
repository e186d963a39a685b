// SPDX-License-Identifier: MIT
// optimal_aga (the symmetric activation-aware grid) against brute force and a generic least-squares solve;
// the driver with that grid and with fp16-aware grids.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <Eigen/Dense>

#include "layer_problems.hpp"
#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;

using ternq::testing::gram_of;
using ternq::testing::weights_of;

/// `(w - v) C (w - v)^T` of row `i`, group `[b, b + n)`, for the dequantized values `v` of `q`.
double group_output_error(const row_matrix& w, const ternq::ternary_matrix& q, const Eigen::MatrixXd& c,
                          std::size_t i, std::size_t b, std::size_t n) {
  Eigen::VectorXd e(static_cast<Eigen::Index>(n));
  for (std::size_t j = 0; j < n; ++j) {
    e(static_cast<Eigen::Index>(j)) = static_cast<double>(w(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(b + j))) -
                                      static_cast<double>(q.value(i, b + j));
  }
  const Eigen::MatrixXd cb = c.block(static_cast<Eigen::Index>(b), static_cast<Eigen::Index>(b),
                                     static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  return e.dot(cb * e);
}

/// The best symmetric ternary approximation of one group under `c`, by enumeration of all `3^n` codes
/// with the metric-optimal scale of each (a generic one-column weighted least squares, by QR).
double brute_force_best(const Eigen::VectorXd& w, const Eigen::MatrixXd& c) {
  const auto n = w.size();
  const Eigen::MatrixXd r = c.llt().matrixU();
  const Eigen::VectorXd rw = r * w;
  double best = rw.squaredNorm();
  std::vector<int> t(static_cast<std::size_t>(n), -1);
  Eigen::VectorXd td(n);
  for (;;) {
    for (Eigen::Index j = 0; j < n; ++j) td(j) = t[static_cast<std::size_t>(j)];
    const Eigen::VectorXd rt = r * td;
    if (rt.squaredNorm() > 0.0) {
      const double alpha = std::max(0.0, rt.dot(rw) / rt.squaredNorm());
      best = std::min(best, (rw - alpha * rt).squaredNorm());
    }
    std::size_t k = 0;
    while (k < t.size() && t[k] == 1) t[k++] = -1;
    if (k == t.size()) break;
    ++t[k];
  }
  return best;
}

}  // namespace

TEST_CASE("symmetric_aga_scale equals a generic one-column weighted least-squares solve") {
  for (std::uint64_t seed : {1ULL, 2ULL, 3ULL}) {
    for (bool llm : {true, false}) {
      const std::size_t n = 80;
      const Eigen::MatrixXd c = gram_of(4 * n, n, seed, llm);
      const row_matrix w = weights_of(6, n, seed, llm);
      const Eigen::MatrixXd r = c.llt().matrixU();
      for (Eigen::Index i = 0; i < w.rows(); ++i) {
        const std::span<const float> x(&w(i, 0), n);
        std::vector<std::int8_t> t(n);
        (void)ternq::optimal_symmetric_fit_group(x, std::span(t));
        Eigen::VectorXd td(static_cast<Eigen::Index>(n));
        for (std::size_t j = 0; j < n; ++j) td(static_cast<Eigen::Index>(j)) = t[j];
        const Eigen::VectorXd wd = w.row(i).transpose().cast<double>();
        const Eigen::MatrixXd a = r * td;
        const double expected = a.colPivHouseholderQr().solve(r * wd)(0);
        const auto got = ternq::symmetric_aga_scale(x, std::span<const std::int8_t>(t), c);
        REQUIRE(got.has_value());
        CHECK(*got == doctest::Approx(expected).epsilon(1e-9));
      }
    }
  }
  // no scale for all-zero codes or a zero metric
  const std::vector<float> w = {1.0F, -2.0F, 0.5F};
  const std::vector<std::int8_t> zero = {0, 0, 0}, ones = {1, -1, 1};
  CHECK_FALSE(ternq::symmetric_aga_scale(std::span<const float>(w), std::span<const std::int8_t>(zero),
                                         Eigen::MatrixXd::Identity(3, 3))
                  .has_value());
  CHECK_FALSE(ternq::symmetric_aga_scale(std::span<const float>(w), std::span<const std::int8_t>(ones),
                                         Eigen::MatrixXd::Zero(3, 3))
                  .has_value());
  CHECK_THROWS_AS(ternq::symmetric_aga_scale(std::span<const float>(w), std::span<const std::int8_t>(ones),
                                             Eigen::MatrixXd::Identity(2, 2)),
                  ternq::error);
}

TEST_CASE("optimal_aga: every group's output error is between the brute-force optimum and the exact optimum's") {
  for (std::uint64_t seed : {4ULL, 5ULL}) {
    for (bool llm : {true, false}) {
      const std::size_t n = 8;
      const std::size_t m = 24;  // three groups of 8
      const Eigen::MatrixXd c = gram_of(6 * m, m, seed, llm);
      const row_matrix w = weights_of(10, m, seed, llm);
      const auto q = ternq::quantize(w, ternq::optimal_aga{.group_size = n}, c);
      const auto opt = ternq::quantize(w, ternq::optimal_symmetric{.group_size = n});
      CHECK(q.is_symmetric());
      CHECK_NOTHROW(q.validate());
      double total_aga = 0.0, total_opt = 0.0, total_best = 0.0;
      for (std::size_t i = 0; i < 10; ++i) {
        for (std::size_t b = 0; b < m; b += n) {
          const double e = group_output_error(w, q, c, i, b, n);
          const double e_opt = group_output_error(w, opt, c, i, b, n);
          const Eigen::VectorXd wd =
              w.block(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(b), 1, static_cast<Eigen::Index>(n))
                  .transpose()
                  .cast<double>();
          const Eigen::MatrixXd cb = c.block(static_cast<Eigen::Index>(b), static_cast<Eigen::Index>(b),
                                             static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
          const double best = brute_force_best(wd, cb);
          INFO("seed ", seed, " llm ", llm, " row ", i, " group ", b / n);
          CHECK(e <= e_opt * (1 + 1e-6) + 1e-12);
          CHECK(e >= best * (1 - 1e-6) - 1e-12);
          total_aga += e;
          total_opt += e_opt;
          total_best += best;
        }
      }
      MESSAGE("output error: optimal ", total_opt, ", optimal_aga ", total_aga, ", brute force ", total_best);
      CHECK(total_aga < total_opt);
    }
  }
}

TEST_CASE("optimal_aga: the stored scale is the metric-optimal scale of the stored codes") {
  const std::size_t m = 256;
  const Eigen::MatrixXd c = gram_of(3 * m, m, 9, true);
  const row_matrix w = weights_of(20, m, 9, true);
  const auto q = ternq::quantize(w, ternq::optimal_aga{.group_size = 64}, c);
  for (std::size_t i = 0; i < q.rows(); ++i) {
    for (std::size_t k = 0; k < q.groups_per_row(); ++k) {
      const std::size_t b = k * 64;
      const auto alpha = ternq::symmetric_aga_scale(std::span<const float>(&w(static_cast<Eigen::Index>(i), 0) + b, 64),
                                                    q.row_codes(i).subspan(b, 64), c.block(b, b, 64, 64));
      REQUIRE(alpha.has_value());
      CHECK(q.scale(i, k) == doctest::Approx(*alpha).epsilon(1e-6));
    }
  }
}

TEST_CASE("optimal_aga: degenerate groups get the exact or data-free answer") {
  const std::size_t m = 96;
  row_matrix w = weights_of(6, m, 13, true);
  w.row(1).setZero();
  w.row(2).setConstant(-0.375F);
  w.block(3, 32, 1, 32).setConstant(0.125F);  // one constant group
  const Eigen::MatrixXd c = gram_of(3 * m, m, 13, true);
  const auto q = ternq::quantize(w, ternq::optimal_aga{.group_size = 32}, c);
  for (std::size_t j = 0; j < m; ++j) {
    CHECK(q.value(1, j) == 0.0F);
    CHECK(q.value(2, j) == -0.375F);
  }
  for (std::size_t j = 32; j < 64; ++j) CHECK(q.value(3, j) == 0.125F);
  // a zero Gram matrix carries no activation information: the exact symmetric optimum, unchanged
  const Eigen::MatrixXd zero = Eigen::MatrixXd::Zero(m, m);
  const auto z = ternq::quantize(w, ternq::optimal_aga{.group_size = 32}, zero);
  const auto opt = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 32});
  CHECK(std::equal(z.codes().begin(), z.codes().end(), opt.codes().begin()));
  CHECK(std::equal(z.scales().begin(), z.scales().end(), opt.scales().begin()));
  // a last short group, per-row groups
  const auto short_last = ternq::quantize(w, ternq::optimal_aga{.group_size = 40}, c);
  CHECK(short_last.layout().size(2) == 16);
  CHECK_NOTHROW(short_last.validate());
  CHECK(ternq::quantize(w, ternq::optimal_aga{.group_size = ternq::per_row}, c).groups_per_row() == 1);
}

TEST_CASE("optimal_aga is bit-identical for 1, 2 and 3 threads, standalone and in the driver") {
  const std::size_t m = 192;
  const Eigen::MatrixXd c = gram_of(3 * m, m, 17, true);
  const row_matrix w = weights_of(200, m, 17, true);
  const auto run = [&](unsigned threads) {
    return ternq::quantize(ternq::cpu_exec{.threads = threads}, w, ternq::optimal_aga{.group_size = 64}, c);
  };
  const auto drive = [&](unsigned threads) {
    return ternq::quantize(ternq::cpu_exec{.threads = threads}, w,
                           ternq::gptq{.grid = ternq::optimal_aga{.group_size = 64}, .order = ternq::act_order{}}, c);
  };
  for (const auto& [a, b] : {std::pair{run(1), run(2)}, std::pair{run(1), run(3)}, std::pair{drive(1), drive(2)},
                             std::pair{drive(1), drive(3)}}) {
    CHECK(std::equal(a.codes().begin(), a.codes().end(), b.codes().begin(), b.codes().end()));
    CHECK(std::equal(a.scales().begin(), a.scales().end(), b.scales().begin(), b.scales().end()));
  }
}

TEST_CASE("the driver with optimal_aga beats the exact optimum's grid on LLM-like layers, in every order") {
  for (std::uint64_t seed : {21ULL, 22ULL, 23ULL}) {
    const std::size_t m = 384;
    const Eigen::MatrixXd c = gram_of(3 * m, m, seed, true);
    const row_matrix w = weights_of(96, m, seed, true);
    for (const ternq::block_order& order :
         std::vector<ternq::block_order>{ternq::sequential{}, ternq::act_order{}, ternq::ssr{}}) {
      const auto plain = ternq::gptq_quantize(ternq::cpu_exec{}, w, c,
                                              {.grid = ternq::optimal_symmetric{.group_size = 64}, .order = order});
      const auto aligned =
          ternq::gptq_quantize(ternq::cpu_exec{}, w, c, {.grid = ternq::optimal_aga{.group_size = 64}, .order = order});
      const double e_plain = ternq::relative_output_error(w, plain.matrix, c);
      const double e_aligned = ternq::relative_output_error(w, aligned.matrix, c);
      INFO("seed ", seed, " order ", order.index(), ": optimal ", e_plain, ", optimal_aga ", e_aligned);
      CHECK(aligned.matrix.is_symmetric());
      CHECK(e_aligned < e_plain);
      // The first block starts from the same state in both runs and keeps the best of runs that include the
      // exact optimum's own, so its damped error can only be lower or equal.
      if (order.index() != 2) {
        CHECK(aligned.report.blocks.front().output_error <= plain.report.blocks.front().output_error);
      }
      // the report's damped error is the driver's sum e^2 of the chosen runs
      CHECK(aligned.report.damped_output_error() > 0.0);
    }
  }
}

TEST_CASE("fp16 grids in the driver: every scale and offset is an fp16 value and Q2_0 stores the result exactly") {
  const std::size_t m = 256;
  const Eigen::MatrixXd c = gram_of(3 * m, m, 31, true);
  const row_matrix w = weights_of(48, m, 31, true);
  const auto is_fp16 = [](float x) { return ternq::round_to(ternq::grid_precision::fp16, x) == x; };
  for (const ternq::gptq_grid& grid : std::vector<ternq::gptq_grid>{
           ternq::optimal_symmetric{.group_size = 64}, ternq::optimal_aga{.group_size = 64},
           ternq::itf_aga{.group_size = 64}, ternq::absmean{.group_size = 64}}) {
    INFO("grid ", grid.index());
    const ternq::gptq options{.grid = grid, .precision = ternq::grid_precision::fp16};
    const auto q16 = ternq::gptq_quantize(ternq::cpu_exec{}, w, c, options);
    for (const float s : q16.matrix.scales()) CHECK(is_fp16(s));
    for (const float o : q16.matrix.offsets()) CHECK(is_fp16(o));
    ternq::gptq o32 = options;
    o32.precision = ternq::grid_precision::fp32;
    const auto q32 = ternq::gptq_quantize(ternq::cpu_exec{}, w, c, o32);
    const double e16 = ternq::relative_output_error(w, q16.matrix, c);
    const double e32 = ternq::relative_output_error(w, q32.matrix, c);
    MESSAGE("grid ", grid.index(), ": relative E_x fp32 grids ", e32, ", fp16 grids ", e16);
    CHECK(e16 <= e32 * 1.02);  // the compensation absorbs the rounding: no systematic loss
    if (q16.matrix.is_symmetric()) {
      const auto packed = ternq::pack::pack(q16.matrix, ternq::pack::format::q2_0);
      const std::vector<float> decoded = ternq::pack::to_float(packed.type(), packed.data, q16.matrix.rows(), m);
      const Eigen::MatrixXf dq = ternq::eigen::dequantize(q16.matrix);
      for (std::size_t i = 0; i < q16.matrix.rows(); ++i) {
        for (std::size_t j = 0; j < m; ++j) {
          REQUIRE(decoded[i * m + j] == dq(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)));
        }
      }
    }
  }
}

TEST_CASE("fp16 grids with sequential blocks equal the fp32 run when every fp32 scale is already an fp16 value") {
  // Weights on a power-of-two lattice make absmean's scales exact fp16 values, so rounding is a no-op.
  const std::size_t m = 128;
  const Eigen::MatrixXd c = Eigen::MatrixXd::Identity(m, m);
  row_matrix w(8, m);
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    for (Eigen::Index j = 0; j < w.cols(); ++j) w(i, j) = static_cast<float>(((i + j) % 3) - 1) * 0.5F;
  }
  const ternq::gptq a{.grid = ternq::absmean{.group_size = 64}, .precision = ternq::grid_precision::fp16};
  const ternq::gptq b{.grid = ternq::absmean{.group_size = 64}, .precision = ternq::grid_precision::fp32};
  const auto qa = ternq::quantize(w, a, c);
  const auto qb = ternq::quantize(w, b, c);
  CHECK(std::equal(qa.codes().begin(), qa.codes().end(), qb.codes().begin(), qb.codes().end()));
  CHECK(std::equal(qa.scales().begin(), qa.scales().end(), qb.scales().begin(), qb.scales().end()));
}
