// SPDX-License-Identifier: MIT
// matrix_view: layouts, blocks, transposes, and the checked factories.
#include <doctest/doctest.h>

#include <array>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "ternq/adapters/span.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/view.hpp"

namespace {
std::vector<float> iota_buffer(std::size_t n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.0F);
  return v;
}
}  // namespace

TEST_CASE("row-major and column-major views address the same logical matrix") {
  const auto buf = iota_buffer(12);
  const auto r = ternq::row_major(buf.data(), 3, 4);
  const auto c = ternq::col_major(buf.data(), 4, 3);  // the same memory read as the transpose
  CHECK(r.rows() == 3);
  CHECK(r.cols() == 4);
  CHECK(r.rows_contiguous());
  CHECK_FALSE(r.cols_contiguous());
  for (std::size_t i = 0; i < 3; ++i) {
    for (std::size_t j = 0; j < 4; ++j) {
      CHECK(r(i, j) == static_cast<float>(i * 4 + j));
      CHECK(c(j, i) == r(i, j));
      CHECK(r.transposed()(j, i) == r(i, j));
    }
  }
}

TEST_CASE("blocks of strided views keep the parent's strides") {
  const auto buf = iota_buffer(6 * 10);
  const auto m = ternq::row_major(buf.data(), 6, 8, 10);  // leading dimension larger than cols
  const auto b = m.block(2, 3, 3, 4);
  CHECK(b.rows() == 3);
  CHECK(b.cols() == 4);
  CHECK(b.row_stride() == 10);
  CHECK(b(0, 0) == m(2, 3));
  CHECK(b(2, 3) == m(4, 6));
  CHECK(b.block(1, 1, 1, 2)(0, 1) == m(3, 5));
  CHECK(m.block(6, 8, 0, 0).empty());
}

TEST_CASE("out-of-range blocks throw out_of_bounds with the extents") {
  const auto buf = iota_buffer(12);
  const auto m = ternq::row_major(buf.data(), 3, 4);
  CHECK_THROWS_WITH_AS((void)m.block(2, 0, 2, 4),
                       "[ternq.out_of_bounds] matrix_view::block: block of 2x4 at (2, 0) does not fit in a 3x4 view",
                       ternq::error);
}

TEST_CASE("factories reject inconsistent leading dimensions and null data") {
  std::vector<float> buf(16);
  CHECK_THROWS_WITH_AS(ternq::row_major(buf.data(), 2, 4, 3),
                       "[ternq.invalid_argument] row_major: leading dimension 3 is smaller than the 4 columns of a row",
                       ternq::error);
  CHECK_THROWS_WITH_AS(ternq::col_major(buf.data(), 4, 2, 3),
                       "[ternq.invalid_argument] col_major: leading dimension 3 is smaller than the 4 rows of a column",
                       ternq::error);
  CHECK_THROWS_WITH_AS(ternq::row_major(static_cast<float*>(nullptr), 2, 2),
                       "[ternq.invalid_argument] row_major: null data for a 2x2 matrix", ternq::error);
  CHECK_THROWS_WITH_AS(ternq::strided(buf.data(), 2, 2, -1, 1),
                       "[ternq.invalid_argument] strided: negative strides (-1, 1) are not supported", ternq::error);
}

TEST_CASE("span factories check that the matrix fits in the span") {
  std::vector<float> buf(11);
  const std::span<const float> s(buf);
  CHECK_NOTHROW(ternq::row_major(s.first(8), 2, 4));
  CHECK_THROWS_WITH_AS(
      ternq::row_major(s, 3, 4),
      "[ternq.out_of_bounds] row_major(span): a 3x4 view with strides (4, 1) needs 12 elements but the span holds 11",
      ternq::error);
  CHECK_THROWS_AS(ternq::col_major(s, 4, 3, 4), ternq::error);
  CHECK_NOTHROW(ternq::strided(s, 2, 2, 1, 9));  // last element at 1 + 9 = 10
  CHECK_THROWS_AS(ternq::strided(s, 2, 2, 1, 10), ternq::error);
}

TEST_CASE("a mutable view converts to a read-only view") {
  std::vector<double> buf(4, 1.0);
  const ternq::matrix_view<double> w = ternq::row_major(buf.data(), 2, 2);
  const ternq::matrix_view<const double> r = w;
  w(1, 1) = 5.0;
  CHECK(r(1, 1) == 5.0);
  CHECK(ternq::required_span(r) == 4);
}

TEST_CASE("row_span requires contiguous rows") {
  const auto buf = iota_buffer(12);
  const auto m = ternq::row_major(buf.data(), 3, 4);
  CHECK(m.row_span(1)[2] == 6.0F);
  CHECK_THROWS_WITH_AS((void)m.transposed().row_span(0),
                       "[ternq.invalid_argument] matrix_view::row_span: rows are not contiguous (column stride 4)",
                       ternq::error);
}

TEST_CASE("checks name the first non-finite element and shape problems") {
  std::vector<float> buf(6, 1.0F);
  buf[4] = std::numeric_limits<float>::quiet_NaN();
  const auto m = ternq::row_major(static_cast<const float*>(buf.data()), 2, 3);
  CHECK_THROWS_WITH_AS(ternq::require_finite(m, "ctx", "weights"), "[ternq.non_finite] ctx: NaN in weights at (1, 1)",
                       ternq::error);
  buf[4] = -std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(ternq::require_finite(m, "ctx", "weights"), "[ternq.non_finite] ctx: Inf in weights at (1, 1)",
                       ternq::error);
  CHECK_THROWS_WITH_AS(ternq::require_shape(m, 3, 2, "ctx", "output"),
                       "[ternq.shape_mismatch] ctx: output is 2x3, expected 3x2", ternq::error);
  CHECK_THROWS_WITH_AS(ternq::require_nonempty(m.block(0, 0, 2, 0), "ctx", "weight matrix"),
                       "[ternq.empty_matrix] ctx: weight matrix is empty (2x0)", ternq::error);
}
