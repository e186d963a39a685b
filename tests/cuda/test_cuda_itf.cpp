// SPDX-License-Identifier: MIT
// ITF on the device against the CPU's itf_quantize: the same codes, scales, offsets and counters, bit for bit (the
// kernel sums in the CPU's lane order). Part of ternq_tests_cuda, which exits 77 (skipped) without a device.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <doctest/doctest.h>

#include <ternq/quant.hpp>

#include "cuda_quant_runner.hpp"
#include "llm_like.hpp"

namespace {

using ternq::testing::row_matrix;

void check_same_as_cpu(const row_matrix& w, const ternq::itf& method) {
  const auto view = ternq::row_major(w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
  const ternq::atq_result cpu = ternq::itf_quantize(ternq::cpu_exec{}, view, method);
  const ternq::atq_result gpu = ternq::testing::cuda::itf_on_device(view, method);
  const auto same = [](std::span<const float> a, std::span<const float> b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (std::bit_cast<std::uint32_t>(a[i]) != std::bit_cast<std::uint32_t>(b[i])) return false;
    }
    return true;
  };
  CHECK(std::ranges::equal(cpu.matrix.codes(), gpu.matrix.codes()));
  CHECK(same(cpu.matrix.scales(), gpu.matrix.scales()));
  CHECK(same(cpu.matrix.offsets(), gpu.matrix.offsets()));
  CHECK(cpu.stats.groups == gpu.stats.groups);
  CHECK(cpu.stats.iterations == gpu.stats.iterations);
  CHECK(cpu.stats.max_iterations == gpu.stats.max_iterations);
  CHECK(cpu.stats.unconverged_groups == gpu.stats.unconverged_groups);
  CHECK(cpu.stats.degenerate_groups == gpu.stats.degenerate_groups);
  const ternq::ternary_matrix entry = ternq::testing::cuda::quantize_itf_on_device(view, method);
  CHECK(std::ranges::equal(entry.codes(), gpu.matrix.codes()));
  CHECK(same(entry.scales(), gpu.matrix.scales()));
}

}  // namespace

TEST_CASE("CUDA ITF equals the CPU's itf_quantize bit for bit on LLM-like and random matrices") {
  for (const std::size_t cols : {128, 1000, 4096}) {
    CAPTURE(cols);
    const row_matrix llm = ternq::testing::llm_like_weights(96, cols, 7 + cols);
    const row_matrix gauss = row_matrix::Random(33, static_cast<Eigen::Index>(cols));
    for (const auto group :
         {ternq::group_size_option(128), ternq::group_size_option(7), ternq::group_size_option(ternq::per_row)}) {
      for (const unsigned iters : {0U, 1U, 2U, 10U}) {
        CAPTURE(iters);
        check_same_as_cpu(llm, {.group_size = group, .max_iters = iters});
        check_same_as_cpu(gauss, {.group_size = group, .max_iters = iters});
      }
    }
  }
}

TEST_CASE("CUDA ITF on degenerate groups: constant groups, zero rows, one column, ties") {
  row_matrix w = ternq::testing::llm_like_weights(8, 300, 3);
  w.row(0).setZero();
  w.row(1).setConstant(0.25F);
  w.block(2, 0, 1, 128).setConstant(-1.5F);  // one constant group in an otherwise ordinary row
  for (Eigen::Index j = 0; j < 300; ++j) w(3, j) = static_cast<float>(j % 3) - 1.0F;  // exact ternary levels: ties
  for (const auto group :
       {ternq::group_size_option(128), ternq::group_size_option(1), ternq::group_size_option(ternq::per_row)}) {
    check_same_as_cpu(w, {.group_size = group});
  }
  check_same_as_cpu(row_matrix::Constant(1, 1, 3.0F), {});
}

TEST_CASE("CUDA ITF refuses non-finite weights, naming the place, as the CPU does") {
  row_matrix w = ternq::testing::llm_like_weights(4, 256, 1);
  w(2, 17) = std::numeric_limits<float>::quiet_NaN();
  const auto view = ternq::row_major(w.data(), 4, 256);
  CHECK_THROWS_AS(ternq::testing::cuda::itf_on_device(view, {}), ternq::error);
}
