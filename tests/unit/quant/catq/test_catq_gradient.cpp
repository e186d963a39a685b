// SPDX-License-Identifier: MIT
// CAT-Q objective: analytic gradients of every logit against central finite differences, losses against references.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;
using dmatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct fixture {
  dmatrix w;
  Eigen::MatrixXd gram;
  dmatrix x;
  // 6 x 40 with groups of 16: two full groups and a short one of 8.
  fixture() : w(ternq::testing::llm_like_weights(6, 40, 3).cast<double>()) {
    x = ternq::testing::llm_like_activations(64, 40, 3).cast<double>();
    gram = x.transpose() * x;
  }
};

/// Logits spread over [-1.2, 1.2] so that no factor sits at its symmetric point.
void randomize(ternq::catq_modulation<double>& mod, std::uint64_t seed) {
  ternq::testing::rng r(seed);
  for (double& b : mod.logits()) b = 2.4 * r.uniform() - 1.2;
}

/// Every analytic gradient against a central difference of the loss.
template <class Objective>
void check_gradient(const Objective& objective, ternq::catq_modulation<double> mod, ternq::catq_phase phase,
                    double rel_tol) {
  std::vector<double> grad(mod.logits().size());
  const auto pass = objective.gradient(mod, phase, grad);
  CHECK(pass.loss == doctest::Approx(objective.value(mod, phase)).epsilon(1e-14));
  double largest = 0.0;
  for (double g : grad) largest = std::max(largest, std::abs(g));
  REQUIRE(largest > 0.0);
  const double h = 1e-6;
  for (std::size_t p = 0; p < grad.size(); ++p) {
    const double b = mod.logits()[p];
    mod.logits()[p] = b + h;
    const double up = objective.value(mod, phase);
    mod.logits()[p] = b - h;
    const double down = objective.value(mod, phase);
    mod.logits()[p] = b;
    const double fd = (up - down) / (2 * h);
    INFO("logit ", p, " (block ", p / mod.groups(), "), s = ", phase.sharpness, ", hard = ", phase.hard);
    CHECK(std::abs(grad[p] - fd) <= rel_tol * largest);
  }
}

}  // namespace

TEST_CASE("Gram loss: every logit's gradient matches central differences at s = 0, a middle s, s0 and hard") {
  const fixture fx;
  const auto w = ternq::as_const_view(fx.w);
  const ternq::catq_objective<double, ternq::gram_loss<double>> objective(
      ternq::cpu_exec{.threads = 1}, w, ternq::gram_loss<double>(ternq::as_const_view(fx.gram)));
  for (bool centre : {true, false}) {
    ternq::catq_modulation<double> mod(ternq::cpu_exec{}, w, 16, ternq::catq_priors{.centre = centre});
    REQUIRE(mod.groups() == 18);
    randomize(mod, centre ? 1 : 2);
    for (double s : {0.0, 3.0, 30.0}) check_gradient(objective, mod, ternq::catq_phase::soft(s), 1e-7);
    // Hard phase: only alpha has a gradient (What = alpha T); the codes get none.
    check_gradient(objective, mod, ternq::catq_phase::hard_step(), 1e-7);
    std::vector<double> grad(mod.logits().size());
    objective.gradient(mod, ternq::catq_phase::hard_step(), grad);
    for (std::size_t g = 0; g < mod.groups(); ++g) {
      CHECK(grad[g] == 0.0);
      CHECK(grad[2 * mod.groups() + g] == 0.0);
    }
  }
}

TEST_CASE("activation losses (mean squared, Huber): gradients match central differences") {
  const fixture fx;
  const auto w = ternq::as_const_view(fx.w);
  ternq::catq_modulation<double> mod(ternq::cpu_exec{}, w, 16, ternq::catq_priors{});
  randomize(mod, 3);
  for (auto kind : {ternq::activation_loss_kind::mean_squared, ternq::activation_loss_kind::huber}) {
    // A Huber transition inside the range of the residuals, so both branches are exercised.
    const ternq::activation_loss_options options{.kind = kind, .huber_delta = 0.05};
    const ternq::catq_objective<double, ternq::activation_loss<double>> objective(
        ternq::cpu_exec{.threads = 1}, w, ternq::activation_loss<double>(ternq::as_const_view(fx.x), 6, options));
    for (double s : {0.0, 3.0, 30.0}) check_gradient(objective, mod, ternq::catq_phase::soft(s), 1e-7);
  }
}

TEST_CASE("the Gram loss is E_x: hard-phase value equals output_error of the hard matrix") {
  const fixture fx;
  const auto w = ternq::as_const_view(fx.w);
  const ternq::catq_objective<double, ternq::gram_loss<double>> objective(
      ternq::cpu_exec{}, w, ternq::gram_loss<double>(ternq::as_const_view(fx.gram)));
  ternq::catq_modulation<double> mod(ternq::cpu_exec{}, w, 16, ternq::catq_priors{});
  randomize(mod, 4);
  const ternq::ternary_matrix q = ternq::catq_hard_matrix(ternq::cpu_exec{}, w, mod);
  CHECK(q.is_symmetric());
  // The deployed matrix stores alpha as float: agreement to float rounding of the scales.
  CHECK(objective.value(mod, ternq::catq_phase::hard_step()) ==
        doctest::Approx(ternq::output_error(fx.w, q, fx.gram)).epsilon(1e-6));
  // At s = 0 the step is the identity: What = alpha z = w - mu, so E = mu per group.
  dmatrix e(6, 40);
  for (std::size_t i = 0; i < 6; ++i) {
    for (std::size_t j = 0; j < 40; ++j)
      e(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = mod.grid(i, j / 16).mu;
  }
  const double expected = (e * fx.gram).cwiseProduct(e).sum();
  CHECK(objective.value(mod, ternq::catq_phase::soft(0.0)) == doctest::Approx(expected).epsilon(1e-12));
  // The MSE activation loss is E_x / (rows tokens).
  const ternq::catq_objective<double, ternq::activation_loss<double>> mse(
      ternq::cpu_exec{}, w,
      ternq::activation_loss<double>(ternq::as_const_view(fx.x), 6,
                                     {.kind = ternq::activation_loss_kind::mean_squared}));
  CHECK(mse.value(mod, ternq::catq_phase::hard_step()) ==
        doctest::Approx(ternq::output_error(fx.w, q, fx.gram) / (6.0 * 64.0)).epsilon(1e-6));
}

TEST_CASE("objective passes are bit-identical for threads 1, 2 and 3") {
  // 300 rows: blocks of 128, 128 and 44 rows.
  const row_matrix wf = ternq::testing::llm_like_weights(300, 64, 5);
  const row_matrix xf = ternq::testing::llm_like_activations(128, 64, 5);
  const Eigen::MatrixXd gram = xf.cast<double>().transpose() * xf.cast<double>();
  const auto w = ternq::as_const_view(wf);
  ternq::catq_modulation<float> mod(ternq::cpu_exec{}, w, 32, ternq::catq_priors{});
  std::vector<float> reference(mod.logits().size());
  std::vector<float> grad(mod.logits().size());
  for (auto phase : {ternq::catq_phase::soft(0.0), ternq::catq_phase::soft(9.0), ternq::catq_phase::hard_step()}) {
    const ternq::catq_objective<float, ternq::gram_loss<float>> one(
        ternq::cpu_exec{.threads = 1}, w, ternq::gram_loss<float>(ternq::as_const_view(gram)));
    const auto ref = one.gradient(mod, phase, reference, true);
    for (unsigned t : {2U, 3U}) {
      const ternq::catq_objective<float, ternq::gram_loss<float>> many(
          ternq::cpu_exec{.threads = t}, w, ternq::gram_loss<float>(ternq::as_const_view(gram)));
      const auto pass = many.gradient(mod, phase, grad, true);
      CHECK(pass.loss == ref.loss);
      CHECK(*pass.hard_loss == *ref.hard_loss);
      CHECK(grad == reference);
    }
  }
}

TEST_CASE("the activation losses' rho and rho' (shared with the device): derivative by central differences") {
  const double delta = 0.7;
  for (const auto kind : {ternq::activation_loss_kind::mean_squared, ternq::activation_loss_kind::huber}) {
    CAPTURE(static_cast<int>(kind));
    for (const double r : {-3.0, -0.71, -0.69, -0.2, 0.0, 0.35, 0.69, 0.71, 2.5}) {
      CAPTURE(r);
      const double h = 1e-6;
      const double numeric =
          (ternq::detail::activation_rho(kind, delta, r + h) - ternq::detail::activation_rho(kind, delta, r - h)) /
          (2 * h);
      const double analytic = ternq::detail::activation_rho_derivative(kind, delta, r);
      CHECK(analytic == doctest::Approx(numeric).epsilon(1e-7).scale(1.0));
      // the float form the step uses is the double one rounded
      const float f = ternq::detail::activation_rho_derivative(kind, static_cast<float>(delta), static_cast<float>(r));
      CHECK(static_cast<double>(f) == doctest::Approx(analytic).epsilon(1e-6));
    }
  }
  // Huber is continuous at the transition and linear beyond it
  const auto huber = ternq::activation_loss_kind::huber;
  CHECK(ternq::detail::activation_rho(huber, delta, delta) == doctest::Approx(0.5 * delta * delta));
  CHECK(ternq::detail::activation_rho(huber, delta, -2 * delta) == doctest::Approx(1.5 * delta * delta));
  CHECK(ternq::detail::activation_rho(ternq::activation_loss_kind::mean_squared, delta, -3.0) == 9.0);
}
