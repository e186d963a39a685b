// SPDX-License-Identifier: MIT
// The exact symmetric optimum on the device against the CPU's sorted reference, group by group: the same codes and
// scales, bit for bit (the device scans the sorted magnitudes with the CPU's own scan). Part of ternq_tests_cuda,
// which exits 77 (skipped) without a device.
#include <algorithm>
#include <bit>
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

/// Every group of `w` fitted by `optimal_symmetric_fit_group_sorted` on the CPU, compared with the device's result.
void check_same_as_sorted_reference(const row_matrix& w, ternq::group_size_option group) {
  const auto rows = static_cast<std::size_t>(w.rows());
  const auto cols = static_cast<std::size_t>(w.cols());
  const auto view = ternq::row_major(w.data(), rows, cols);
  const ternq::ternary_matrix gpu =
      ternq::testing::cuda::quantize_on_device(view, ternq::optimal_symmetric{.group_size = group});
  REQUIRE(gpu.rows() == rows);
  CHECK(!gpu.has_offsets());
  const ternq::group_layout& layout = gpu.layout();
  std::vector<std::int8_t> codes;
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t k = 0; k < layout.count(); ++k) {
      CAPTURE(i);
      CAPTURE(k);
      const std::span<const float> group_weights(w.data() + i * cols + layout.begin(k), layout.size(k));
      codes.assign(layout.size(k), 0);
      const float scale = ternq::optimal_symmetric_fit_group_sorted(group_weights, std::span<std::int8_t>(codes));
      CHECK(std::bit_cast<std::uint32_t>(scale) == std::bit_cast<std::uint32_t>(gpu.scale(i, k)));
      const auto device_codes = gpu.row_codes(i).subspan(layout.begin(k), layout.size(k));
      CHECK(std::ranges::equal(codes, device_codes));
    }
  }
}

}  // namespace

TEST_CASE("CUDA optimal_symmetric equals the CPU's sorted reference bit for bit on LLM-like and random matrices") {
  for (const std::size_t cols : {7, 130, 1000, 4096}) {
    CAPTURE(cols);
    const row_matrix llm = ternq::testing::llm_like_weights(48, cols, 21 + cols);
    const row_matrix uniform = row_matrix::Random(17, static_cast<Eigen::Index>(cols));
    for (const auto group : {ternq::group_size_option(128), ternq::group_size_option(64), ternq::group_size_option(5),
                             ternq::group_size_option(ternq::per_row)}) {
      check_same_as_sorted_reference(llm, group);
      check_same_as_sorted_reference(uniform, group);
    }
  }
}

TEST_CASE("CUDA optimal_symmetric on degenerate groups: zero rows, constants, denormals, runs of equal magnitudes") {
  row_matrix w = ternq::testing::llm_like_weights(7, 300, 8);
  w.row(0).setZero();
  w.row(1).setConstant(-0.5F);
  w.row(2).setConstant(std::numeric_limits<float>::denorm_min());
  for (Eigen::Index j = 0; j < 300; ++j) {
    w(3, j) = static_cast<float>(j % 5) - 2.0F;                        // runs of equal magnitudes, both signs
    w(4, j) = j % 3 == 0 ? std::numeric_limits<float>::max() : -1.0F;  // the largest float next to small ones
    w(5, j) = j % 2 == 0 ? -0.0F : 0.0F;                               // signed zeros only
  }
  for (const auto group : {ternq::group_size_option(128), ternq::group_size_option(1), ternq::group_size_option(3),
                           ternq::group_size_option(ternq::per_row)}) {
    check_same_as_sorted_reference(w, group);
  }
}

TEST_CASE("CUDA optimal_symmetric refuses what the CPU refuses") {
  row_matrix w = ternq::testing::llm_like_weights(3, 64, 2);
  const auto view = ternq::row_major(w.data(), 3, 64);
  w(2, 40) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(ternq::testing::cuda::quantize_on_device(view, ternq::optimal_symmetric{}), ternq::error);
  CHECK_THROWS_AS(
      ternq::testing::cuda::quantize_on_device(ternq::row_major(w.data(), 0, 64), ternq::optimal_symmetric{}),
      ternq::error);
}
