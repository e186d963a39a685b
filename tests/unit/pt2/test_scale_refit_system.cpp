// SPDX-License-Identifier: MIT
// The arithmetic of one row's scale-refit system as the device runs it (quant/scale_refit_system.hpp), checked on
// the CPU against independent formulations: the padded system's Cholesky solution against the active subsystem's
// LDLT, its pseudo-inverse against the complete orthogonal decomposition's least-norm solution, the conditioning
// test against the condition number, and the row's quadratic against the output error computed from the residual.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <Eigen/Dense>

#include "layer_problems.hpp"
#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/quant/scale_refit_system.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;

/// Row `i`'s system in the original column order: `S` (`cols x groups`, the row's codes of group g in column g),
/// `A = S^T C S`, `b = S^T C w`, `wcw = w^T C w`.
struct row_system {
  Eigen::MatrixXd s;
  Eigen::MatrixXd a;
  Eigen::VectorXd b;
  Eigen::VectorXd w;
  double wcw = 0.0;
};

row_system system_of(const ternq::ternary_matrix& q, const row_matrix& w, const Eigen::MatrixXd& c, std::size_t i) {
  row_system out;
  const auto n = static_cast<Eigen::Index>(q.cols());
  out.s = Eigen::MatrixXd::Zero(n, static_cast<Eigen::Index>(q.groups_per_row()));
  for (std::size_t j = 0; j < q.cols(); ++j) {
    out.s(static_cast<Eigen::Index>(q.original_column(j)), static_cast<Eigen::Index>(q.layout().group_of(j))) =
        q.row_codes(i)[j];
  }
  out.w = w.row(static_cast<Eigen::Index>(i)).transpose().cast<double>();
  out.a = out.s.transpose() * c * out.s;
  out.b = out.s.transpose() * c * out.w;
  out.wcw = out.w.dot(c * out.w);
  return out;
}

/// The device's padded system, its right-hand side and which groups are active, built with the shared functions.
struct padded_system {
  Eigen::MatrixXd f;
  Eigen::VectorXd rhs;
  std::vector<bool> active;
};

padded_system padded(const row_system& r) {
  const Eigen::Index g = r.a.rows();
  padded_system out;
  out.active.assign(static_cast<std::size_t>(g), false);
  double largest = 0.0;
  for (Eigen::Index k = 0; k < g; ++k) {
    out.active[static_cast<std::size_t>(k)] = ternq::detail::refit_group_active(r.a(k, k));
    if (out.active[static_cast<std::size_t>(k)]) largest = std::max(largest, r.a(k, k));
  }
  const double pad = ternq::detail::refit_pad(largest);
  out.f.resize(g, g);
  out.rhs.resize(g);
  for (Eigen::Index h = 0; h < g; ++h) {
    out.rhs(h) = out.active[static_cast<std::size_t>(h)] ? r.b(h) : 0.0;
    for (Eigen::Index k = 0; k < g; ++k) {
      out.f(k, h) = ternq::detail::refit_padded_entry(r.a(k, h), out.active[static_cast<std::size_t>(k)],
                                                      out.active[static_cast<std::size_t>(h)], k == h, pad);
    }
  }
  return out;
}

/// The CPU's way: the active subsystem, solved by `solve`, scattered back with zeros elsewhere.
template <class Solve>
Eigen::VectorXd active_solution(const row_system& r, const std::vector<bool>& active, Solve solve) {
  std::vector<Eigen::Index> on;
  for (std::size_t k = 0; k < active.size(); ++k) {
    if (active[k]) on.push_back(static_cast<Eigen::Index>(k));
  }
  const auto n = static_cast<Eigen::Index>(on.size());
  Eigen::MatrixXd as(n, n);
  Eigen::VectorXd bs(n);
  for (Eigen::Index x = 0; x < n; ++x) {
    bs(x) = r.b(on[static_cast<std::size_t>(x)]);
    for (Eigen::Index y = 0; y < n; ++y)
      as(x, y) = r.a(on[static_cast<std::size_t>(x)], on[static_cast<std::size_t>(y)]);
  }
  const Eigen::VectorXd xs = solve(as, bs);
  Eigen::VectorXd out = Eigen::VectorXd::Zero(r.a.rows());
  for (Eigen::Index x = 0; x < n; ++x) out(on[static_cast<std::size_t>(x)]) = xs(x);
  return out;
}

/// The device's fallback: `V diag(1 / lambda) V^T rhs` over the eigenvalues above the shared cut.
Eigen::VectorXd pseudo_inverse_solve(const Eigen::MatrixXd& f, const Eigen::VectorXd& rhs) {
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(f);
  const Eigen::VectorXd lambda = eig.eigenvalues();
  const double cut =
      ternq::detail::refit_pseudo_inverse_cut(lambda.cwiseAbs().maxCoeff(), static_cast<std::size_t>(lambda.size()));
  Eigen::VectorXd y = eig.eigenvectors().transpose() * rhs;
  for (Eigen::Index k = 0; k < y.size(); ++k) y(k) = lambda(k) > cut ? y(k) / lambda(k) : 0.0;
  return eig.eigenvectors() * y;
}

bool factor_usable(const Eigen::LLT<Eigen::MatrixXd>& llt) {
  if (llt.info() != Eigen::Success) return false;
  const Eigen::VectorXd d = llt.matrixL().toDenseMatrix().diagonal();
  return ternq::detail::refit_factor_usable(d.minCoeff(), d.maxCoeff());
}

}  // namespace

TEST_CASE("the padded system's Cholesky solution is the active subsystem's, zeros elsewhere") {
  for (const bool llm : {false, true}) {
    CAPTURE(llm);
    row_matrix w = ternq::testing::weights_of(6, 96, 3, llm);
    const Eigen::MatrixXd c = ternq::testing::gram_of(300, 96, 3, llm);
    w.block(2, 32, 1, 32).setZero();  // row 2's middle group has no codes: inactive
    w.row(4).setZero();               // row 4 has none at all
    // group-wise, so a zero group of weights keeps all-zero codes (error compensation would fill it)
    const ternq::ternary_matrix q = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 32});
    for (std::size_t i = 0; i < 6; ++i) {
      CAPTURE(i);
      const row_system r = system_of(q, w, c, i);
      const auto [f, rhs, active] = padded(r);
      CHECK(std::ranges::count(active, false) == (i == 2 ? 1 : i == 4 ? 3 : 0));
      const Eigen::LLT<Eigen::MatrixXd> llt(f);
      REQUIRE(factor_usable(llt));
      const Eigen::VectorXd x = llt.solve(rhs);
      if (i == 4) {
        CHECK(x.isZero(0.0));  // the identity's solution of a zero right-hand side
        continue;
      }
      const Eigen::VectorXd expected = active_solution(
          r, active,
          [](const Eigen::MatrixXd& as, const Eigen::VectorXd& bs) { return Eigen::VectorXd(as.ldlt().solve(bs)); });
      CHECK((x - expected).norm() <= 1e-10 * expected.norm());
      for (std::size_t k = 0; k < active.size(); ++k) {
        if (!active[k]) CHECK(x(static_cast<Eigen::Index>(k)) == 0.0);
      }
    }
  }
}

TEST_CASE("a singular metric: the padded system's pseudo-inverse is the least-norm solution of the active part") {
  const row_matrix w = ternq::testing::weights_of(5, 96, 8, true);
  const ternq::ternary_matrix q = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 24});  // four groups
  const Eigen::VectorXd v = Eigen::VectorXd::LinSpaced(96, -1.0, 2.0);
  Eigen::MatrixXd two(96, 2);
  two.col(0) = v;
  two.col(1) = v.array().square();
  for (const Eigen::MatrixXd& c : {Eigen::MatrixXd(v * v.transpose()), Eigen::MatrixXd(two * two.transpose())}) {
    for (std::size_t i = 0; i < 5; ++i) {
      CAPTURE(i);
      const row_system r = system_of(q, w, c, i);
      const auto [f, rhs, active] = padded(r);
      CHECK(!factor_usable(Eigen::LLT<Eigen::MatrixXd>(f)));  // rank 1 or 2 of four: Cholesky must not be trusted
      const Eigen::VectorXd x = pseudo_inverse_solve(f, rhs);
      const Eigen::VectorXd expected =
          active_solution(r, active, [](const Eigen::MatrixXd& as, const Eigen::VectorXd& bs) {
            return Eigen::VectorXd(as.completeOrthogonalDecomposition().solve(bs));
          });
      CHECK((x - expected).norm() <= 1e-8 * expected.norm());
      // both are optima: the error at them is the smallest the row can have, and the same
      const double at_x = r.wcw - 2.0 * r.b.dot(x) + x.dot(r.a * x);
      const double at_expected = r.wcw - 2.0 * r.b.dot(expected) + expected.dot(r.a * expected);
      CHECK(std::abs(at_x - at_expected) <= 1e-9 * r.wcw);
    }
  }
}

TEST_CASE("the factor's conditioning test: never passes a matrix whose condition number exceeds its bound") {
  CHECK(ternq::detail::refit_factor_usable(1e-2, 1.0));
  CHECK(!ternq::detail::refit_factor_usable(1e-7, 1.0));  // (1e-7)^2 = 1e-14 < 1e-12
  CHECK(!ternq::detail::refit_factor_usable(0.0, 1.0));
  CHECK(!ternq::detail::refit_factor_usable(std::nan(""), 1.0));
  CHECK(!ternq::detail::refit_factor_usable(1.0, std::numeric_limits<double>::infinity()));
  ternq::testing::rng r(5);
  for (int trial = 0; trial < 200; ++trial) {
    // SPD matrices with eigenvalues spread over up to 16 decades
    const Eigen::Index n = 2 + trial % 7;
    Eigen::MatrixXd x(n, n);
    for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = r.normal();
    const Eigen::HouseholderQR<Eigen::MatrixXd> qr(x);
    const Eigen::MatrixXd u = qr.householderQ();
    Eigen::VectorXd lambda(n);
    for (Eigen::Index k = 0; k < n; ++k) lambda(k) = std::pow(10.0, -16.0 * r.uniform());
    const Eigen::MatrixXd a = u * lambda.asDiagonal() * u.transpose();
    const Eigen::LLT<Eigen::MatrixXd> llt(a);
    if (llt.info() != Eigen::Success) continue;
    const Eigen::VectorXd d = llt.matrixL().toDenseMatrix().diagonal();
    const double rcond = lambda.minCoeff() / lambda.maxCoeff();
    CAPTURE(rcond);
    // (lo / hi)^2 >= 1 / cond: a rejected matrix is surely ill-conditioned
    CHECK((d.minCoeff() / d.maxCoeff()) * (d.minCoeff() / d.maxCoeff()) >= rcond * (1 - 1e-6));
    if (rcond > 1e-12) CHECK(ternq::detail::refit_factor_usable(d.minCoeff(), d.maxCoeff()));
  }
}

TEST_CASE("the row's quadratic is the output error of its residual") {
  for (const bool llm : {false, true}) {
    CAPTURE(llm);
    const row_matrix w = ternq::testing::weights_of(4, 80, 12, llm);  // groups of 32, 32, 16
    const Eigen::MatrixXd c = ternq::testing::gram_of(200, 80, 12, llm);
    const ternq::ternary_matrix q = ternq::quantize(w, ternq::twn{.group_size = 32});
    for (std::size_t i = 0; i < 4; ++i) {
      const row_system r = system_of(q, w, c, i);
      Eigen::VectorXd s(3);
      for (Eigen::Index g = 0; g < 3; ++g)
        s(g) = q.scale(i, static_cast<std::size_t>(g)) * (1.0 + 0.1 * static_cast<double>(g));
      const Eigen::VectorXd e = r.w - r.s * s;
      const double direct = e.dot(c * e);
      const double shared = ternq::detail::refit_row_error(r.a.data(), r.b.data(), r.wcw, s.data(), 3);
      CHECK(std::abs(shared - direct) <= 1e-10 * r.wcw);
    }
  }
}
