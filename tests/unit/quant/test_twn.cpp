// SPDX-License-Identifier: MIT
// TWN: the 0.75 threshold rule, its strict comparison, the least-squares scale, degenerate groups.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "llm_like.hpp"
#include "ternq/quant/twn.hpp"

TEST_CASE("TWN on a hand-computed group") {
  const std::vector<float> w = {0.9F, -0.2F, 0.1F, -0.5F};
  std::vector<std::int8_t> codes(4);
  // mean|w| = 0.425, Delta = 0.31875: only 0.9 and -0.5 survive; alpha = (0.9 + 0.5) / 2.
  const float alpha = ternq::twn_fit_group<float>(w, codes);
  CHECK(codes == std::vector<std::int8_t>{1, 0, 0, -1});
  CHECK(alpha == doctest::Approx(0.7).epsilon(1e-7));
}

TEST_CASE("TWN's comparison is strict: |w| == Delta maps to zero") {
  const std::vector<double> w = {3.0, -1.0};  // ratio 0.5: Delta = 0.5 * 2 = 1
  std::vector<std::int8_t> codes(2);
  CHECK(ternq::twn_fit_group<double>(w, codes, 0.5) == 3.0F);
  CHECK(codes == std::vector<std::int8_t>{1, 0});
}

TEST_CASE("TWN's scale is the least-squares scale of its codes") {
  const auto w = ternq::testing::llm_like_weights(8, 256, 11);
  std::vector<std::int8_t> codes(256);
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    const std::span<const float> g(&w(i, 0), 256);
    const double alpha = ternq::twn_fit_group(g, std::span<std::int8_t>(codes));
    double tw = 0.0, tt = 0.0;
    for (std::size_t j = 0; j < 256; ++j) {
      tw += codes[j] * static_cast<double>(g[j]);
      tt += codes[j] * codes[j];
    }
    CHECK(alpha == doctest::Approx(tw / tt).epsilon(1e-6));
    // d/dalpha ||w - alpha T||^2 = 0 at the least-squares scale
    CHECK(std::abs(tw - alpha * tt) <= 1e-5 * std::abs(tw));
  }
}

TEST_CASE("TWN degenerate groups and bad ratios") {
  std::vector<std::int8_t> codes(4);
  const std::vector<float> zero(4, 0.0F);
  CHECK(ternq::twn_fit_group<float>(zero, codes) == 0.0F);
  CHECK(codes == std::vector<std::int8_t>(4, 0));
  const std::vector<float> constant(4, 0.3F);
  CHECK(ternq::twn_fit_group<float>(constant, codes) == 0.3F);
  CHECK(codes == std::vector<std::int8_t>(4, 1));
  // a ratio above max/mean leaves nothing above the threshold
  CHECK(ternq::twn_fit_group<float>(constant, codes, 1.5) == 0.0F);
  CHECK(codes == std::vector<std::int8_t>(4, 0));
  CHECK_THROWS_WITH_AS(ternq::twn_fit_group<float>(constant, codes, -0.1),
                       "[ternq.invalid_argument] twn_fit_group: threshold_ratio must be finite and >= 0 (got -0.1)",
                       ternq::error);
}
