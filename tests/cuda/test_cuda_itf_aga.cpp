// SPDX-License-Identifier: MIT
// itf_aga on the device against the CPU's itf_aga_quantize: the ITF counters equal, the same codes and fallbacks,
// grids equal to rounding (the AGA sums run in cuBLAS's and the team's order, not Eigen's), and the CPU's refusals.
// Part of ternq_tests_cuda, which exits 77 (skipped) without a device.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include <doctest/doctest.h>

#include <ternq/quant.hpp>

#include "cuda_quant_runner.hpp"
#include "llm_like.hpp"

namespace {

using ternq::testing::row_matrix;
using gram_matrix = ternq::testing::row_gram_matrix;
using ternq::testing::gram_of_activations;

ternq::matrix_view<const double> view_of(const gram_matrix& c) {
  return ternq::row_major(c.data(), static_cast<std::size_t>(c.rows()), static_cast<std::size_t>(c.cols()));
}

void check_same_as_cpu(const row_matrix& w, const gram_matrix& c, const ternq::itf_aga& method) {
  const auto view = ternq::row_major(w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
  const ternq::atq_result cpu = ternq::itf_aga_quantize(ternq::cpu_exec{}, view, view_of(c), method);
  const ternq::atq_result gpu = ternq::testing::cuda::itf_aga_on_device(view, view_of(c), method);
  CHECK(gpu.stats.groups == cpu.stats.groups);
  CHECK(gpu.stats.iterations == cpu.stats.iterations);
  CHECK(gpu.stats.aga_fallbacks == cpu.stats.aga_fallbacks);
  CHECK(std::ranges::equal(cpu.matrix.codes(), gpu.matrix.codes()));
  // scales and offsets to 1e-5 of the grid's size (an offset near zero has no relative precision of its own)
  for (std::size_t i = 0; i < cpu.matrix.rows(); ++i) {
    for (std::size_t k = 0; k < cpu.matrix.groups_per_row(); ++k) {
      CAPTURE(i);
      CAPTURE(k);
      const double size = std::abs(cpu.matrix.scale(i, k)) + std::abs(cpu.matrix.offset(i, k));
      CHECK(std::abs(gpu.matrix.scale(i, k) - cpu.matrix.scale(i, k)) <= 1e-5 * size);
      CHECK(std::abs(gpu.matrix.offset(i, k) - cpu.matrix.offset(i, k)) <= 1e-5 * size);
    }
  }
  const ternq::ternary_matrix generic = ternq::testing::cuda::quantize_on_device(view, method, view_of(c));
  CHECK(std::ranges::equal(generic.codes(), gpu.matrix.codes()));
}

}  // namespace

TEST_CASE("CUDA itf_aga agrees with the CPU on LLM-like weights and activations, with dead channels") {
  for (const std::size_t cols : {130, 512}) {
    CAPTURE(cols);
    const row_matrix w = ternq::testing::llm_like_weights(40, cols, 31 + cols);
    const gram_matrix c = gram_of_activations(ternq::testing::llm_like_activations(3 * cols, cols, 31 + cols));
    ternq::testing::activation_spec dead_spec;
    dead_spec.dead_fraction = 0.1;
    const gram_matrix dead =
        gram_of_activations(ternq::testing::llm_like_activations(3 * cols, cols, 7 + cols, dead_spec));
    for (const auto group :
         {ternq::group_size_option(128), ternq::group_size_option(48), ternq::group_size_option(ternq::per_row)}) {
      for (const unsigned iters : {0U, 1U, 10U}) {
        check_same_as_cpu(w, c, {.group_size = group, .max_iters = iters});
        check_same_as_cpu(w, dead, {.group_size = group, .max_iters = iters});
      }
    }
  }
}

TEST_CASE("CUDA itf_aga on degenerate input: an all-zero Gram block, constant and zero rows") {
  row_matrix w = ternq::testing::llm_like_weights(6, 200, 4);
  w.row(0).setZero();
  w.row(1).setConstant(0.25F);
  gram_matrix c = gram_of_activations(ternq::testing::llm_like_activations(400, 200, 4));
  c.block(64, 0, 64, 200).setZero();  // the second group of 64 never fired: its block is zero, AGA falls back
  c.block(0, 64, 200, 64).setZero();
  check_same_as_cpu(w, c, {.group_size = 64});
  check_same_as_cpu(w, gram_matrix::Zero(200, 200), {.group_size = 64});
}

TEST_CASE("CUDA itf_aga refuses what the CPU refuses, with the CPU's messages") {
  const row_matrix w = ternq::testing::llm_like_weights(4, 96, 3);
  const auto view = ternq::row_major(w.data(), 4, 96);
  gram_matrix c = gram_of_activations(ternq::testing::llm_like_activations(200, 96, 3));
  const auto message = [&](const gram_matrix& g) -> std::string {
    try {
      ternq::testing::cuda::itf_aga_on_device(view, view_of(g), {.group_size = 32});
    } catch (const ternq::error& e) {
      return e.what();
    }
    return "";
  };
  gram_matrix indefinite = c;
  // columns 40 and 41 (group 1) correlated beyond Cauchy-Schwarz: a negative eigenvalue with a positive diagonal
  indefinite(40, 41) = indefinite(41, 40) = 10.0 * std::sqrt(c(40, 40) * c(41, 41));
  CHECK(message(indefinite).find("gram block C[B, B] of group 1 is not positive semi-definite") != std::string::npos);
  gram_matrix nan = c;
  nan(5, 5) = std::numeric_limits<double>::quiet_NaN();
  CHECK(!message(nan).empty());
  const gram_matrix small = c.topLeftCorner(64, 64);
  CHECK(message(small).find("gram matrix is 64x64 but the weights have 96 columns") != std::string::npos);

  // the short last block (300 columns in groups of 32: its own batch of one) and a row-wide block of 300 (above
  // batched_cholesky_max: factored alone)
  const row_matrix w300 = ternq::testing::llm_like_weights(4, 300, 5);
  gram_matrix c300 = gram_of_activations(ternq::testing::llm_like_activations(900, 300, 5));
  c300(297, 298) = c300(298, 297) = 10.0 * std::sqrt(c300(297, 297) * c300(298, 298));
  const auto refusal = [&](ternq::group_size_option group) -> std::string {
    try {
      ternq::testing::cuda::itf_aga_on_device(ternq::row_major(w300.data(), 4, 300), view_of(c300),
                                              {.group_size = group});
    } catch (const ternq::error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(refusal(32).find("gram block C[B, B] of group 9 is not positive semi-definite") != std::string::npos);
  CHECK(refusal(ternq::per_row).find("gram block C[B, B] of group 0 is not positive semi-definite") !=
        std::string::npos);
}

TEST_CASE("CUDA itf_aga takes the Gram matrix in any layout and in float, as the tools pass it") {
  const row_matrix w = ternq::testing::llm_like_weights(24, 300, 12);
  const row_matrix x = ternq::testing::llm_like_activations(600, 300, 12);
  const Eigen::MatrixXd column_major = x.cast<double>().transpose() * x.cast<double>();
  const Eigen::MatrixXf single = column_major.cast<float>();
  const auto view = ternq::row_major(w.data(), 24, 300);
  const ternq::itf_aga method{.group_size = 128};
  const ternq::atq_result cpu =
      ternq::itf_aga_quantize(ternq::cpu_exec{}, view, ternq::col_major(column_major.data(), 300, 300, 300), method);
  const ternq::atq_result from_double =
      ternq::testing::cuda::itf_aga_on_device(view, ternq::col_major(column_major.data(), 300, 300, 300), method);
  const ternq::atq_result from_float =
      ternq::testing::cuda::itf_aga_on_device(view, ternq::col_major(single.data(), 300, 300, 300), method);
  CHECK(std::ranges::equal(cpu.matrix.codes(), from_double.matrix.codes()));
  CHECK(std::ranges::equal(cpu.matrix.codes(), from_float.matrix.codes()));
  for (std::size_t k = 0; k < cpu.matrix.scales().size(); ++k) {
    CHECK(from_double.matrix.scales()[k] == doctest::Approx(cpu.matrix.scales()[k]).epsilon(1e-5));
    CHECK(from_float.matrix.scales()[k] == doctest::Approx(cpu.matrix.scales()[k]).epsilon(1e-4));  // C in float
  }
}
