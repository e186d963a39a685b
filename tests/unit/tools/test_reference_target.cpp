// SPDX-License-Identifier: MIT
// The full-precision target of sequential calibration (--fp-target): the shifted weights are the ridge least-squares
// fit of the unquantized output, checked against an independent QR solve; equal inputs change nothing; the whole
// pipeline retargets only where inputs drift, and on stories260K it lowers the held-out NLL.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include <Eigen/QR>

#include "cli/methods.hpp"
#include "cli/text_slice.hpp"
#include "llama/forward.hpp"
#include "llama/load.hpp"
#include "llama/reference_target.hpp"
#include "llama/sequential.hpp"
#include "tokenize/llama2c.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using llama::matrix;

/// Activations with LLM features: non-zero column means, Student-t tails and one outlier input channel.
matrix llm_like_inputs(Eigen::Index tokens, Eigen::Index width, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> t(3.0F);
  std::normal_distribution<float> mean(0.0F, 0.5F);
  matrix x(tokens, width);
  std::vector<float> means(static_cast<std::size_t>(width));
  for (float& m : means) m = mean(rng);
  for (Eigen::Index i = 0; i < tokens; ++i) {
    for (Eigen::Index j = 0; j < width; ++j) x(i, j) = means[static_cast<std::size_t>(j)] + t(rng);
  }
  x.col(width / 3) *= 25.0F;
  return x;
}

matrix gaussian(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed, float sigma = 1.0F) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0F, sigma);
  matrix m(rows, cols);
  for (Eigen::Index k = 0; k < m.size(); ++k) m.data()[k] = n(rng);
  return m;
}

Eigen::MatrixXd gram_of(const matrix& x) { return x.cast<double>().transpose() * x.cast<double>(); }

llama::layer_quantizer quantizer_for(const std::string& method, group_size_option g) {
  const auto choice = cli::parse_method(method, g, 0);
  return [choice](const matrix& w, const Eigen::MatrixXd& gram, std::size_t, llama::linear) {
    return cli::run_method(cpu_exec{}, choice, w, gram);
  };
}

}  // namespace

TEST_CASE("retarget_to_reference is the ridge least-squares fit of the unquantized output, pulled toward W") {
  for (const bool llm_like : {false, true}) {
    CAPTURE(llm_like);
    const Eigen::Index tokens = 300, in = 24, out = 10;
    const matrix x = llm_like ? llm_like_inputs(tokens, in, 3) : gaussian(tokens, in, 3);
    // The unquantized inputs: the quantized ones plus a drift that is partly correlated with them.
    const matrix reference = (x * 1.1F + gaussian(tokens, in, 4, 0.3F)).eval();
    const matrix w = gaussian(out, in, 5);
    const Eigen::MatrixXd c = gram_of(x);
    for (const double lambda : {1e-9, 0.01, 0.5}) {
      CAPTURE(lambda);
      matrix shifted = w;
      llama::retarget_to_reference(shifted, reference, x, c, lambda);
      // Independent formulation: min ||x W'^T - R W^T||^2 + lambda mean(diag C) ||W' - W||^2 as one stacked
      // least-squares problem, solved by column-pivoted QR.
      const double ridge = lambda * c.diagonal().mean();
      Eigen::MatrixXd a(tokens + in, in), b(tokens + in, out);
      a << x.cast<double>(), std::sqrt(ridge) * Eigen::MatrixXd::Identity(in, in);
      b << reference.cast<double>() * w.cast<double>().transpose(), std::sqrt(ridge) * w.cast<double>().transpose();
      const Eigen::MatrixXd expected = a.colPivHouseholderQr().solve(b).transpose();
      const double scale = expected.norm();
      CHECK((shifted.cast<double>() - expected).norm() <= 2e-5 * scale);
    }
    // With next to no damping the shifted weights minimize the reference error; W itself does worse.
    matrix shifted = w;
    llama::retarget_to_reference(shifted, reference, x, c, 1e-9);
    const double at_shifted = llama::reference_output_error(shifted, x, w, reference);
    const double at_w = llama::reference_output_error(w, x, w, reference);
    // The tiled float figure against the same quantity in double, and for another thread count.
    const Eigen::MatrixXd target = reference.cast<double>() * w.cast<double>().transpose();
    const double direct =
        (x.cast<double>() * shifted.cast<double>().transpose() - target).squaredNorm() / target.squaredNorm();
    CHECK(at_shifted == doctest::Approx(direct).epsilon(1e-4));
    CHECK(llama::reference_output_error(shifted, x, w, reference, cpu_exec{.threads = 2}) == at_shifted);
    CHECK(at_shifted < at_w);
    // Any other weights near the optimum do worse too.
    for (std::uint64_t s = 0; s < 5; ++s) {
      const matrix nudged = (shifted + gaussian(out, in, 10 + s, 1e-2F)).eval();
      CHECK(llama::reference_output_error(nudged, x, w, reference) > at_shifted);
    }
  }
}

TEST_CASE("retarget_to_reference: equal inputs and silent inputs change nothing; bad arguments are refused") {
  const matrix x = llm_like_inputs(100, 16, 7);
  const matrix w = gaussian(6, 16, 8);
  const Eigen::MatrixXd c = gram_of(x);
  matrix same = w;
  llama::retarget_to_reference(same, x, x, c, 0.01);
  CHECK(same == w);  // bit for bit: the correction is exactly zero
  const matrix zero = matrix::Zero(100, 16);
  matrix silent = w;
  llama::retarget_to_reference(silent, gaussian(100, 16, 9), zero, gram_of(zero), 0.01);
  CHECK(silent == w);
  // A dead input channel (never non-zero in x) keeps its weights: nothing in x can stand in for it.
  matrix dead_x = x;
  dead_x.col(5).setZero();
  matrix dead = w;
  llama::retarget_to_reference(dead, (dead_x * 1.2F).eval(), dead_x, gram_of(dead_x), 0.01);
  CHECK(dead.col(5) == w.col(5));
  CHECK(dead != w);
  // Thread counts give the same bits.
  const matrix reference = (x + gaussian(100, 16, 11, 0.2F)).eval();
  matrix one = w, two = w;
  llama::retarget_to_reference(one, reference, x, c, 0.01, cpu_exec{.threads = 1});
  llama::retarget_to_reference(two, reference, x, c, 0.01, cpu_exec{.threads = 2});
  CHECK(one == two);

  matrix bad = w;
  CHECK_THROWS_WITH_AS(llama::retarget_to_reference(bad, x.leftCols(15), x, c, 0.01),
                       doctest::Contains("shape_mismatch"), ternq::error);
  CHECK_THROWS_WITH_AS(llama::retarget_to_reference(bad, x, x, c, 0.0), doctest::Contains("damping"), ternq::error);
  CHECK_THROWS_WITH_AS(llama::retarget_to_reference(bad, x, x, c, std::nan("")), doctest::Contains("damping"),
                       ternq::error);
  CHECK(bad == w);
}

TEST_CASE(
    "sequential calibration with the fp target: q/k/v of the first block see the unquantized inputs and are "
    "unchanged; later layers are retargeted and report errors against the unquantized model") {
  const llama::batch calib = tools_test::random_batch(3, 24, 40, 6);
  llama::model plain = tools_test::random_model(21);
  llama::model target = plain;
  const llama::model unquantized = plain;
  const auto quantize = quantizer_for("gptq_optimal", 16);
  const auto a = llama::quantize_sequential(plain, calib, quantize);
  const auto b = llama::quantize_sequential(target, calib, quantize, {}, {}, {}, /*fp_target=*/true);
  REQUIRE(a.size() == b.size());
  std::size_t differ = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    const auto& w_a = plain.layers[a[k].layer].weight(a[k].which);
    const auto& w_b = target.layers[b[k].layer].weight(b[k].which);
    const bool first_site = a[k].layer == 0 && (a[k].which == llama::linear::q || a[k].which == llama::linear::k ||
                                                a[k].which == llama::linear::v);
    if (first_site) {
      CHECK(w_a == w_b);
    } else {
      differ += w_a == w_b ? 0 : 1;
    }
    // E_w is against the unquantized weights in both runs.
    const matrix& original = unquantized.layers[b[k].layer].weight(b[k].which);
    const double expected = (original - w_b).cast<double>().squaredNorm() / original.cast<double>().squaredNorm();
    CHECK(b[k].relative_weight_error == doctest::Approx(expected).epsilon(1e-6));
    CHECK(b[k].relative_output_error > 0.0);
  }
  CHECK(differ == a.size() - 3);
}

TEST_CASE("stories260K: the fp target lowers the held-out NLL of GPTQ with the exact optimum") {
  using tools_test::have_shared;
  using tools_test::shared_dir;
  if (!have_shared("models/stories260K.bin")) return;
  const tokenizers::llama2c tok(shared_dir() / "models/tok512.bin");
  const auto path = shared_dir() / "text/tinystories_validation_head.txt";
  const auto slice = [&](std::size_t offset) {
    return cli::windows(cli::tokenize(tok, cli::read_text(path, offset), 16 * 128, false).tokens, 128, 16);
  };
  const llama::batch calibration = slice(0), evaluation = slice(400000);
  const llama::model fp = llama::load_llama2c(shared_dir() / "models/stories260K.bin");
  llama::model plain = fp, target = fp;
  (void)llama::quantize_sequential(plain, calibration, quantizer_for("gptq_optimal", 64));
  (void)llama::quantize_sequential(target, calibration, quantizer_for("gptq_optimal", 64), {}, {}, {}, true);
  const double nll_fp = llama::next_token_nll(fp, evaluation).mean();
  const double nll_plain = llama::next_token_nll(plain, evaluation).mean();
  const double nll_target = llama::next_token_nll(target, evaluation).mean();
  MESSAGE("held-out NLL: fp " << nll_fp << ", gptq_optimal " << nll_plain << ", with the fp target " << nll_target);
  CHECK(nll_fp < nll_target);
  CHECK(nll_target < nll_plain - 0.1);  // about 0.3 nats measured; 0.1 leaves room for platform rounding
}

TEST_CASE("reference_retarget: one factor serves every layer of a site, and weights of another width are refused") {
  const matrix x = llm_like_inputs(120, 12, 21);
  const matrix reference = (x * 0.9F + gaussian(120, 12, 22, 0.2F)).eval();
  const Eigen::MatrixXd c = gram_of(x);
  const llama::reference_retarget site(reference, x, c, 0.01);
  for (std::uint64_t s = 0; s < 3; ++s) {
    const matrix w = gaussian(5 + static_cast<Eigen::Index>(s), 12, 30 + s);
    matrix shared = w, alone = w;
    site.apply(shared);
    llama::retarget_to_reference(alone, reference, x, c, 0.01);
    CHECK(shared == alone);
  }
  matrix narrow = gaussian(4, 11, 40);
  CHECK_THROWS_WITH_AS(site.apply(narrow), doctest::Contains("shape_mismatch"), ternq::error);
  const matrix zero = matrix::Zero(120, 12);
  const llama::reference_retarget silent(reference, zero, gram_of(zero), 0.01);
  CHECK_THROWS_WITH_AS(silent.apply(narrow), doctest::Contains("shape_mismatch"), ternq::error);
}
