// SPDX-License-Identifier: MIT
// Adam: a hand-computed two-step trace, bias correction, thread independence, bad options; the ramp schedule.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ternq/optim/adam.hpp"
#include "ternq/optim/schedule.hpp"

TEST_CASE("Adam follows a hand-computed two-step trace") {
  // One parameter p0 = 1, lr 0.1, betas 0.9 / 0.999, eps 1e-8; gradients 2 then -1.
  //   step 1: m = 0.2, v = 0.004; m_hat = 0.2 / 0.1 = 2, v_hat = 0.004 / 0.001 = 4
  //           p = 1 - 0.1 * 2 / (2 + 1e-8) = 0.9000000005
  //   step 2: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996
  //           m_hat = 0.08 / 0.19, v_hat = 0.004996 / 0.001999
  //           p = 0.9000000005 - 0.1 * (0.08 / 0.19) / (sqrt(0.004996 / 0.001999) + 1e-8)
  ternq::optim::adam<double> adam(1, {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-8});
  std::vector<double> p = {1.0};
  std::vector<double> g = {2.0};
  adam.step(p, g);
  CHECK(adam.steps() == 1);
  CHECK(adam.first_moment()[0] == doctest::Approx(0.2).epsilon(1e-15));
  CHECK(adam.second_moment()[0] == doctest::Approx(0.004).epsilon(1e-15));
  CHECK(p[0] == doctest::Approx(1.0 - 0.1 * 2.0 / (2.0 + 1e-8)).epsilon(1e-15));
  g[0] = -1.0;
  adam.step(p, g);
  const double expected = 0.9000000005 - 0.1 * (0.08 / 0.19) / (std::sqrt(0.004996 / 0.001999) + 1e-8);
  CHECK(adam.first_moment()[0] == doctest::Approx(0.08).epsilon(1e-14));
  CHECK(adam.second_moment()[0] == doctest::Approx(0.004996).epsilon(1e-14));
  CHECK(p[0] == doctest::Approx(expected).epsilon(1e-14));
}

TEST_CASE("Adam's first step moves every parameter by lr against the sign of its gradient") {
  // Bias correction makes step 1 exactly lr * g / (|g| + eps) whatever the scale of g.
  ternq::optim::adam<float> adam(4, {.lr = 0.01});
  std::vector<float> p = {0.0F, 0.0F, 0.0F, 0.0F};
  const std::vector<float> g = {1e-3F, -5.0F, 1e4F, 0.0F};
  adam.step(p, g);
  CHECK(p[0] == doctest::Approx(-0.01).epsilon(1e-4));
  CHECK(p[1] == doctest::Approx(0.01).epsilon(1e-6));
  CHECK(p[2] == doctest::Approx(-0.01).epsilon(1e-6));
  CHECK(p[3] == 0.0F);
}

TEST_CASE("Adam's update is bit-identical for any thread count") {
  const std::size_t n = 10000;  // more than two of the fixed chunks
  std::vector<double> reference(n, 0.5);
  std::vector<double> g(n);
  for (std::size_t i = 0; i < n; ++i) g[i] = std::sin(static_cast<double>(i));
  ternq::optim::adam<double> one(n, {});
  one.step(reference, g);
  one.step(reference, g);
  for (unsigned threads : {2U, 3U}) {
    std::vector<double> p(n, 0.5);
    ternq::optim::adam<double> many(n, {});
    many.step(ternq::cpu_exec{.threads = threads}, p, g);
    many.step(ternq::cpu_exec{.threads = threads}, p, g);
    CHECK(p == reference);
  }
}

TEST_CASE("Adam refuses bad options and mismatched spans") {
  using ternq::optim::adam;
  CHECK_THROWS_WITH_AS(adam<float>(3, {.lr = 0.0}), "[ternq.invalid_argument] adam: lr must be finite and > 0 (got 0)",
                       ternq::error);
  CHECK_THROWS_WITH_AS(adam<float>(3, {.lr = 1e-3, .beta1 = 1.0}),
                       "[ternq.invalid_argument] adam: beta1 must be in [0, 1) (got 1)", ternq::error);
  CHECK_THROWS_WITH_AS(adam<float>(3, {.lr = 1e-3, .beta2 = -0.5}),
                       "[ternq.invalid_argument] adam: beta2 must be in [0, 1) (got -0.5)", ternq::error);
  CHECK_THROWS_WITH_AS(adam<float>(3, {.epsilon = 0.0}),
                       "[ternq.invalid_argument] adam: epsilon must be finite and > 0 (got 0)", ternq::error);
  adam<float> a(3, {});
  std::vector<float> p(3), g(2);
  CHECK_THROWS_WITH_AS(a.step(p, g),
                       "[ternq.shape_mismatch] adam::step: 3 parameters and 2 gradients for an optimizer of 3",
                       ternq::error);
}

TEST_CASE("ramp schedule: s = (t / gamma) s0, then the final phase") {
  const ternq::optim::ramp_schedule sharpness{.peak = 30.0, .end = 0.8};
  CHECK(sharpness.at(0.0).value == 0.0);
  CHECK_FALSE(sharpness.at(0.0).after);
  CHECK(sharpness.at(0.4).value == doctest::Approx(15.0));
  CHECK(sharpness.at(0.8).value == doctest::Approx(30.0));
  CHECK_FALSE(sharpness.at(0.8).after);
  CHECK(sharpness.at(0.80001).after);
  CHECK(sharpness.at(1.0).after);
  // 10 steps: t = step / 10; steps 0..8 ramp (t <= 0.8), step 9 is the first of the final phase.
  for (std::size_t k = 0; k <= 8; ++k) {
    CHECK_FALSE(sharpness.at_step(k, 10).after);
    CHECK(sharpness.at_step(k, 10).value == doctest::Approx(30.0 * static_cast<double>(k) / 8.0));
  }
  CHECK(sharpness.at_step(9, 10).after);
  const ternq::optim::ramp_schedule whole{.peak = 2.0, .end = 1.0};
  for (std::size_t k = 0; k < 5; ++k) CHECK_FALSE(whole.at_step(k, 5).after);
}
