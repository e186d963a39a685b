// SPDX-License-Identifier: MIT
// Softened ternarization: limits, derivatives against finite differences, the series switch, extreme arguments.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ternq/quant/catq/soft_ternarize.hpp"

namespace {

using ternq::soft_ternarize;
using ternq::soft_ternarize_grad;

// Central differences in double: step h, error O(h^2 f''') + O(eps f / h).
double d_dz(double z, double s, double d, double h) {
  return (soft_ternarize(z + h, s, d) - soft_ternarize(z - h, s, d)) / (2 * h);
}
double d_dd(double z, double s, double d, double h) {
  return (soft_ternarize(z, s, d + h) - soft_ternarize(z, s, d - h)) / (2 * h);
}

}  // namespace

TEST_CASE("f is the identity at s = 0 and close to it for tiny s") {
  for (double z : {-3.0, -0.7, -0.1, 0.0, 0.2, 0.5, 1.0, 4.0}) {
    const auto at0 = soft_ternarize_grad(z, 0.0, 0.5);
    CHECK(at0.value == z);
    CHECK(at0.d_z == 1.0);
    CHECK(at0.d_delta == 0.0);
    CHECK(soft_ternarize(z, 1e-8, 0.5) == doctest::Approx(z).epsilon(1e-15));
    CHECK(soft_ternarize(static_cast<float>(z), 0.0F, 0.5F) == static_cast<float>(z));
  }
}

TEST_CASE("f tends to the hard step sign(z) [|z| > Delta] for large s") {
  for (double z : {-3.0, -0.7, -0.45, -0.1, 0.0, 0.2, 0.55, 1.0, 4.0}) {
    const double hard = ternq::hard_ternarize(z, 0.5);
    CHECK(soft_ternarize(z, 1e3, 0.5) == doctest::Approx(hard).epsilon(1e-12));
    const auto inf = soft_ternarize_grad(z, std::numeric_limits<double>::infinity(), 0.5);
    CHECK(inf.value == hard);
    CHECK(inf.d_z == 0.0);
    CHECK(inf.d_delta == 0.0);
  }
  // At s0 = 30 the step is already sharp a little away from the thresholds.
  CHECK(soft_ternarize(0.8, 30.0, 0.5) == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(std::abs(soft_ternarize(0.2, 30.0, 0.5)) < 1e-6);
  // Exactly at a threshold the limit is the midpoint.
  CHECK(soft_ternarize(0.5, 1e3, 0.5) == doctest::Approx(0.5).epsilon(1e-12));
  CHECK(ternq::hard_ternarize(0.5, 0.5) == 0);
  CHECK(ternq::hard_ternarize(-0.5000001, 0.5) == -1);
}

TEST_CASE("no overflow and no NaN for huge arguments or huge sharpness") {
  for (double s : {1e2, 1e8, 1e300, std::numeric_limits<double>::max()}) {
    for (double z : {-1e300, -1e10, -0.5, 0.0, 0.49, 0.5, 0.51, 1e10, 1e300}) {
      const auto r = soft_ternarize_grad(z, s, 0.5);
      CHECK(std::isfinite(r.value));
      CHECK(std::isfinite(r.d_z));
      CHECK(std::isfinite(r.d_delta));
      CHECK(std::abs(r.value) <= 1.0);
    }
  }
  for (float s : {1e2F, 1e30F, std::numeric_limits<float>::max()}) {
    for (float z : {-1e30F, -0.5F, 0.0F, 0.51F, 1e30F}) {
      const auto r = soft_ternarize_grad(z, s, 0.5F);
      CHECK(std::isfinite(r.value));
      CHECK(std::isfinite(r.d_z));
      CHECK(std::isfinite(r.d_delta));
    }
  }
  // Far from the thresholds sech^2 underflows to exactly zero instead of 0 * inf.
  const auto far = soft_ternarize_grad(50.0, 1e6, 0.5);
  CHECK(far.value == 1.0);
  CHECK(far.d_z == 0.0);
  CHECK(far.d_delta == 0.0);
}

TEST_CASE("derivatives match central finite differences at s = 0, a middle s and s0") {
  // s = 0 and s = 1e-6 take the series branch; 0.3, 7 and 30 the closed form.
  for (double s : {0.0, 1e-6, 0.3, 7.0, 30.0}) {
    for (double d : {0.1, 0.5, 1.3}) {
      for (double z : {-2.1, -0.9, -0.43, -0.05, 0.0, 0.17, 0.61, 1.4, 3.0}) {
        const double h = 1e-6;
        const auto r = soft_ternarize_grad(z, s, d);
        const double scale = 1.0 + s;  // derivatives grow like s near the thresholds
        CHECK(r.d_z == doctest::Approx(d_dz(z, s, d, h)).epsilon(1e-7).scale(scale));
        CHECK(r.d_delta == doctest::Approx(d_dd(z, s, d, h)).epsilon(1e-7).scale(scale));
      }
    }
  }
}

TEST_CASE("the series and the closed form agree across the switch point") {
  // u = s max(1, |z|, |Delta|) crosses the switch; f, f_z and f_D must be continuous there to a few eps.
  for (double z : {-3.0, -1.0, -0.3, 0.0, 0.25, 0.7, 2.0}) {
    for (double d : {0.2, 0.5, 1.5}) {
      const double r = std::max({1.0, std::abs(z), d});
      const double switch_s = ternq::detail::soft_series_limit<double> / r;
      const auto below = soft_ternarize_grad(z, std::nextafter(switch_s, 0.0), d);
      const auto above = soft_ternarize_grad(z, switch_s * (1 + 1e-15), d);
      CHECK(std::abs(below.value - above.value) <= 8e-16 * r);
      CHECK(std::abs(below.d_z - above.d_z) <= 8e-16 * r);
      CHECK(std::abs(below.d_delta - above.d_delta) <= 8e-16 * r);
    }
  }
  for (float z : {-2.0F, -0.3F, 0.0F, 0.7F}) {
    const float r = std::max(1.0F, std::abs(z));
    const float switch_s = ternq::detail::soft_series_limit<float> / r;
    const auto below = soft_ternarize_grad(z, std::nextafter(switch_s, 0.0F), 0.5F);
    const auto above = soft_ternarize_grad(z, std::nextafter(switch_s, 1.0F), 0.5F);
    CHECK(std::abs(below.value - above.value) <= 8e-7F * r);
    CHECK(std::abs(below.d_z - above.d_z) <= 8e-7F * r);
    CHECK(std::abs(below.d_delta - above.d_delta) <= 8e-7F * r);
  }
}

TEST_CASE("the float branch matches the double reference to float accuracy") {
  for (float s : {0.0F, 0.005F, 0.3F, 7.0F, 30.0F}) {
    for (float z : {-2.1F, -0.43F, 0.0F, 0.17F, 0.61F, 1.4F}) {
      const auto f = soft_ternarize_grad(z, s, 0.5F);
      const auto d = soft_ternarize_grad(static_cast<double>(z), static_cast<double>(s), 0.5);
      CHECK(f.value == doctest::Approx(d.value).epsilon(1e-5).scale(1.0));
      CHECK(f.d_z == doctest::Approx(d.d_z).epsilon(1e-5).scale(1.0 + s));
      CHECK(f.d_delta == doctest::Approx(d.d_delta).epsilon(1e-5).scale(1.0 + s));
    }
  }
}

TEST_CASE_TEMPLATE("the span form gives the scalar values element by element", S, float, double) {
  std::vector<S> z;
  for (int j = -40; j <= 40; ++j) z.push_back(static_cast<S>(j) * S(0.061));
  std::vector<S> f(z.size()), fz(z.size()), fd(z.size());
  for (S s : {S(0), S(1e-3), S(0.4), S(12), S(30)}) {
    ternq::soft_ternarize_grad<S>(z, s, S(0.45), f, fz, fd);
    for (std::size_t j = 0; j < z.size(); ++j) {
      const auto r = soft_ternarize_grad(z[j], s, S(0.45));
      const S tol = std::numeric_limits<S>::epsilon() * 4 * (1 + s);
      CHECK(std::abs(f[j] - r.value) <= tol);
      CHECK(std::abs(fz[j] - r.d_z) <= tol);
      CHECK(std::abs(fd[j] - r.d_delta) <= tol);
    }
  }
}

TEST_CASE("bad arguments are refused") {
  CHECK_THROWS_WITH_AS(soft_ternarize(0.3, -1.0, 0.5),
                       "[ternq.invalid_argument] soft_ternarize_grad: sharpness s must be >= 0 (got -1)", ternq::error);
  std::vector<double> z(3), f(3), fz(2), fd(3);
  CHECK_THROWS_WITH_AS(soft_ternarize_grad<double>(z, 1.0, 0.5, f, fz, fd),
                       "[ternq.shape_mismatch] soft_ternarize_grad: outputs of 3, 2 and 3 elements for 3 inputs",
                       ternq::error);
}
