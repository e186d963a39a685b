// SPDX-License-Identifier: MIT
// CAT-Q's defaults (100 steps) against catq::paper() (ALGORITHMS.md §4 with 1000 steps, the defaults before).
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <Eigen/Core>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/ternq.hpp"

TEST_CASE("catq::paper() is §4's setup with 1000 steps, the library's defaults before") {
  const ternq::catq p = ternq::catq::paper();
  CHECK(p.group_size == ternq::group_size_option(128));
  CHECK(p.steps == 1000);
  CHECK(p.lr == 5e-3);
  CHECK(p.s0 == 30.0);
  CHECK(p.gamma == 0.8);
  CHECK(p.eval_every == 10);
  CHECK_FALSE(p.patience.has_value());
  CHECK_FALSE(p.refit_scales);
  CHECK(p.beta1 == 0.9);
  CHECK(p.beta2 == 0.999);
  CHECK(p.epsilon == 1e-8);
  CHECK(p.priors.scale == ternq::catq_scale_prior::absmean);
  CHECK(p.priors.centre);
  CHECK(p.priors.threshold == 0.5);
  // The defaults keep §4's priors, schedule shape (gamma) and evaluation period.
  const ternq::catq d{};
  CHECK(d.steps == 100);
  CHECK(d.gamma == p.gamma);
  CHECK(d.eval_every == p.eval_every);
  CHECK(d.priors.scale == p.priors.scale);
  CHECK(d.priors.threshold == p.priors.threshold);
}

TEST_CASE("in at most 100 steps the defaults reach paper()'s 1000-step hard E_x on LLM-like matrices") {
  struct shape {
    std::size_t rows, cols;
    ternq::group_size_option g;
  };
  const shape shapes[] = {{64, 256, 128}, {48, 200, 64}, {32, 96, ternq::per_row}, {24, 384, 128}};
  for (const shape& s : shapes) {
    for (std::uint64_t seed : {1ULL, 2ULL}) {
      const ternq::testing::row_matrix w = ternq::testing::llm_like_weights(s.rows, s.cols, seed);
      ternq::gram_accumulator acc(s.cols);
      acc.add(ternq::testing::llm_like_activations(512, s.cols, seed));
      const Eigen::MatrixXd& gram = acc.matrix();
      const ternq::cpu_exec exec{.threads = 2};

      ternq::catq paper = ternq::catq::paper();
      paper.group_size = s.g;
      const auto before = ternq::catq_calibrate(exec, w, gram, paper);
      ternq::catq defaults{.group_size = s.g};
      const auto after = ternq::catq_calibrate(exec, w, gram, defaults);
      // The optimizer alone, without the closed-form scales.
      defaults.refit_scales = false;
      const auto learned = ternq::catq_calibrate(exec, w, gram, defaults);

      const double e_before = ternq::relative_output_error(w, before.matrix, gram);
      const double e_after = ternq::relative_output_error(w, after.matrix, gram);
      const double e_learned = ternq::relative_output_error(w, learned.matrix, gram);
      INFO(s.rows, "x", s.cols, " seed ", seed, ": paper (", before.report.loss.size(), " steps) ", e_before,
           ", defaults (", after.report.loss.size(), " steps) ", e_after, ", without the closed-form scales ",
           e_learned);
      CHECK(before.report.loss.size() == 1000);
      CHECK(after.report.loss.size() <= 100);
      CHECK(learned.report.loss.size() <= 100);
      CHECK(e_after <= e_before);
      CHECK(e_learned <= e_before);
      CHECK(e_after <= e_learned);
    }
  }
}
