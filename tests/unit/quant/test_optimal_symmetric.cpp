// SPDX-License-Identifier: MIT
// The exact symmetric optimum: brute force over all 3^g codes, the sorted reference, and TWN's gap.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "llm_like.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/quant/absmean.hpp"
#include "ternq/quant/detail/lane_masks.hpp"
#include "ternq/quant/optimal_symmetric.hpp"
#include "ternq/quant/twn.hpp"

namespace {

double group_error(std::span<const double> w, std::span<const std::int8_t> codes, double alpha) {
  double e = 0.0;
  for (std::size_t j = 0; j < w.size(); ++j) {
    const double d = w[j] - alpha * codes[j];
    e += d * d;
  }
  return e;
}

/// min over all T in {-1,0,1}^g and alpha of ||w - alpha T||^2, by enumeration.
double brute_force_minimum(std::span<const double> w) {
  const std::size_t g = w.size();
  std::size_t total = 1;
  for (std::size_t j = 0; j < g; ++j) total *= 3;
  double norm = 0.0;
  for (double x : w) norm += x * x;
  double best = norm;  // T = 0
  std::vector<int> t(g);
  for (std::size_t code = 0; code < total; ++code) {
    std::size_t c = code;
    double tw = 0.0, tt = 0.0;
    for (std::size_t j = 0; j < g; ++j) {
      t[j] = static_cast<int>(c % 3) - 1;
      c /= 3;
      tw += t[j] * w[j];
      tt += t[j] * t[j];
    }
    if (tt > 0) best = std::min(best, norm - tw * tw / tt);  // optimal alpha = tw / tt for these codes
  }
  return best;
}

std::vector<double> random_group(ternq::testing::rng& r, std::size_t g, int kind) {
  std::vector<double> w(g);
  const double mean = kind == 2 ? 0.7 : 0.0;
  for (auto& x : w) {
    x = mean + (kind == 1 ? r.student_t(3) : r.normal());
    if (kind == 3) x = std::round(x * 2.0) / 2.0;  // many exact ties
  }
  return w;
}

}  // namespace

TEST_CASE("the optimum equals the brute-force minimum over all 3^g codes, and TWN does not") {
  ternq::testing::rng r(2024);
  int twn_worse = 0;
  int cases = 0;
  for (std::size_t g = 1; g <= 8; ++g) {
    for (int trial = 0; trial < 60; ++trial) {
      const auto w = random_group(r, g, trial % 4);
      std::vector<std::int8_t> codes(g), twn_codes(g);
      const double alpha = ternq::optimal_symmetric_fit_group<double>(w, codes);
      const double reference = brute_force_minimum(w);
      const double found = group_error(w, codes, alpha);
      CHECK(found == doctest::Approx(reference).epsilon(1e-6).scale(1.0));
      const double twn_alpha = ternq::twn_fit_group<double>(w, twn_codes);
      const double twn_error = group_error(w, twn_codes, twn_alpha);
      CHECK(found <= twn_error + 1e-9);
      twn_worse += twn_error > reference + 1e-9 ? 1 : 0;
      ++cases;
    }
  }
  // The exact-optimum check has teeth: TWN's 0.75 rule misses the optimum on many groups.
  MESSAGE("TWN above the brute-force minimum on " << twn_worse << " of " << cases << " groups");
  CHECK(twn_worse > cases / 10);
}

TEST_CASE("the bucketed search agrees with the sorted reference bit for bit") {
  ternq::testing::rng r(99);
  std::vector<std::size_t> sizes = {17, 31, 64, 100, 128, 129, 256, 1000, 4096, 11008};
  ternq::optimal_symmetric_workspace<float> ws;
  for (std::size_t g : sizes) {
    for (int kind = 0; kind < 4; ++kind) {
      for (int trial = 0; trial < 6; ++trial) {
        const auto wd = random_group(r, g, kind);
        std::vector<float> w(wd.begin(), wd.end());
        if (trial == 5) w[g / 2] = 1e-41F;  // a denormal among normal values
        std::vector<std::int8_t> fast(g), sorted(g);
        const float a_fast = ternq::optimal_symmetric_fit_group<float>(w, fast, ws);
        const float a_sorted = ternq::optimal_symmetric_fit_group_sorted<float>(w, sorted);
        CHECK(a_fast == a_sorted);
        CHECK(fast == sorted);
      }
    }
  }
}

TEST_CASE("the AVX-512 search (groups of 17 to 128) agrees with the sorted reference bit for bit") {
  if (!ternq::simd_supported(ternq::simd_level::avx512)) {
    MESSAGE("skipped: this processor or build has no AVX-512 variant");
    return;
  }
  ternq::testing::rng r(7);
  ternq::optimal_symmetric_workspace<float> ws;
  ws.simd = ternq::simd_level::avx512;
  for (std::size_t g = 17; g <= 128; ++g) {
    for (int kind = 0; kind < 4; ++kind) {
      for (int trial = 0; trial < 8; ++trial) {
        const auto wd = random_group(r, g, kind);
        std::vector<float> w(wd.begin(), wd.end());
        if (trial == 5) w[g / 2] = 1e-41F;            // a denormal among normal values
        if (trial == 6) std::fill(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(g / 3), 0.0F);  // zeros
        if (trial == 7) w[g - 1] = 40.0F * (kind + 1);  // one outlier, last in the group
        std::vector<std::int8_t> fast(g), sorted(g);
        const float a_fast = ternq::optimal_symmetric_fit_group<float>(w, fast, ws);
        const float a_sorted = ternq::optimal_symmetric_fit_group_sorted<float>(w, sorted);
        CAPTURE(g);
        CAPTURE(kind);
        CAPTURE(trial);
        CHECK(a_fast == a_sorted);
        CHECK(fast == sorted);
      }
    }
  }
  // Exact ties of the objective at different k ({3, 1, 1, 1}: 9 = 36 / 4; a group of 0.5-multiples has many) take
  // the reference's tie rule: the smaller k.
  for (std::size_t g : {17U, 64U, 100U, 128U}) {
    std::vector<float> w(g, 0.0F);
    w[0] = -3.0F;
    w[1] = w[2] = w[3] = 1.0F;
    std::vector<std::int8_t> fast(g), sorted(g);
    CHECK(ternq::optimal_symmetric_fit_group<float>(w, fast, ws) ==
          ternq::optimal_symmetric_fit_group_sorted<float>(w, sorted));
    CHECK(fast == sorted);
    CHECK(std::count(fast.begin(), fast.end(), std::int8_t{0}) == static_cast<std::ptrdiff_t>(g - 1));
  }
  // Degenerate groups: all zero, all equal, denormals only.
  for (std::size_t g : {17U, 33U, 128U}) {
    for (const float v : {0.0F, -2.0F, 3e-42F}) {
      std::vector<float> w(g, v);
      w[g / 2] = v / 2;
      std::vector<std::int8_t> fast(g), sorted(g);
      CHECK(ternq::optimal_symmetric_fit_group<float>(w, fast, ws) ==
            ternq::optimal_symmetric_fit_group_sorted<float>(w, sorted));
      CHECK(fast == sorted);
    }
  }
}

TEST_CASE("the bucketed search handles heavy outliers, tiny ranges and all-equal groups") {
  std::vector<float> w(200, 0.01F);
  w[3] = 50.0F;  // one huge value: k = 1 wins or not depending on the rest
  std::vector<std::int8_t> fast(200), sorted(200);
  CHECK(ternq::optimal_symmetric_fit_group<float>(w, fast) ==
        ternq::optimal_symmetric_fit_group_sorted<float>(w, sorted));
  CHECK(fast == sorted);

  std::vector<float> constant(300, -2.0F);
  std::vector<std::int8_t> codes(300);
  CHECK(ternq::optimal_symmetric_fit_group<float>(constant, codes) == 2.0F);
  CHECK(std::all_of(codes.begin(), codes.end(), [](std::int8_t c) { return c == -1; }));

  std::vector<float> zero(300, 0.0F);
  CHECK(ternq::optimal_symmetric_fit_group<float>(zero, codes) == 0.0F);
  CHECK(std::all_of(codes.begin(), codes.end(), [](std::int8_t c) { return c == 0; }));

  std::vector<double> tiny(64, 0.0);
  tiny[5] = 4.9e-324;  // the smallest denormal: bucket width overflows, the sorted path takes over
  tiny[6] = -4.9e-324;
  std::vector<std::int8_t> c64(64);
  CHECK(ternq::optimal_symmetric_fit_group<double>(tiny, c64) == 0.0F);  // 4.9e-324 rounds to 0 in float
  CHECK(c64[5] == 1);
  CHECK(c64[6] == -1);
}

TEST_CASE("on LLM-like weights the optimum beats TWN and absmean in E_w (per group, and on average)") {
  double sum_opt = 0, sum_twn = 0, sum_abs = 0, norm = 0;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    const auto w = ternq::testing::llm_like_weights(64, 512, seed);
    std::vector<std::int8_t> c_opt(128), c_twn(128), c_abs(128);
    for (Eigen::Index i = 0; i < w.rows(); ++i) {
      for (Eigen::Index k = 0; k < 4; ++k) {
        const std::span<const float> g(&w(i, 128 * k), 128);
        const std::vector<double> gd(g.begin(), g.end());
        const double e_opt = group_error(gd, c_opt, ternq::optimal_symmetric_fit_group(g, std::span(c_opt)));
        const double e_twn = group_error(gd, c_twn, ternq::twn_fit_group(g, std::span(c_twn)));
        const double e_abs = group_error(gd, c_abs, ternq::absmean_fit_group(g, std::span(c_abs)));
        CHECK(e_opt <= e_twn * (1 + 1e-6));
        CHECK(e_opt <= e_abs * (1 + 1e-6));
        sum_opt += e_opt;
        sum_twn += e_twn;
        sum_abs += e_abs;
        for (double x : gd) norm += x * x;
      }
    }
  }
  MESSAGE("mean relative E_w on LLM-like weights (g128): absmean " << sum_abs / norm << ", TWN " << sum_twn / norm
                                                                   << ", optimal " << sum_opt / norm);
  CHECK(sum_opt < sum_twn);
  CHECK(sum_twn < sum_abs);
}

TEST_CASE("lanes_below: the tail mask of the AVX-512 loops, against a lane-by-lane count") {
  for (std::size_t n = 0; n <= 40; ++n) {
    for (std::size_t j = 0; j <= 40; ++j) {
      std::uint32_t m8 = 0, m16 = 0;
      for (std::size_t lane = 0; lane < 16; ++lane) {
        if (j + lane < n) {
          m16 |= 1U << lane;
          if (lane < 8) m8 |= 1U << lane;
        }
      }
      CHECK(ternq::detail::lanes_below<std::uint8_t>(n, j) == m8);
      CHECK(ternq::detail::lanes_below<std::uint16_t>(n, j) == m16);
    }
  }
}
