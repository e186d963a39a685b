// SPDX-License-Identifier: MIT
// Adapters: Eigen and xtensor objects become views of the same memory with the right strides.
#include <doctest/doctest.h>

#include <vector>

#include <Eigen/Core>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "ternq/adapters/eigen.hpp"
#include "ternq/adapters/xtensor.hpp"
#include "ternq/core/adapt.hpp"

namespace {
template <class V, class Ref>
void check_same(const V& v, const Ref& ref) {
  REQUIRE(v.rows() == static_cast<std::size_t>(ref.rows()));
  REQUIRE(v.cols() == static_cast<std::size_t>(ref.cols()));
  for (Eigen::Index i = 0; i < ref.rows(); ++i) {
    for (Eigen::Index j = 0; j < ref.cols(); ++j) {
      CHECK(v(static_cast<std::size_t>(i), static_cast<std::size_t>(j)) == ref(i, j));
    }
  }
}
Eigen::MatrixXf sample(Eigen::Index r, Eigen::Index c) {
  Eigen::MatrixXf m(r, c);
  for (Eigen::Index i = 0; i < r; ++i) {
    for (Eigen::Index j = 0; j < c; ++j) m(i, j) = static_cast<float>(10 * i + j);
  }
  return m;
}
}  // namespace

TEST_CASE("Eigen dense matrices of either storage order") {
  const Eigen::MatrixXf col = sample(5, 7);
  const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row = col;
  const auto vc = ternq::as_view(col);
  const auto vr = ternq::as_view(row);
  CHECK(vc.cols_contiguous());
  CHECK(vr.rows_contiguous());
  check_same(vc, col);
  check_same(vr, col);
  static_assert(std::is_same_v<decltype(vc), const ternq::matrix_view<const float>>);
}

TEST_CASE("Eigen Map, Ref and blocks with an outer stride") {
  // 8 columns of 9 (6 used, 3 padding): the padded map below reaches element 9 * 7 + 5 = 68.
  std::vector<double> buf(8 * 9);
  for (std::size_t k = 0; k < buf.size(); ++k) buf[k] = static_cast<double>(k);
  const Eigen::Map<const Eigen::MatrixXd, 0, Eigen::OuterStride<>> padded(buf.data(), 6, 8, Eigen::OuterStride<>(9));
  check_same(ternq::as_view(padded), padded);
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> rm(buf.data(), 6, 9);
  check_same(ternq::as_view(rm), rm);

  const Eigen::MatrixXd full = padded;
  const auto block = full.block(1, 2, 4, 3);
  const auto vb = ternq::as_view(block);
  CHECK(vb.col_stride() == 6);
  check_same(vb, block);

  const Eigen::Ref<const Eigen::MatrixXd> ref = full.middleCols(2, 5);
  check_same(ternq::as_view(ref), ref);

  // Inner strides (a map over every other element) work too.
  const Eigen::Map<const Eigen::MatrixXd, 0, Eigen::Stride<Eigen::Dynamic, 2>> every_other(
      buf.data(), 3, 4, Eigen::Stride<Eigen::Dynamic, 2>(12, 2));
  check_same(ternq::as_view(every_other), every_other);
}

TEST_CASE("writable Eigen views write through to the matrix") {
  Eigen::MatrixXf m = Eigen::MatrixXf::Zero(3, 4);
  auto v = ternq::as_writable_view(m);
  v(2, 1) = 7.0F;
  CHECK(m(2, 1) == 7.0F);
  auto blk = m.block(1, 1, 2, 2);
  ternq::as_writable_view(blk)(0, 0) = 3.0F;
  CHECK(m(1, 1) == 3.0F);
}

TEST_CASE("xtensor containers, xarray and adaptors") {
  xt::xtensor<float, 2> t = xt::xtensor<float, 2>::from_shape({4, 6});
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j = 0; j < 6; ++j) t(i, j) = static_cast<float>(10 * i + j);
  }
  const Eigen::MatrixXf ref = sample(4, 6);
  check_same(ternq::as_view(t), ref);

  xt::xarray<float, xt::layout_type::column_major> a = t;
  const auto va = ternq::as_view(a);
  CHECK(va.cols_contiguous());
  check_same(va, ref);

  std::vector<float> buf(t.begin(), t.end());
  const auto adapted = xt::adapt(buf.data(), buf.size(), xt::no_ownership(), std::vector<std::size_t>{4, 6});
  check_same(ternq::as_view(adapted), ref);

  auto strided = xt::view(t, xt::range(1, 4), xt::range(2, 6));
  check_same(ternq::as_view(strided), ref.block(1, 2, 3, 4));
}

TEST_CASE("an xarray that is not 2-D is rejected by shape") {
  const xt::xarray<float> cube = xt::zeros<float>({2, 3, 4});
  CHECK_THROWS_WITH_AS(ternq::as_view(cube),
                       "[ternq.shape_mismatch] xtensor adapter: expression has 3 dimensions, expected 2", ternq::error);
}

TEST_CASE("dequantize helpers of the adapters return backend matrices") {
  ternq::ternary_matrix q(2, 3, ternq::per_row);
  q.row_codes(0)[0] = 1;
  q.row_codes(1)[2] = -1;
  q.scale(0, 0) = 0.5F;
  q.scale(1, 0) = 2.0F;
  const Eigen::MatrixXf e = ternq::eigen::dequantize(q);
  const xt::xtensor<float, 2> x = ternq::xtensor::dequantize(q);
  CHECK(e(0, 0) == 0.5F);
  CHECK(e(1, 2) == -2.0F);
  CHECK(x(0, 0) == 0.5F);
  CHECK(x(1, 2) == -2.0F);
  CHECK(ternq::eigen::codes(q)(1, 2) == -1);
}
