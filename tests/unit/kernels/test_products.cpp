// SPDX-License-Identifier: MIT
// The packed-matrix products: the portable reference against an independent dense formulation, every
// instruction-set variant and thread count against the reference, the activation rule, and bad input.
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>
#include <Eigen/Core>

#include <ternq/kernels.hpp>

#include "llm_like.hpp"
#include "packed_problems.hpp"

namespace {

using ternq::testing::row_matrix;
namespace kernels = ternq::kernels;

row_matrix run(const ternq::testing::packed_problem& p, const row_matrix& x, kernels::product_options o) {
  const kernels::packed_view w = kernels::make_packed_view(p.format, p.rows, p.cols, p.bytes);
  row_matrix y(x.rows(), static_cast<Eigen::Index>(p.rows));
  kernels::matmul(w, ternq::row_major(x.data(), static_cast<std::size_t>(x.rows()), p.cols),
                  ternq::row_major(y.data(), static_cast<std::size_t>(y.rows()), p.rows), o);
  return y;
}

/// The activations the int8 path multiplies by, dequantized: `q_j s_b` per block.
row_matrix dequantized_activations(const row_matrix& x, std::size_t block) {
  kernels::int8_activations q;
  kernels::quantize_activations(ternq::row_major(x.data(), static_cast<std::size_t>(x.rows()),
                                                 static_cast<std::size_t>(x.cols())),
                                block, q);
  row_matrix out(x.rows(), x.cols());
  for (std::size_t t = 0; t < q.n; ++t) {
    for (std::size_t j = 0; j < q.cols; ++j) {
      out(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(j)) =
          static_cast<float>(q.codes(t)[j]) * q.scales(t)[j / block];
    }
  }
  return out;
}

/// |y - reference| <= tol * sum_j |w_j x_j| + 1e-30, entry by entry, for `reference = x W^T` in double.
void check_close(const row_matrix& y, const row_matrix& w, const row_matrix& x, double tol) {
  const Eigen::MatrixXd exact = x.cast<double>() * w.cast<double>().transpose();
  const Eigen::MatrixXd scale = x.cast<double>().cwiseAbs() * w.cast<double>().cwiseAbs().transpose();
  for (Eigen::Index t = 0; t < y.rows(); ++t) {
    for (Eigen::Index r = 0; r < y.cols(); ++r) {
      const double err = std::abs(static_cast<double>(y(t, r)) - exact(t, r));
      if (err > tol * scale(t, r) + 1e-30) {
        FAIL_CHECK("entry (" << t << ", " << r << "): " << y(t, r) << " vs " << exact(t, r));
        return;
      }
    }
  }
}

bool identical(const row_matrix& a, const row_matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::equal(a.data(), a.data() + a.size(), b.data(), [](float u, float v) {
           return std::bit_cast<std::uint32_t>(u) == std::bit_cast<std::uint32_t>(v);
         });
}

struct shape {
  std::size_t rows, cols, n;
};

/// Shapes per format: rows that fill no whole row piece, a single block per row, several blocks, batches of 1..64.
std::vector<shape> shapes_of(ternq::pack::format f) {
  const std::size_t b = ternq::pack::traits_of(f).block_elements;
  return {{1, b, 1}, {67, 2 * b, 1}, {130, 3 * b, 5}, {64, 4 * b, 64}, {3, 1024, 17}};
}

}  // namespace

TEST_CASE("the reference products equal a dense product of the dequantized operands") {
  for (const ternq::pack::format f : ternq::pack::all_formats) {
    CAPTURE(ternq::pack::name_of(f));
    for (const shape& sh : shapes_of(f)) {
      const std::size_t rows = sh.rows, cols = sh.cols, n = sh.n;  // CAPTURE cannot name structured bindings (Clang 14)
      CAPTURE(rows);
      CAPTURE(cols);
      CAPTURE(n);
      const auto p = ternq::testing::random_packed(f, rows, cols, 11 + rows + cols, 0.4, true);
      const row_matrix x = ternq::testing::llm_like_activations(n, cols, 5 + n);
      const kernels::product_options portable{.exec = {.threads = 1, .simd = ternq::simd_level::portable}};
      // f32: the exact product, rounded once per block scale and once at the end.
      check_close(run(p, x, {.activations = kernels::activation_precision::f32, .exec = portable.exec}), p.values, x,
                  4e-7);
      // int8: the exact product with the quantized activations; `d s` is one float product.
      const std::size_t block = ternq::pack::traits_of(f).block_elements;
      check_close(run(p, x, portable), p.values, dequantized_activations(x, block), 4e-7);
      // ... which is near the f32 product: per block, the rounding of the activations is at most s_b / 2.
      const row_matrix y8 = run(p, x, portable);
      const Eigen::MatrixXd exact = x.cast<double>() * p.values.cast<double>().transpose();
      const Eigen::MatrixXd scale = x.cast<double>().cwiseAbs().rowwise().maxCoeff().asDiagonal() *
                                    Eigen::MatrixXd::Ones(x.rows(), 1) *
                                    p.values.cast<double>().cwiseAbs().rowwise().sum().transpose();
      CHECK(((y8.cast<double>() - exact).array().abs() <= scale.array() / 254.0 + 1e-30).all());
    }
  }
}

TEST_CASE("every variant and thread count gives the reference: int8 bit for bit, f32 within the stated bound") {
  const std::vector<ternq::simd_level> levels = ternq::supported_simd_levels();
  MESSAGE("variants compared: " << levels.size() << " (best here: " << ternq::simd_level_name(ternq::best_simd_level())
                                << ")");
  for (const ternq::pack::format f : ternq::pack::all_formats) {
    CAPTURE(ternq::pack::name_of(f));
    for (const auto& [rows, cols, n] : shapes_of(f)) {
      const auto p = ternq::testing::random_packed(f, rows, cols, 3 * rows + cols, 0.4, true);
      const row_matrix x = ternq::testing::llm_like_activations(n, cols, 9 + n);
      const ternq::cpu_exec one{.threads = 1, .simd = ternq::simd_level::portable};
      const row_matrix ref8 = run(p, x, {.exec = one});
      const row_matrix ref32 = run(p, x, {.activations = kernels::activation_precision::f32, .exec = one});
      const Eigen::MatrixXd abs_sum = x.cast<double>().cwiseAbs() * p.values.cast<double>().cwiseAbs().transpose();
      for (const ternq::simd_level level : levels) {
        for (const unsigned threads : {1U, 2U, 3U}) {
          CAPTURE(ternq::simd_level_name(level));
          CAPTURE(threads);
          const ternq::cpu_exec exec{.threads = threads, .simd = level};
          CHECK(identical(run(p, x, {.exec = exec}), ref8));
          const row_matrix y32 = run(p, x, {.activations = kernels::activation_precision::f32, .exec = exec});
          bool within = true;
          for (Eigen::Index t = 0; t < y32.rows(); ++t) {
            for (Eigen::Index r = 0; r < y32.cols(); ++r) {
              within = within && std::abs(static_cast<double>(y32(t, r)) - static_cast<double>(ref32(t, r))) <=
                                     kernels::f32_path_bound(cols, abs_sum(t, r)) + 1e-30;
            }
          }
          CHECK(within);
        }
      }
    }
  }
}

TEST_CASE("a batch gives the vectors' products one by one, bit for bit") {
  for (const ternq::pack::format f : ternq::pack::all_formats) {
    CAPTURE(ternq::pack::name_of(f));
    const std::size_t cols = 2 * ternq::pack::traits_of(f).block_elements;
    const auto p = ternq::testing::random_packed(f, 70, cols, 77);
    const row_matrix x = ternq::testing::llm_like_activations(9, cols, 78);
    for (const auto precision : {kernels::activation_precision::int8, kernels::activation_precision::f32}) {
      const row_matrix batch = run(p, x, {.activations = precision});
      for (Eigen::Index t = 0; t < x.rows(); ++t) {
        const row_matrix one = x.row(t);
        CHECK(identical(run(p, one, {.activations = precision}), batch.row(t)));
      }
    }
  }
}

TEST_CASE("matvec is the one-vector product, and activations quantized once serve several matrices") {
  const auto p = ternq::testing::random_packed(ternq::pack::format::tq2_0, 96, 512, 5);
  const auto p2 = ternq::testing::random_packed(ternq::pack::format::tq2_0, 40, 512, 6);
  const row_matrix x = ternq::testing::llm_like_activations(1, 512, 7);
  const kernels::packed_view w = kernels::make_packed_view(p.format, p.rows, p.cols, p.bytes);
  const kernels::packed_view w2 = kernels::make_packed_view(p2.format, p2.rows, p2.cols, p2.bytes);
  std::vector<float> y(96);
  kernels::matvec(w, std::span<const float>(x.data(), 512), y);
  const row_matrix expected = run(p, x, {});
  CHECK(std::equal(y.begin(), y.end(), expected.data()));
  kernels::int8_activations q;
  kernels::quantize_activations(ternq::row_major(x.data(), 1, 512), 256, q);
  row_matrix y1(1, 96), y2(1, 40);
  kernels::matmul(w, q, ternq::row_major(y1.data(), 1, 96));
  kernels::matmul(w2, q, ternq::row_major(y2.data(), 1, 40));
  CHECK(identical(y1, expected));
  CHECK(identical(y2, run(p2, x, {})));
}

TEST_CASE("int8 activations: the rounding rule, zero blocks, sums") {
  std::vector<float> x(64, 0.0F);
  x[0] = -2.0F;       // the block's amax: -127
  x[1] = 1.0F;        // 63.5 rounds to even: 64
  x[2] = 3.0F / 127;  // 1.5 -> 2
  x[3] = 1.0F / 254;  // 0.25 -> 0... scaled by 127/2: 0.25 -> 0
  std::vector<float> zeros(64, 0.0F);
  x.insert(x.end(), zeros.begin(), zeros.end());
  kernels::int8_activations q;
  kernels::quantize_activations(ternq::row_major(x.data(), 1, 128), 64, q);
  REQUIRE(q.blocks() == 2);
  CHECK(q.codes(0)[0] == -127);
  CHECK(q.codes(0)[1] == 64);
  CHECK(q.codes(0)[2] == 2);
  CHECK(q.codes(0)[3] == 0);
  CHECK(q.scales(0)[0] == 2.0F / 127.0F);
  CHECK(q.sums(0)[0] == -127 + 64 + 2);
  CHECK(q.scales(0)[1] == 0.0F);
  CHECK(q.sums(0)[1] == 0);
  for (std::size_t j = 64; j < 128; ++j) CHECK(q.codes(0)[j] == 0);
}

TEST_CASE("code 3 of the 2-bit formats reads as +2, as ggml dequantizes it") {
  std::vector<std::uint8_t> block(18, 0xFF);  // Q2_0: every code 3
  ternq::pack::store_le(block.data(), ternq::fp32_to_fp16_bits(0.5F));
  const kernels::packed_view w = kernels::make_packed_view(ternq::pack::format::q2_0, 1, 64, block);
  const std::vector<float> x(64, 1.0F);
  float y32 = 0.0F, y8 = 0.0F;
  kernels::matvec(w, x, std::span<float>(&y32, 1), {.activations = kernels::activation_precision::f32});
  kernels::matvec(w, x, std::span<float>(&y8, 1));
  CHECK(y32 == 64.0F);  // 64 x (+2 x 0.5)
  CHECK(y8 == doctest::Approx(64.0F).epsilon(1e-6));
}

TEST_CASE("bad operands are refused with the problem named") {
  const auto p = ternq::testing::random_packed(ternq::pack::format::tq2_0, 4, 256, 1);
  const std::span<const std::uint8_t> bytes(p.bytes);
  CHECK_THROWS_WITH_AS((void)kernels::make_packed_view(ternq::pack::format::tq2_0, 4, 128, bytes),
                       "[ternq.shape_mismatch] packed TQ2_0 matrix: in_features 128 is not a multiple of the "
                       "256-element block",
                       ternq::error);
  CHECK_THROWS_WITH_AS((void)kernels::make_packed_view(ternq::pack::format::tq2_0, 5, 256, bytes),
                       "[ternq.shape_mismatch] packed TQ2_0: 264 bytes for a 5x256 matrix (expected 330)",
                       ternq::error);
  CHECK_THROWS_AS((void)kernels::make_packed_view(ternq::pack::format::tq2_0, 0, 256, bytes.first(0)), ternq::error);
  std::vector<std::uint8_t> bad = p.bytes;
  ternq::pack::store_le(&bad.at(66 + 64), std::uint16_t{0x7C00});  // row 1's scale: +Inf
  CHECK_THROWS_WITH_AS((void)kernels::make_packed_view(ternq::pack::format::tq2_0, 4, 256, bad),
                       "[ternq.non_finite] packed TQ2_0 matrix: the scale of row 1, block 0 is not finite (inf)",
                       ternq::error);
  const kernels::packed_view w = kernels::make_packed_view(ternq::pack::format::tq2_0, 4, 256, bytes);
  std::vector<float> x(256, 1.0F), y(4);
  CHECK_THROWS_WITH_AS(kernels::matvec(w, std::span<const float>(x).first(255), y),
                       "[ternq.shape_mismatch] packed product: activations of 255 features for a 4x256 TQ2_0 matrix",
                       ternq::error);
  CHECK_THROWS_WITH_AS(kernels::matvec(w, x, std::span<float>(y).first(3)),
                       "[ternq.shape_mismatch] packed product: the output is 1x3, expected 1x4", ternq::error);
  x[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(kernels::matvec(w, x, y), "[ternq.non_finite] packed product: activation nan at (0, 7) is not finite",
                       ternq::error);
  x[7] = 1.0F;
  kernels::int8_activations q;
  kernels::quantize_activations(ternq::row_major(x.data(), 1, 256), 64, q);
  CHECK_THROWS_WITH_AS(kernels::matmul(w, q, ternq::row_major(y.data(), 1, 4)),
                       "[ternq.shape_mismatch] packed product: activations quantized in blocks of 64 for TQ2_0's "
                       "blocks of 256",
                       ternq::error);
}

TEST_CASE("int8 activations: blocks so small that 127 / amax overflows quantize like any other") {
  std::vector<float> x(64, 0.0F);
  x[0] = 0x1p-127F;   // amax: 127 / 2^-127 is beyond the float range
  x[1] = -0x1p-128F;  // half of it: -63.5 rounds to even, -64
  for (const ternq::simd_level level : ternq::supported_simd_levels()) {
    kernels::int8_activations q;
    kernels::quantize_activations(ternq::row_major(x.data(), 1, 64), 64, q, level);
    CHECK(q.codes(0)[0] == 127);
    CHECK(q.codes(0)[1] == -64);
    for (std::size_t j = 2; j < 64; ++j) CHECK(q.codes(0)[j] == 0);
    CHECK(q.sums(0)[0] == 63);
    CHECK(q.scales(0)[0] == 0x1p-127F / 127.0F);
  }
}
