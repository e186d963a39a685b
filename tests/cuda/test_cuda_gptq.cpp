// SPDX-License-Identifier: MIT
// The GPTQ driver on the device (cuda::gptq_quantize) against the CPU's driver in the same form of the Hessian (the
// explicit inverse): every grid (optimal_aga's alternation included), every block order, the report, degenerate
// input and the refusals. The products run in cuBLAS's order and the inner loop updates column by column where the
// CPU uses a GEMM per panel, so the codes agree except near rounding boundaries (and what follows from them in the
// same row), and the errors to rounding.
// Part of ternq_tests_cuda, which exits 77 (skipped) without a device.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ternq/quant.hpp>

#include "cuda_quant_runner.hpp"
#include "llm_like.hpp"

namespace {

using ternq::testing::gram_of_activations;
using ternq::testing::row_matrix;
using gram_matrix = ternq::testing::row_gram_matrix;

ternq::matrix_view<const float> view_of(const row_matrix& w) {
  return ternq::row_major(w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
}

ternq::matrix_view<const double> view_of(const gram_matrix& c) {
  return ternq::row_major(c.data(), static_cast<std::size_t>(c.rows()), static_cast<std::size_t>(c.cols()));
}

ternq::gptq_result cpu_explicit(const row_matrix& w, const gram_matrix& c, const ternq::gptq& options) {
  ternq::cpu_gptq_steps<float> steps(2, ternq::cpu_gptq_steps<float>::hessian_form::explicit_inverse);
  return ternq::gptq_quantize_with(steps, view_of(w), view_of(c), options);
}

double total(const ternq::gptq_report& r, double ternq::gptq_block_report::*field) {
  double sum = 0.0;
  for (const auto& b : r.blocks) sum += b.*field;
  return sum;
}

/// The fraction of equal codes.
double same_codes(const ternq::ternary_matrix& a, const ternq::ternary_matrix& b) {
  std::size_t same = 0;
  for (std::size_t k = 0; k < a.codes().size(); ++k) same += a.codes()[k] == b.codes()[k] ? 1 : 0;
  return static_cast<double>(same) / static_cast<double>(a.codes().size());
}

/// The device's result against the CPU's explicit form. `exact_order`: the block order does not depend on the
/// weights (every order but SSR), so the permutations must be equal.
void check_close_to_cpu(const row_matrix& w, const gram_matrix& c, const ternq::gptq& options, bool exact_order) {
  const ternq::gptq_result cpu = cpu_explicit(w, c, options);
  const ternq::gptq_result gpu = ternq::testing::cuda::gptq_on_device(view_of(w), view_of(c), options);
  REQUIRE(gpu.matrix.rows() == cpu.matrix.rows());
  REQUIRE(gpu.matrix.cols() == cpu.matrix.cols());
  CHECK(gpu.matrix.has_offsets() == cpu.matrix.has_offsets());
  CHECK(gpu.report.blocks.size() == cpu.report.blocks.size());
  CHECK(gpu.report.dead_columns == cpu.report.dead_columns);
  CHECK(gpu.report.damping_used == cpu.report.damping_used);
  CHECK(gpu.report.retries.size() == cpu.report.retries.size());
  CHECK(gpu.report.data_free == cpu.report.data_free);
  std::vector<std::size_t> cpu_perm(w.cols()), gpu_perm(w.cols());
  for (std::size_t j = 0; j < cpu_perm.size(); ++j) {
    cpu_perm[j] = cpu.matrix.original_column(j);
    gpu_perm[j] = gpu.matrix.original_column(j);
  }
  if (exact_order) {
    CHECK(gpu_perm == cpu_perm);
    // a weight on a rounding boundary flips, and the row's later compensation moves with it
    CHECK(same_codes(gpu.matrix, cpu.matrix) >= 0.995);
  } else {
    // SSR's first block comes from the uncompensated weights, scored in the CPU's order: the same columns
    const std::size_t g = gpu.report.blocks.front().size;
    const std::set<std::size_t> cpu_first(cpu_perm.begin(), cpu_perm.begin() + static_cast<std::ptrdiff_t>(g));
    const std::set<std::size_t> gpu_first(gpu_perm.begin(), gpu_perm.begin() + static_cast<std::ptrdiff_t>(g));
    CHECK(cpu_first == gpu_first);
  }
  const double cpu_output = total(cpu.report, &ternq::gptq_block_report::output_error);
  const double gpu_output = total(gpu.report, &ternq::gptq_block_report::output_error);
  const double cpu_weight = total(cpu.report, &ternq::gptq_block_report::weight_error);
  const double gpu_weight = total(gpu.report, &ternq::gptq_block_report::weight_error);
  // estimates, not yet confirmed on a device: 1e-3 with the CPU's order, 2% where SSR may order near-ties apart
  const double tolerance = exact_order ? 1e-3 : 2e-2;
  CHECK(std::abs(gpu_output - cpu_output) <= tolerance * cpu_output);
  CHECK(std::abs(gpu_weight - cpu_weight) <= tolerance * cpu_weight);
  // the report's errors are those of the returned matrix: E_w recomputed from it
  double recomputed = 0.0;
  for (std::size_t i = 0; i < gpu.matrix.rows(); ++i) {
    for (std::size_t j = 0; j < gpu.matrix.cols(); ++j) {
      const double d = static_cast<double>(w(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j))) -
                       static_cast<double>(gpu.matrix.value(i, j));
      recomputed += d * d;
    }
  }
  CHECK(std::abs(recomputed - gpu_weight) <= 1e-9 * std::max(1.0, recomputed));
  if (!gpu.report.data_free) {
    CHECK(gpu.report.blocks.front().grid.groups == cpu.report.blocks.front().grid.groups);
  }
}

}  // namespace

TEST_CASE("CUDA GPTQ agrees with the CPU's explicit form: every grid, LLM-like weights and activations") {
  const row_matrix w = ternq::testing::llm_like_weights(48, 320, 5);
  const gram_matrix c = gram_of_activations(ternq::testing::llm_like_activations(900, 320, 5));
  const ternq::gptq_grid grids[] = {ternq::absmean{.group_size = 64},           ternq::twn{.group_size = 64},
                                    ternq::optimal_symmetric{.group_size = 64}, ternq::itf{.group_size = 64},
                                    ternq::itf_aga{.group_size = 64},           ternq::optimal_aga{.group_size = 64}};
  for (const auto& grid : grids) {
    CAPTURE(grid.index());
    check_close_to_cpu(w, c, {.grid = grid}, true);
    check_close_to_cpu(w, c, {.grid = grid, .order = ternq::act_order{}}, true);
  }
  check_close_to_cpu(w, c, {.grid = ternq::itf_aga{.group_size = 64}, .metric = ternq::aga_metric::gram_block}, true);
  check_close_to_cpu(w, c, {.grid = ternq::itf_aga{.group_size = 64}, .precision = ternq::grid_precision::fp16}, true);
  check_close_to_cpu(w, c, {.grid = ternq::optimal_aga{.group_size = 64}, .metric = ternq::aga_metric::gram_block},
                     true);
  check_close_to_cpu(w, c, {.grid = ternq::optimal_aga{.group_size = 64}, .precision = ternq::grid_precision::fp16},
                     true);
  check_close_to_cpu(w, c, {.grid = ternq::optimal_aga{.group_size = 128, .max_iters = 0}, .order = ternq::ssr{}},
                     false);
}

TEST_CASE("CUDA GPTQ: SSR, random and given orders, a short last block, per-row blocks, dead channels") {
  const row_matrix w = ternq::testing::llm_like_weights(40, 300, 9);
  ternq::testing::activation_spec spec;
  spec.dead_fraction = 0.1;
  const gram_matrix c = gram_of_activations(ternq::testing::llm_like_activations(700, 300, 9, spec));
  check_close_to_cpu(w, c, {.grid = ternq::itf_aga{.group_size = 128}, .order = ternq::ssr{}}, false);
  check_close_to_cpu(w, c, {.grid = ternq::itf{.group_size = 64}, .order = ternq::ssr{}}, false);
  check_close_to_cpu(w, c, {.grid = ternq::itf_aga{.group_size = 128}, .order = ternq::random_order{3}}, true);
  std::vector<std::size_t> reversed(300);
  for (std::size_t j = 0; j < reversed.size(); ++j) reversed[j] = reversed.size() - 1 - j;
  check_close_to_cpu(w, c, {.grid = ternq::itf_aga{.group_size = 128}, .order = ternq::given_order{reversed}}, true);
  check_close_to_cpu(w, c, {.grid = ternq::itf{.group_size = ternq::per_row}}, true);
}

TEST_CASE("CUDA GPTQ on degenerate input: zero and constant rows, a rank-deficient Gram matrix, a zero one") {
  row_matrix w = ternq::testing::llm_like_weights(12, 192, 2);
  w.row(0).setZero();
  w.row(1).setConstant(0.5F);
  // fewer tokens than channels: singular C, made definite by the damping
  const gram_matrix c = gram_of_activations(ternq::testing::llm_like_activations(100, 192, 2));
  check_close_to_cpu(w, c, {.grid = ternq::itf_aga{.group_size = 64}}, true);
  check_close_to_cpu(w, c, {.grid = ternq::optimal_symmetric{.group_size = 64}, .order = ternq::ssr{}}, false);
  // an all-zero Gram matrix: the CPU's data-free answer, bit for bit
  const gram_matrix zero = gram_matrix::Zero(192, 192);
  const ternq::gptq options{.grid = ternq::itf_aga{.group_size = 64}};
  const ternq::gptq_result cpu = cpu_explicit(w, zero, options);
  const ternq::gptq_result gpu = ternq::testing::cuda::gptq_on_device(view_of(w), view_of(zero), options);
  CHECK(gpu.report.data_free);
  CHECK(std::ranges::equal(gpu.matrix.codes(), cpu.matrix.codes()));
  CHECK(std::ranges::equal(gpu.matrix.scales(), cpu.matrix.scales()));
}

TEST_CASE("CUDA GPTQ: a float Gram matrix and the generic quantize entry") {
  const row_matrix w = ternq::testing::llm_like_weights(24, 256, 13);
  const gram_matrix c = gram_of_activations(ternq::testing::llm_like_activations(600, 256, 13));
  const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> cf = c.cast<float>();
  const ternq::gptq options{.grid = ternq::itf_aga{.group_size = 128}, .order = ternq::act_order{}};
  const ternq::gptq_result from_double = ternq::testing::cuda::gptq_on_device(view_of(w), view_of(c), options);
  const ternq::gptq_result from_float =
      ternq::testing::cuda::gptq_on_device(view_of(w), ternq::row_major(cf.data(), 256, 256), options);
  CHECK(same_codes(from_float.matrix, from_double.matrix) >= 0.99);
  const ternq::ternary_matrix generic = ternq::testing::cuda::quantize_on_device(view_of(w), options, view_of(c));
  CHECK(std::ranges::equal(generic.codes(), from_double.matrix.codes()));
  CHECK(std::ranges::equal(generic.scales(), from_double.matrix.scales()));
}

TEST_CASE("CUDA GPTQ refuses what the CPU refuses") {
  row_matrix w = ternq::testing::llm_like_weights(8, 128, 4);
  const gram_matrix c = gram_of_activations(ternq::testing::llm_like_activations(300, 128, 4));
  const auto message = [&](const row_matrix& weights, const gram_matrix& gram, const ternq::gptq& options) {
    try {
      (void)ternq::testing::cuda::gptq_on_device(view_of(weights), view_of(gram), options);
    } catch (const ternq::error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message(w, c, {.damping = -1.0}).find("damping") != std::string::npos);
  const gram_matrix small = c.topLeftCorner(64, 64);
  CHECK(message(w, small, {}).find("gram") != std::string::npos);
  gram_matrix indefinite = c;
  indefinite(3, 3) = -indefinite(3, 3);  // a negative diagonal entry
  CHECK(message(w, indefinite, {}).find("gram") != std::string::npos);
  gram_matrix negative = c;  // symmetric with a non-negative diagonal, but a 2x2 minor below zero
  negative(0, 1) = negative(1, 0) = 10.0 * std::sqrt(c(0, 0) * c(1, 1));
  const std::string not_psd = message(w, negative, {.damping = 0.1});
  CHECK(not_psd.find("positive semi-definite") != std::string::npos);
  w(2, 5) = std::numeric_limits<float>::quiet_NaN();
  CHECK(message(w, c, {}).find("NaN") != std::string::npos);
}
