// SPDX-License-Identifier: MIT
// absmean and twn on the device against the CPU's quantize: the same codes and scales, bit for bit (the kernels sum
// in the CPU's blocked lane order). Part of ternq_tests_cuda, which exits 77 (skipped) without a device.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include <doctest/doctest.h>

#include <ternq/quant.hpp>

#include "cuda_quant_runner.hpp"
#include "llm_like.hpp"

namespace {

using ternq::testing::row_matrix;

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return std::ranges::equal(
      a, b, [](float x, float y) { return std::bit_cast<std::uint32_t>(x) == std::bit_cast<std::uint32_t>(y); });
}

template <class Method>
void check_same_as_cpu(const row_matrix& w, const Method& method) {
  const auto view = ternq::row_major(w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
  const ternq::ternary_matrix cpu = ternq::quantize(ternq::cpu_exec{}, view, method);
  const ternq::ternary_matrix gpu = ternq::testing::cuda::quantize_on_device(view, method);
  CHECK(std::ranges::equal(cpu.codes(), gpu.codes()));
  CHECK(same_bits(cpu.scales(), gpu.scales()));
  CHECK(!gpu.has_offsets());
}

}  // namespace

TEST_CASE("CUDA absmean and twn equal the CPU bit for bit on LLM-like and random matrices") {
  // 130 and 1000 columns: groups with and without a full 128-element block of the lane sums, and a short last group
  for (const std::size_t cols : {7, 130, 1000, 4096}) {
    CAPTURE(cols);
    const row_matrix llm = ternq::testing::llm_like_weights(64, cols, 11 + cols);
    const row_matrix uniform = row_matrix::Random(17, static_cast<Eigen::Index>(cols));
    for (const auto group : {ternq::group_size_option(128), ternq::group_size_option(256), ternq::group_size_option(5),
                             ternq::group_size_option(ternq::per_row)}) {
      check_same_as_cpu(llm, ternq::absmean{.group_size = group});
      check_same_as_cpu(uniform, ternq::absmean{.group_size = group});
      for (const double ratio : {0.0, 0.75, 1.3}) {
        check_same_as_cpu(llm, ternq::twn{.group_size = group, .threshold_ratio = ratio});
        check_same_as_cpu(uniform, ternq::twn{.group_size = group, .threshold_ratio = ratio});
      }
    }
  }
}

TEST_CASE("CUDA absmean and twn on degenerate groups: zero rows, constants, denormals, exact thresholds") {
  row_matrix w = ternq::testing::llm_like_weights(6, 300, 5);
  w.row(0).setZero();
  w.row(1).setConstant(-0.5F);
  w.row(2).setConstant(std::numeric_limits<float>::denorm_min());
  for (Eigen::Index j = 0; j < 300; ++j) w(3, j) = static_cast<float>(j % 4);  // |w| at exactly half the mean
  for (const auto group :
       {ternq::group_size_option(128), ternq::group_size_option(1), ternq::group_size_option(ternq::per_row)}) {
    check_same_as_cpu(w, ternq::absmean{.group_size = group});
    check_same_as_cpu(w, ternq::twn{.group_size = group});
  }
}

TEST_CASE("CUDA absmean and twn refuse what the CPU refuses") {
  row_matrix w = ternq::testing::llm_like_weights(3, 64, 2);
  const auto view = ternq::row_major(w.data(), 3, 64);
  CHECK_THROWS_AS(ternq::testing::cuda::quantize_on_device(view, ternq::twn{.threshold_ratio = -1.0}), ternq::error);
  w(1, 9) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(ternq::testing::cuda::quantize_on_device(view, ternq::absmean{}), ternq::error);
}
