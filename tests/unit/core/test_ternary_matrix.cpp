// SPDX-License-Identifier: MIT
// ternary_matrix: group layout, grids, permutation, dequantization and validation.
#include <doctest/doctest.h>

#include <numeric>
#include <vector>

#include "ternq/core/dequantize.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/ternary_matrix.hpp"

TEST_CASE("group layout: a last shorter group, per row, and oversize groups") {
  const ternq::group_layout l(300, 128);
  CHECK(l.count() == 3);
  CHECK(l.begin(2) == 256);
  CHECK(l.end(2) == 300);
  CHECK(l.size(2) == 44);
  CHECK(l.group_of(255) == 1);
  CHECK(l.group_of(256) == 2);

  const ternq::group_layout row(300, ternq::per_row);
  CHECK(row.count() == 1);
  CHECK(row.group_size() == 300);

  const ternq::group_layout big(64, 128);
  CHECK(big.count() == 1);
  CHECK(big.group_size() == 64);

  CHECK_THROWS_WITH_AS(ternq::group_layout(10, 0, "quantize(twn)"),
                       "[ternq.zero_group_size] quantize(twn): group size must be at least 1 (got 0)", ternq::error);
}

TEST_CASE("dequantize applies scale, code and offset per group") {
  ternq::ternary_matrix q(2, 5, 2, /*with_offsets=*/true);
  REQUIRE(q.groups_per_row() == 3);
  const std::vector<std::int8_t> codes = {1, -1, 0, 1, -1, /**/ 0, 0, 1, 1, 1};
  std::copy(codes.begin(), codes.end(), q.codes().begin());
  for (std::size_t k = 0; k < 3; ++k) {
    q.scale(0, k) = static_cast<float>(k + 1);
    q.scale(1, k) = 0.5F;
    q.offset(0, k) = 0.25F;
    q.offset(1, k) = -1.0F;
  }
  const auto d = ternq::dequantize(q);
  const std::vector<float> expected = {1.25F, -0.75F, 0.25F, 2.25F, -2.75F, -1.0F, -1.0F, -0.5F, -0.5F, -0.5F};
  CHECK(d == expected);
  CHECK(q.value(0, 4) == -2.75F);
  CHECK(q.has_offsets());
  CHECK_FALSE(q.is_symmetric());
  q.clear_offsets();
  CHECK(q.is_symmetric());
  CHECK(q.value(0, 4) == -3.0F);
  CHECK_THROWS_AS((void)q.offset(0, 0) /* writable accessor */, ternq::error);
}

TEST_CASE("a permutation maps stored columns back to original columns") {
  ternq::ternary_matrix q(1, 4, ternq::per_row);
  q.scale(0, 0) = 1.0F;
  const std::vector<std::int8_t> stored = {1, 0, -1, 1};
  std::copy(stored.begin(), stored.end(), q.codes().begin());
  q.set_permutation({2, 0, 3, 1});
  CHECK(q.has_permutation());
  const auto d = ternq::dequantize(q);
  // original column perm[j] receives stored column j
  CHECK(d == std::vector<float>{0.0F, 1.0F, 1.0F, -1.0F});

  q.set_permutation({0, 1, 2, 3});
  CHECK_FALSE(q.has_permutation());
}

TEST_CASE("invalid permutations are rejected with the offending entry") {
  ternq::ternary_matrix q(1, 3, ternq::per_row);
  CHECK_THROWS_WITH_AS(
      q.set_permutation({0, 1}),
      "[ternq.invalid_permutation] ternary_matrix::set_permutation: permutation has 2 entries, expected 3",
      ternq::error);
  CHECK_THROWS_WITH_AS(q.set_permutation({0, 3, 1}),
                       "[ternq.invalid_permutation] ternary_matrix::set_permutation: entry 1 is 3, outside 0..2",
                       ternq::error);
  CHECK_THROWS_WITH_AS(
      q.set_permutation({2, 0, 2}),
      "[ternq.invalid_permutation] ternary_matrix::set_permutation: column 2 appears twice (again at entry 2)",
      ternq::error);
}

TEST_CASE("validate catches hand-edited codes and non-finite grids") {
  ternq::ternary_matrix q(2, 3, 2);
  CHECK_NOTHROW(q.validate());
  q.row_codes(1)[2] = 2;
  CHECK_THROWS_WITH_AS(q.validate(),
                       "[ternq.invalid_argument] ternary_matrix::validate: code 2 at (1, 2) is not in {-1, 0, +1}",
                       ternq::error);
  q.row_codes(1)[2] = 1;
  q.scale(1, 1) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(
      q.validate(), "[ternq.non_finite] ternary_matrix::validate: scale of row 1, group 1 is not finite", ternq::error);
}

TEST_CASE("dequantize into a view checks the output shape") {
  ternq::ternary_matrix q(2, 3, 2);
  std::vector<float> out(6);
  CHECK_THROWS_WITH_AS(ternq::dequantize(q, ternq::row_major(out.data(), 3, 2)),
                       "[ternq.shape_mismatch] dequantize: output is 3x2, expected 2x3", ternq::error);
  std::vector<double> outd(6, 9.0);
  ternq::dequantize(q, ternq::row_major(outd.data(), 2, 3));
  CHECK(outd == std::vector<double>(6, 0.0));
}
