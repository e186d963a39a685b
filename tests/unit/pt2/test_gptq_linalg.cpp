// SPDX-License-Identifier: MIT
// The driver's dense algebra: SPD inverse, tiled Cholesky, symmetric swaps, tiled products, damped Hessian, orders.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "llm_like.hpp"
#include "ternq/ternq.hpp"

namespace {

Eigen::MatrixXd spd(Eigen::Index m, std::uint64_t seed) {
  const Eigen::MatrixXd x =
      ternq::testing::gaussian_matrix(static_cast<std::size_t>(m), static_cast<std::size_t>(m) + 7, seed)
          .cast<double>();
  Eigen::MatrixXd h = x * x.transpose();
  h.diagonal().array() += 0.5;
  return h;
}

}  // namespace

TEST_CASE("invert_spd_lower: the lower triangle of the inverse, for sizes around the panel width") {
  for (Eigen::Index m : {1, 2, 17, 255, 256, 257, 520}) {
    const Eigen::MatrixXd h = spd(m, static_cast<std::uint64_t>(m));
    Eigen::MatrixXd a = h;
    a.triangularView<Eigen::StrictlyUpper>().setConstant(std::numeric_limits<double>::quiet_NaN());  // never read
    REQUIRE(ternq::linalg::invert_spd_lower(a, 2));
    const Eigen::MatrixXd expected = h.llt().solve(Eigen::MatrixXd::Identity(m, m));
    const Eigen::MatrixXd got = a.selfadjointView<Eigen::Lower>();
    CHECK((got - expected).norm() <= 1e-10 * expected.norm());
  }
  for (unsigned threads : {2U, 3U}) {
    const Eigen::MatrixXd h = spd(700, 3);
    Eigen::MatrixXd one = h, other = h;
    ternq::linalg::invert_spd_lower(one, 1);
    ternq::linalg::invert_spd_lower(other, threads);
    CHECK(Eigen::MatrixXd(one.triangularView<Eigen::Lower>()) == Eigen::MatrixXd(other.triangularView<Eigen::Lower>()));
  }
  Eigen::MatrixXd indefinite(2, 2);
  indefinite << 1, 3, 3, 1;
  CHECK_FALSE(ternq::linalg::invert_spd_lower(indefinite, 1));
}

TEST_CASE("cholesky_lower_by_tiles: Eigen's factor for sizes around the tile, any thread count, failures") {
  for (Eigen::Index m : {1, 2, 17, 255, 256, 257, 520}) {
    const Eigen::MatrixXd h = spd(m, static_cast<std::uint64_t>(m) + 11);
    Eigen::MatrixXd a = h;
    a.triangularView<Eigen::StrictlyUpper>().setConstant(std::numeric_limits<double>::quiet_NaN());  // never read
    REQUIRE(ternq::linalg::cholesky_lower_by_tiles(a, 2));
    const Eigen::MatrixXd expected = h.llt().matrixL();
    const Eigen::MatrixXd got = a.triangularView<Eigen::Lower>();
    CHECK((got - expected).norm() <= 1e-12 * expected.norm());
    Eigen::MatrixXf af = h.cast<float>();
    REQUIRE(ternq::linalg::cholesky_lower_by_tiles(af, 1));
    const Eigen::MatrixXd gotf = af.triangularView<Eigen::Lower>().toDenseMatrix().cast<double>();
    CHECK((gotf - expected).norm() <= 1e-4 * expected.norm());
  }
  const Eigen::MatrixXd h = spd(700, 12);
  Eigen::MatrixXd one = h;
  REQUIRE(ternq::linalg::cholesky_lower_by_tiles(one, 1));
  for (unsigned threads : {2U, 3U}) {
    Eigen::MatrixXd other = h;
    REQUIRE(ternq::linalg::cholesky_lower_by_tiles(other, threads));
    CHECK(Eigen::MatrixXd(one.triangularView<Eigen::Lower>()) == Eigen::MatrixXd(other.triangularView<Eigen::Lower>()));
  }
  Eigen::MatrixXd indefinite(2, 2);
  indefinite << 1, 3, 3, 1;
  CHECK_FALSE(ternq::linalg::cholesky_lower_by_tiles(indefinite, 1));
  Eigen::MatrixXd late = spd(600, 13);  // the failure is in a later tile
  late(550, 550) = -1.0;
  CHECK_FALSE(ternq::linalg::cholesky_lower_by_tiles(late, 2));
}

TEST_CASE("reverse_in_place turns the lower factor of the reversed matrix into V with A = V V^T") {
  for (Eigen::Index m : {1, 2, 7, 8, 301}) {
    const Eigen::MatrixXd a = spd(m, static_cast<std::uint64_t>(m) + 21);
    Eigen::MatrixXd r = a.reverse();  // rows and columns in reverse order
    REQUIRE(ternq::linalg::cholesky_lower_by_tiles(r, 2));
    const Eigen::MatrixXd lower = r.triangularView<Eigen::Lower>();
    Eigen::MatrixXd v = lower;
    ternq::linalg::reverse_in_place(v, 3);
    CHECK(v == lower.reverse());
    CHECK(Eigen::MatrixXd(v.triangularView<Eigen::StrictlyLower>()).isZero(0.0));
    CHECK((v * v.transpose() - a).norm() <= 1e-12 * a.norm());
  }
}

TEST_CASE("swap_symmetric_lower is the symmetric transposition on the trailing block") {
  const Eigen::MatrixXd h = spd(40, 7);
  for (auto [first, q, p] :
       std::vector<std::array<Eigen::Index, 3>>{{0, 0, 39}, {5, 7, 20}, {5, 20, 7}, {10, 10, 11}, {3, 30, 30}}) {
    Eigen::MatrixXd a = h;
    ternq::linalg::swap_symmetric_lower(a, first, q, p);
    Eigen::MatrixXd expected = h;
    expected.row(q).swap(expected.row(p));
    expected.col(q).swap(expected.col(p));
    const Eigen::Index r = 40 - first;
    const Eigen::MatrixXd got = a.bottomRightCorner(r, r).selfadjointView<Eigen::Lower>();
    CHECK(got == expected.bottomRightCorner(r, r));
  }
}

TEST_CASE("tiled products equal the plain products and do not depend on the thread count") {
  const Eigen::MatrixXf t0 = ternq::testing::gaussian_matrix(600, 333, 1);
  const Eigen::MatrixXf lhs = ternq::testing::gaussian_matrix(600, 64, 2);
  const Eigen::MatrixXf rhs = ternq::testing::gaussian_matrix(64, 333, 3);
  Eigen::MatrixXf one = t0;
  ternq::linalg::subtract_product_by_row_tiles(one, lhs, rhs, 1);
  const Eigen::MatrixXf plain = t0 - lhs * rhs;
  CHECK((one - plain).norm() <= 1e-5F * plain.norm());
  for (unsigned threads : {2U, 3U}) {
    Eigen::MatrixXf other = t0;
    ternq::linalg::subtract_product_by_row_tiles(other, lhs, rhs, threads);
    CHECK(other == one);
  }
  Eigen::MatrixXf assigned = t0;
  ternq::linalg::assign_product_by_row_tiles(assigned, lhs, rhs, 1);
  const Eigen::MatrixXf product = lhs * rhs;
  CHECK((assigned - product).norm() <= 1e-5F * product.norm());
  for (unsigned threads : {2U, 3U}) {
    Eigen::MatrixXf other = t0;
    ternq::linalg::assign_product_by_row_tiles(other, lhs, rhs, threads);
    CHECK(other == assigned);
  }
  const Eigen::MatrixXd h = spd(700, 4);
  const Eigen::MatrixXd k = ternq::testing::gaussian_matrix(600, 32, 5).cast<double>();
  Eigen::MatrixXd a = h;
  ternq::linalg::lower_downdate_by_tiles(a, 100, k, 1);
  const Eigen::MatrixXd expected = h.bottomRightCorner(600, 600) - k * k.transpose();
  const Eigen::MatrixXd got = a.bottomRightCorner(600, 600).selfadjointView<Eigen::Lower>();
  CHECK((got - expected).norm() <= 1e-12 * expected.norm());
  CHECK(a.topLeftCorner(100, 700) == h.topLeftCorner(100, 700));  // rows above the trailing block untouched
  for (unsigned threads : {2U, 3U}) {
    Eigen::MatrixXd other = h;
    ternq::linalg::lower_downdate_by_tiles(other, 100, k, threads);
    CHECK(Eigen::MatrixXd(other.triangularView<Eigen::Lower>()) == Eigen::MatrixXd(a.triangularView<Eigen::Lower>()));
  }
}

TEST_CASE("build_damped_hessian: permuted, damped by the mean diagonal, dead columns decoupled") {
  Eigen::MatrixXd c = spd(6, 9);
  c.row(2).setZero();
  c.col(2).setZero();
  const std::vector<std::size_t> order = {4, 2, 0, 5, 1, 3};
  Eigen::MatrixXd h;
  std::vector<char> dead;
  const auto info = ternq::linalg::build_damped_hessian(ternq::linalg::view_of(std::as_const(c)), order, 0.1, h, dead);
  const double mean = c.diagonal().mean();
  CHECK(info.mean_diagonal == doctest::Approx(mean));
  CHECK(info.dead_columns == 1);
  CHECK(dead == std::vector<char>{0, 1, 0, 0, 0, 0});
  for (Eigen::Index p = 0; p < 6; ++p) {
    for (Eigen::Index q = 0; q <= p; ++q) {
      const auto op = static_cast<Eigen::Index>(order[static_cast<std::size_t>(p)]);
      const auto oq = static_cast<Eigen::Index>(order[static_cast<std::size_t>(q)]);
      double expected = c(op, oq);
      if (p == q) expected = op == 2 ? 1.0 : expected + 0.1 * mean;
      CHECK(h(p, q) == doctest::Approx(expected));
    }
  }
  // any thread count (column panels), and a float H is the double one rounded
  Eigen::MatrixXd big = spd(200, 10);
  big.row(70).setZero();
  big.col(70).setZero();
  std::vector<std::size_t> reversed(200);
  std::iota(reversed.rbegin(), reversed.rend(), std::size_t{0});
  const auto bv = ternq::linalg::view_of(std::as_const(big));
  Eigen::MatrixXd one;
  ternq::linalg::build_damped_hessian(bv, reversed, 0.01, one, dead, 1);
  for (unsigned threads : {2U, 3U}) {
    Eigen::MatrixXd other;
    std::vector<char> other_dead;
    const auto other_info = ternq::linalg::build_damped_hessian(bv, reversed, 0.01, other, other_dead, threads);
    CHECK(other_info.dead_columns == 1);
    CHECK(other_dead == dead);
    CHECK(Eigen::MatrixXd(other.triangularView<Eigen::Lower>()) == Eigen::MatrixXd(one.triangularView<Eigen::Lower>()));
  }
  Eigen::MatrixXf single;
  ternq::linalg::build_damped_hessian(bv, reversed, 0.01, single, dead, 2);
  CHECK(Eigen::MatrixXf(single.triangularView<Eigen::Lower>()) ==
        Eigen::MatrixXf(one.cast<float>().triangularView<Eigen::Lower>()));
}

TEST_CASE("build_damped_hessian_into: a padded column-major buffer gets the Eigen form's lower triangle") {
  Eigen::MatrixXd c = spd(50, 12);
  c.row(7).setZero();
  c.col(7).setZero();
  std::vector<std::size_t> order(50);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::swap(order[3], order[41]);
  const auto cv = ternq::linalg::view_of(std::as_const(c));
  Eigen::MatrixXd h;
  std::vector<char> dead;
  const auto info = ternq::linalg::build_damped_hessian(cv, order, 0.05, h, dead, 2);
  constexpr std::size_t ld = 53;  // padded: the rows past 50 and the strict upper triangle stay as they were
  constexpr double sentinel = -7.5;
  std::vector<double> buffer(ld * 50, sentinel);
  std::vector<char> buffer_dead;
  const auto buffer_info = ternq::linalg::build_damped_hessian_into(cv, order, 0.05, buffer.data(), ld, buffer_dead, 3);
  CHECK(buffer_info.dead_columns == info.dead_columns);
  CHECK(buffer_info.mean_diagonal == info.mean_diagonal);
  CHECK(buffer_dead == dead);
  for (std::size_t q = 0; q < 50; ++q) {
    for (std::size_t p = 0; p < ld; ++p) {
      CAPTURE(p);
      CAPTURE(q);
      const double expected =
          p >= q && p < 50 ? h(static_cast<Eigen::Index>(p), static_cast<Eigen::Index>(q)) : sentinel;
      CHECK(buffer[q * ld + p] == expected);
    }
  }
}

TEST_CASE("compose_exchanges: one saved-and-placed pass equals the exchanges one by one, on W and the lower Hinv") {
  constexpr Eigen::Index m = 40;
  constexpr Eigen::Index rows = 3;
  const Eigen::MatrixXd sym = spd(m, 21);
  for (const std::size_t first : {std::size_t{0}, std::size_t{9}}) {
    CAPTURE(first);
    // SSR's pattern (chosen columns moved to the front one by one) plus exchanges that undo each other
    const std::vector<std::pair<std::size_t, std::size_t>> exchanges = {
        {first, 30}, {first + 1, 35}, {first + 2, first + 2}, {first + 3, 30}, {first + 4, 39}, {17, 22}, {22, 17}};
    Eigen::MatrixXd h = sym.triangularView<Eigen::Lower>();
    Eigen::MatrixXd w = Eigen::MatrixXd::Random(rows, m);
    Eigen::MatrixXd h_ref = h;
    Eigen::MatrixXd w_ref = w;
    for (const auto& [a, b] : exchanges) {
      ternq::linalg::swap_symmetric_lower(h_ref, static_cast<Eigen::Index>(first), static_cast<Eigen::Index>(a),
                                          static_cast<Eigen::Index>(b));
      w_ref.col(static_cast<Eigen::Index>(a)).swap(w_ref.col(static_cast<Eigen::Index>(b)));
    }
    const ternq::composed_exchanges x = ternq::compose_exchanges(first, m, exchanges);
    CHECK(x.moved.size() <= 2 * exchanges.size());
    CHECK(std::is_sorted(x.moved.begin(), x.moved.end()));
    CHECK(std::find(x.moved.begin(), x.moved.end(), 17) == x.moved.end());  // exchanged twice: back in place
    // what the device's four kernels do: save the moved columns and rows, then place them
    const std::size_t r = static_cast<std::size_t>(m) - first;
    const auto lower = [&](const Eigen::MatrixXd& a, std::size_t p, std::size_t q) {
      return a(static_cast<Eigen::Index>(std::max(p, q)), static_cast<Eigen::Index>(std::min(p, q)));
    };
    std::vector<Eigen::VectorXd> saved_columns;
    std::vector<std::vector<double>> saved_rows;
    for (const std::size_t a : x.moved) {
      saved_columns.emplace_back(w.col(static_cast<Eigen::Index>(a)));
      std::vector<double> row(r);
      for (std::size_t c = 0; c < r; ++c) row[c] = lower(h, a, first + c);
      saved_rows.push_back(row);
    }
    for (std::size_t k = 0; k < x.moved.size(); ++k) {
      const auto a = static_cast<Eigen::Index>(x.moved[k]);
      w.col(a) = saved_columns[x.from[k]];
      for (std::size_t c = 0; c < r; ++c) {
        const auto b = static_cast<Eigen::Index>(first + c);
        h(std::max(a, b), std::min(a, b)) = saved_rows[x.from[k]][x.source[c] - first];
      }
    }
    CHECK(w == w_ref);
    const auto f = static_cast<Eigen::Index>(first);
    CHECK(Eigen::MatrixXd(h.bottomRightCorner(m - f, m - f).triangularView<Eigen::Lower>()) ==
          Eigen::MatrixXd(h_ref.bottomRightCorner(m - f, m - f).triangularView<Eigen::Lower>()));
  }
  const std::vector<std::pair<std::size_t, std::size_t>> outside = {{3, 50}};
  CHECK_THROWS_WITH_AS(ternq::compose_exchanges(0, 40, outside), doctest::Contains("outside [0, 40)"), ternq::error);
}

TEST_CASE("block orders: act-order by decreasing diag(H), random is a seeded permutation") {
  Eigen::MatrixXd c = Eigen::MatrixXd::Zero(5, 5);
  c.diagonal() << 2.0, 0.0, 5.0, 2.0, 0.5;  // column 1 is dead: counts as 1
  const auto v = ternq::linalg::view_of(std::as_const(c));
  CHECK(ternq::initial_column_order(ternq::act_order{}, v) == std::vector<std::size_t>{2, 0, 3, 1, 4});
  CHECK(ternq::initial_column_order(ternq::sequential{}, v) == std::vector<std::size_t>{0, 1, 2, 3, 4});
  CHECK(ternq::initial_column_order(ternq::ssr{}, v) == std::vector<std::size_t>{0, 1, 2, 3, 4});
  const Eigen::MatrixXd big = Eigen::MatrixXd::Identity(50, 50);
  const auto r1 = ternq::initial_column_order(ternq::random_order{7}, ternq::linalg::view_of(big));
  const auto r2 = ternq::initial_column_order(ternq::random_order{7}, ternq::linalg::view_of(big));
  const auto r3 = ternq::initial_column_order(ternq::random_order{8}, ternq::linalg::view_of(big));
  CHECK(r1 == r2);
  CHECK(r1 != r3);
  CHECK_NOTHROW(ternq::require_permutation(r1, 50, "test"));
}
