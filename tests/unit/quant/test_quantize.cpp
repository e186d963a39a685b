// SPDX-License-Identifier: MIT
// quantize(): identical results through every backend and thread count; bad input; degenerate input.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <span>
#include <tuple>
#include <variant>
#include <vector>

#include <Eigen/Core>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "llm_like.hpp"
#include "ternq/adapters/eigen.hpp"
#include "ternq/adapters/span.hpp"
#include "ternq/adapters/xtensor.hpp"
#include "ternq/ternq.hpp"

namespace {

using ternq::testing::row_matrix;
using symmetric_method = std::variant<ternq::absmean, ternq::twn, ternq::optimal_symmetric>;

std::vector<symmetric_method> all_methods(ternq::group_size_option g) {
  return {ternq::absmean{.group_size = g}, ternq::twn{.group_size = g}, ternq::optimal_symmetric{.group_size = g}};
}

ternq::ternary_matrix run(const auto& w, const symmetric_method& m, ternq::cpu_exec exec = {.threads = 1}) {
  return std::visit([&](const auto& method) { return ternq::quantize(exec, w, method); }, m);
}

void check_identical(const ternq::ternary_matrix& a, const ternq::ternary_matrix& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  CHECK(a.group_size() == b.group_size());
  CHECK(std::equal(a.codes().begin(), a.codes().end(), b.codes().begin()));
  CHECK(std::equal(a.scales().begin(), a.scales().end(), b.scales().begin()));
}

// The same matrix presented through each backend.
struct span_row_major {
  std::vector<float> buf;
  std::size_t rows, cols;
  explicit span_row_major(const row_matrix& w)
      : buf(w.data(), w.data() + w.size()),
        rows(static_cast<std::size_t>(w.rows())),
        cols(static_cast<std::size_t>(w.cols())) {}
  auto get() const { return ternq::row_major(std::span<const float>(buf), rows, cols); }
};
struct span_col_major {
  std::vector<float> buf;
  std::size_t rows, cols;
  explicit span_col_major(const row_matrix& w)
      : rows(static_cast<std::size_t>(w.rows())), cols(static_cast<std::size_t>(w.cols())) {
    const Eigen::MatrixXf c = w;
    buf.assign(c.data(), c.data() + c.size());
  }
  auto get() const { return ternq::col_major(std::span<const float>(buf), rows, cols); }
};
struct eigen_col_major {
  Eigen::MatrixXf m;
  explicit eigen_col_major(const row_matrix& w) : m(w) {}
  const auto& get() const { return m; }
};
struct eigen_row_major {
  row_matrix m;
  explicit eigen_row_major(const row_matrix& w) : m(w) {}
  const auto& get() const { return m; }
};
struct eigen_padded_block {
  Eigen::MatrixXf big;
  Eigen::Index r, c;
  explicit eigen_padded_block(const row_matrix& w)
      : big(Eigen::MatrixXf::Zero(w.rows() + 3, w.cols() + 5)), r(w.rows()), c(w.cols()) {
    big.block(2, 1, r, c) = w;
  }
  auto get() const { return big.block(2, 1, r, c); }
};
struct xtensor_row_major {
  xt::xtensor<float, 2> t;
  explicit xtensor_row_major(const row_matrix& w)
      : t(xt::adapt(w.data(), static_cast<std::size_t>(w.size()), xt::no_ownership(),
                    std::vector<std::size_t>{static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols())})) {
  }
  const auto& get() const { return t; }
};
struct xarray_col_major {
  xt::xarray<float, xt::layout_type::column_major> a;
  explicit xarray_col_major(const row_matrix& w) : a(xtensor_row_major(w).t) {}
  const auto& get() const { return a; }
};

}  // namespace

TEST_CASE_TEMPLATE("every backend gives the result of the row-major span view", Backend, span_col_major,
                   eigen_col_major, eigen_row_major, eigen_padded_block, xtensor_row_major, xarray_col_major) {
  for (std::uint64_t seed : {1ULL, 2ULL}) {
    const row_matrix w = ternq::testing::llm_like_weights(24, 300, seed);  // 300 = 2 x 128 + a short group of 44
    const span_row_major reference(w);
    const Backend backend(w);
    for (const auto& method : all_methods(128)) {
      check_identical(run(backend.get(), method), run(reference.get(), method));
    }
  }
}

TEST_CASE("results are bit-identical for every thread count") {
  const row_matrix w = ternq::testing::llm_like_weights(37, 256, 5);
  for (const auto& method : all_methods(64)) {
    const auto one = run(w, method, {.threads = 1});
    for (unsigned t : {2U, 3U, 7U}) check_identical(run(w, method, {.threads = t}), one);
  }
}

TEST_CASE("float and double weights with the same values give the same codes") {
  const row_matrix w = ternq::testing::llm_like_weights(8, 256, 3);
  const Eigen::MatrixXd wd = w.cast<double>();
  for (const auto& method : all_methods(128)) {
    const auto qf = run(w, method);
    const auto qd = run(wd, method);
    CHECK(std::equal(qf.codes().begin(), qf.codes().end(), qd.codes().begin()));
    for (std::size_t k = 0; k < qf.scales().size(); ++k) {
      CHECK(qf.scales()[k] == doctest::Approx(qd.scales()[k]).epsilon(1e-6));
    }
  }
}

TEST_CASE("group-wise quantize equals the per-group functions, including the last short group") {
  const row_matrix w = ternq::testing::llm_like_weights(4, 300, 9);
  const auto q = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 128});
  REQUIRE(q.groups_per_row() == 3);
  std::vector<std::int8_t> codes(44);
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    const float alpha = ternq::optimal_symmetric_fit_group(std::span<const float>(&w(i, 256), 44), std::span(codes));
    CHECK(q.scale(static_cast<std::size_t>(i), 2) == alpha);
    CHECK(std::equal(codes.begin(), codes.end(), q.row_codes(static_cast<std::size_t>(i)).begin() + 256));
  }
  const auto per_row = ternq::quantize(w, ternq::twn{.group_size = ternq::per_row});
  CHECK(per_row.groups_per_row() == 1);
  CHECK(per_row.group_size() == 300);
}

TEST_CASE("quantize output invariants: codes in range, dequantize = scale * code") {
  const row_matrix w = ternq::testing::llm_like_weights(16, 200, 4);
  for (const auto& method : all_methods(64)) {
    const auto q = run(w, method);
    CHECK_NOTHROW(q.validate());
    CHECK(q.is_symmetric());
    CHECK_FALSE(q.has_permutation());
    const Eigen::MatrixXf d = ternq::eigen::dequantize(q);
    for (std::size_t i = 0; i < q.rows(); ++i) {
      for (std::size_t j = 0; j < q.cols(); ++j) {
        CHECK(d(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) ==
              q.scale(i, j / 64) * static_cast<float>(q.code(i, j)));
      }
    }
  }
}

TEST_CASE("degenerate but valid input: zero rows, constant groups") {
  row_matrix w = ternq::testing::llm_like_weights(6, 256, 8);
  w.row(2).setZero();
  w.block(4, 128, 1, 128).setConstant(-0.125F);
  for (const auto& method : all_methods(128)) {
    const auto q = run(w, method);
    for (std::size_t j = 0; j < 256; ++j) CHECK(q.code(2, j) == 0);
    CHECK(q.scale(2, 0) == 0.0F);
    CHECK(q.scale(2, 1) == 0.0F);
    // A constant group is reproduced exactly.
    CHECK(q.scale(4, 1) == 0.125F);
    for (std::size_t j = 128; j < 256; ++j) CHECK(q.value(4, j) == -0.125F);
  }
}

TEST_CASE("bad input is refused with the id and a message naming the problem") {
  row_matrix w = ternq::testing::llm_like_weights(4, 16, 1);
  w(2, 5) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::absmean{}),
                       "[ternq.non_finite] quantize(absmean): NaN in weights at (2, 5)", ternq::error);
  w(2, 5) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::optimal_symmetric{}),
                       "[ternq.non_finite] quantize(optimal_symmetric): Inf in weights at (2, 5)", ternq::error);
  w(2, 5) = 0.0F;
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::twn{.group_size = 0}),
                       "[ternq.zero_group_size] ternary_matrix: group size must be at least 1 (got 0)", ternq::error);
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::twn{.threshold_ratio = std::numeric_limits<double>::quiet_NaN()}),
                       "[ternq.invalid_argument] quantize(twn): threshold_ratio must be finite and >= 0 (got nan)",
                       ternq::error);
  const row_matrix empty(0, 16);
  CHECK_THROWS_WITH_AS(ternq::quantize(empty, ternq::absmean{}),
                       "[ternq.empty_matrix] quantize(absmean): weight matrix is empty (0x16)", ternq::error);
  const Eigen::MatrixXd gram = Eigen::MatrixXd::Identity(15, 15);
  CHECK_THROWS_WITH_AS(ternq::quantize(w, ternq::absmean{}, gram),
                       "[ternq.shape_mismatch] quantize: gram matrix is 15x15 but the weights have 16 columns "
                       "(expected 16x16)",
                       ternq::error);
  Eigen::MatrixXd huge = Eigen::MatrixXd::Ones(2, 4);
  huge(1, 3) = 1e39;
  CHECK_THROWS_WITH_AS(ternq::quantize(huge, ternq::absmean{}),
                       "[ternq.unsupported] quantize(absmean): weight 1e+39 at (1, 3) is outside the float range of "
                       "ternary scales",
                       ternq::error);
}

TEST_CASE("data-free methods accept (and ignore) a well-formed Gram matrix") {
  const row_matrix w = ternq::testing::llm_like_weights(8, 64, 2);
  const Eigen::MatrixXd gram = Eigen::MatrixXd::Identity(64, 64);
  check_identical(ternq::quantize(w, ternq::twn{}, gram), ternq::quantize(w, ternq::twn{}));
}

TEST_CASE("every instruction-set variant gives the portable result bit for bit") {
  const std::vector<ternq::simd_level> levels = ternq::supported_simd_levels();
  MESSAGE("variants compared: " << levels.size() << " (best here: " << ternq::simd_level_name(ternq::best_simd_level())
                                << ")");
  // Shapes with group tails, per-row groups longer than a reduction block, and a strided (column-major) input.
  for (const auto& [rows, cols, g] : {std::tuple{9, 300, 128}, std::tuple{5, 1031, 0}, std::tuple{16, 64, 16}}) {
    const row_matrix w = ternq::testing::llm_like_weights(rows, cols, 17 + cols);
    const Eigen::MatrixXf col_major = w;
    const Eigen::MatrixXd wd = w.cast<double>();
    const ternq::group_size_option gs = g == 0 ? ternq::per_row : ternq::group_size_option(g);
    for (const auto& method : all_methods(gs)) {
      const auto reference = run(w, method, {.threads = 1, .simd = ternq::simd_level::portable});
      const auto reference_d = run(wd, method, {.threads = 1, .simd = ternq::simd_level::portable});
      for (auto level : levels) {
        check_identical(run(w, method, {.threads = 2, .simd = level}), reference);
        check_identical(run(col_major, method, {.threads = 1, .simd = level}), reference);
        check_identical(run(wd, method, {.threads = 1, .simd = level}), reference_d);
      }
    }
  }
}

TEST_CASE("simd levels: names and support") {
  CHECK(ternq::simd_level_name(ternq::simd_level::portable) == "portable");
  CHECK(ternq::simd_level_name(ternq::simd_level::avx2) == "avx2");
  CHECK(ternq::simd_level_name(ternq::simd_level::avx512) == "avx512");
  CHECK(ternq::simd_supported(ternq::simd_level::portable));
  CHECK(ternq::supported_simd_levels().front() == ternq::simd_level::portable);
  CHECK(ternq::supported_simd_levels().back() == ternq::best_simd_level());
  // AVX-512 here implies AVX2: a processor never runs the wider variant without the narrower.
  if (ternq::simd_supported(ternq::simd_level::avx512)) CHECK(ternq::simd_supported(ternq::simd_level::avx2));
  CHECK(ternq::cpu_exec{.simd = ternq::simd_level::portable}.simd_variant() == ternq::simd_level::portable);
  if (!ternq::simd_supported(ternq::simd_level::avx2)) {
    CHECK_THROWS_WITH_AS((void)ternq::cpu_exec{.simd = ternq::simd_level::avx2}.simd_variant(),
                         "[ternq.unsupported] cpu_exec: the avx2 variant is not available on this processor or build",
                         ternq::error);
  }
}
