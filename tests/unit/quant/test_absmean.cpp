// SPDX-License-Identifier: MIT
// absmean (BitNet b1.58): hand-computed groups, the rounding tie, degenerate groups, an independent reference.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "llm_like.hpp"
#include "ternq/quant/absmean.hpp"
#include "ternq/quant/detail/threshold.hpp"

TEST_CASE("absmean on a hand-computed group") {
  const std::vector<float> w = {0.4F, -0.1F, 0.05F, -0.6F};
  std::vector<std::int8_t> codes(4);
  const float alpha = ternq::absmean_fit_group<float>(w, codes);
  CHECK(alpha == doctest::Approx(0.2875).epsilon(1e-7));  // (0.4 + 0.1 + 0.05 + 0.6) / 4
  CHECK(codes == std::vector<std::int8_t>{1, 0, 0, -1});  // step at 0.14375
}

TEST_CASE("absmean rounds |w| = gamma/2 away from zero, as lroundf does") {
  // gamma = (3 + 1) / 2 = 2, so |w| = 1 sits exactly on the step.
  const std::vector<double> w = {3.0, -1.0};
  std::vector<std::int8_t> codes(2);
  CHECK(ternq::absmean_fit_group<double>(w, codes) == 2.0F);
  CHECK(codes == std::vector<std::int8_t>{1, -1});
  CHECK(std::lround(-1.0 / 2.0) == -1);
}

TEST_CASE("absmean degenerate groups: all zero, constant, single element") {
  std::vector<std::int8_t> codes(5);
  const std::vector<float> zero(5, 0.0F);
  CHECK(ternq::absmean_fit_group<float>(zero, codes) == 0.0F);
  CHECK(codes == std::vector<std::int8_t>(5, 0));

  const std::vector<float> constant(5, -0.75F);
  CHECK(ternq::absmean_fit_group<float>(constant, codes) == 0.75F);
  CHECK(codes == std::vector<std::int8_t>(5, -1));  // exact: alpha * T == w

  std::vector<std::int8_t> one(1);
  const std::vector<float> single = {2.5F};
  CHECK(ternq::absmean_fit_group<float>(single, one) == 2.5F);
  CHECK(one[0] == 1);
}

TEST_CASE("absmean agrees with an independent long-double formulation on LLM-like rows") {
  const auto w = ternq::testing::llm_like_weights(16, 384, 7);
  std::vector<std::int8_t> codes(128);
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    for (Eigen::Index k = 0; k < 3; ++k) {
      const std::span<const float> g(&w(i, 128 * k), 128);
      const float alpha = ternq::absmean_fit_group(g, std::span<std::int8_t>(codes));
      long double gamma = 0;
      for (float x : g) gamma += std::fabs(static_cast<long double>(x));
      gamma /= 128;
      CHECK(alpha == doctest::Approx(static_cast<double>(gamma)).epsilon(1e-7));
      for (std::size_t j = 0; j < 128; ++j) {
        const long r = std::lround(static_cast<double>(g[j] / gamma));
        CHECK(codes[j] == std::max(-1L, std::min(1L, r)));
      }
    }
  }
}

TEST_CASE("absmean rejects mismatched code spans") {
  const std::vector<float> w(4, 1.0F);
  std::vector<std::int8_t> codes(3);
  CHECK_THROWS_WITH_AS(ternq::absmean_fit_group<float>(w, codes),
                       "[ternq.shape_mismatch] absmean_fit_group: 3 codes for 4 weights", ternq::error);
}

TEST_CASE("exact thresholds: next_up/next_down match std::nextafter, at_least/at_most decide like double") {
  ternq::testing::rng r(5);
  for (int t = 0; t < 2000; ++t) {
    const float x = static_cast<float>(r.student_t(2) * std::pow(10.0, static_cast<int>(r.below(20)) - 10));
    CHECK(ternq::detail::next_up(x) == std::nextafter(x, std::numeric_limits<float>::infinity()));
    CHECK(ternq::detail::next_down(x) == std::nextafter(x, -std::numeric_limits<float>::infinity()));
    const double d = r.normal();
    CHECK(ternq::detail::next_up(d) == std::nextafter(d, std::numeric_limits<double>::infinity()));
    const double threshold = r.normal();
    const float lo = ternq::detail::at_least<float>(threshold);
    const float hi = ternq::detail::at_most<float>(threshold);
    CHECK(static_cast<double>(lo) >= threshold);
    CHECK(static_cast<double>(ternq::detail::next_down(lo)) < threshold);
    CHECK(static_cast<double>(hi) <= threshold);
    CHECK(static_cast<double>(ternq::detail::next_up(hi)) > threshold);
  }
  CHECK(ternq::detail::next_up(0.0F) == std::numeric_limits<float>::denorm_min());
  CHECK(ternq::detail::next_down(0.0F) == -std::numeric_limits<float>::denorm_min());
  CHECK(ternq::detail::next_up(-std::numeric_limits<float>::denorm_min()) == 0.0F);
}
