// SPDX-License-Identifier: MIT
// The device's refit_scales_to_output against the CPU's. The systems are the same sums in double in other orders
// and a well-posed row is solved by Cholesky instead of LDLT, so the test asks: the same codes and permutation, the
// errors before the refit within 1e-9 relative, after it within 1e-6 relative (1e-6 of the error before where the
// optimum is near zero), never above the errors before, the report's figure within 1e-9 of the CPU's
// `output_error` of the returned matrix, and for well-posed systems all but 1% of the scales within 1e-4 relative
// of the CPU's (one fp16 step for fp16 grids: a solution near a rounding boundary may round the other way). Part of
// ternq_tests_cuda, which exits 77 (skipped) without a device.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include <Eigen/Core>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "cuda_quant_runner.hpp"
#include "layer_problems.hpp"
#include "llm_like.hpp"

namespace {

using ternq::testing::gram_of;
using ternq::testing::row_matrix;
using ternq::testing::weights_of;

bool close(double a, double b, double rel) { return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b)); }

ternq::matrix_view<const float> view_of(const row_matrix& w) {
  return ternq::row_major(w.data(), static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
}

ternq::matrix_view<const double> view_of(const Eigen::MatrixXd& c) {
  return ternq::col_major(c.data(), static_cast<std::size_t>(c.rows()), static_cast<std::size_t>(c.cols()));
}

/// Whether the rows' systems are well posed, so the new scales themselves (not only the errors) must agree.
enum class posed { well, singular };

/// Refits `q` on the CPU and on the device and compares them as the file comment says; returns the device's matrix.
/// For singular systems only the errors are compared: the least-norm solutions of a rank-deficient system hang on
/// which eigenvalues each side's cut keeps, and rows whose error is already at its optimum may go either way.
ternq::ternary_matrix check_against_cpu(const ternq::ternary_matrix& q, const row_matrix& w, const Eigen::MatrixXd& c,
                                        ternq::grid_precision precision, posed systems = posed::well) {
  ternq::ternary_matrix cpu = q, gpu = q;
  const ternq::scale_refit_report a = ternq::refit_scales_to_output(cpu, w, c, precision);
  const ternq::scale_refit_report b = ternq::testing::cuda::refit_on_device(gpu, view_of(w), view_of(c), precision);
  CHECK(std::ranges::equal(gpu.codes(), q.codes()));
  CHECK(std::ranges::equal(gpu.permutation(), q.permutation()));
  CHECK(close(a.output_error_before, b.output_error_before, 1e-9));
  CHECK(std::abs(a.output_error_after - b.output_error_after) <= 1e-6 * a.output_error_before);
  CHECK(b.output_error_after <= b.output_error_before);
  // the report's sum against the returned matrix's error (absolute: at an optimum near zero both are rounding)
  CHECK(std::abs(b.output_error_after - ternq::output_error(w, gpu, c)) <= 1e-9 * b.output_error_before);
  for (const float s : gpu.scales()) CHECK(s == ternq::round_to(precision, s));
  if (systems == posed::singular) return gpu;
  const std::size_t rows = q.rows();
  CHECK(static_cast<std::size_t>(std::abs(static_cast<long>(a.rows_changed) - static_cast<long>(b.rows_changed))) <=
        std::max<std::size_t>(1, rows / 100));
  const double tolerance = precision == ternq::grid_precision::fp16 ? 1e-3 : 1e-4;
  std::size_t apart = 0;
  for (std::size_t k = 0; k < q.scales().size(); ++k) {
    apart += close(cpu.scales()[k], gpu.scales()[k], tolerance) ? 0 : 1;
  }
  CHECK(apart <= q.scales().size() / 100);
  return gpu;
}

}  // namespace

TEST_CASE("CUDA scale refit follows the CPU's on random and LLM-like layers, in every order and grid precision") {
  for (const bool llm : {false, true}) {
    CAPTURE(llm);
    const std::size_t rows = 150, cols = 96;
    const row_matrix w = weights_of(rows, cols, 11, llm);
    const Eigen::MatrixXd c = gram_of(400, cols, 11, llm);
    for (const auto group :
         {ternq::group_size_option(32), ternq::group_size_option(40), ternq::group_size_option(ternq::per_row)}) {
      for (const ternq::block_order& order : std::vector<ternq::block_order>{ternq::sequential{}, ternq::act_order{}}) {
        const ternq::ternary_matrix q =
            ternq::quantize(w, ternq::gptq{.grid = ternq::optimal_symmetric{.group_size = group}, .order = order}, c);
        for (const auto precision : {ternq::grid_precision::fp32, ternq::grid_precision::fp16}) {
          (void)check_against_cpu(q, w, c, precision);
        }
      }
    }
  }
}

TEST_CASE("CUDA scale refit on degenerate input: zero rows and groups, dead channels, singular and zero metrics") {
  row_matrix w = weights_of(12, 70, 4, true);  // groups 32, 32, 6
  w.row(3).setZero();
  w.block(5, 32, 1, 32).setZero();
  Eigen::MatrixXd c = gram_of(200, 70, 4, true);
  c.row(10).setZero();  // a dead input channel
  c.col(10).setZero();
  const ternq::ternary_matrix q = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 32});
  const ternq::ternary_matrix gpu = check_against_cpu(q, w, c, ternq::grid_precision::fp32);
  for (const float s : gpu.scales()) CHECK(std::isfinite(s));
  for (std::size_t j = 0; j < 70; ++j) CHECK(gpu.value(3, j) == 0.0F);   // the zero row stays zero
  for (std::size_t j = 32; j < 64; ++j) CHECK(gpu.value(5, j) == 0.0F);  // and the zero group

  // a whole group's channels dead: its codes have no say, and its scales are kept
  Eigen::MatrixXd dead_group = gram_of(200, 70, 5, true);
  dead_group.middleRows(32, 32).setZero();
  dead_group.middleCols(32, 32).setZero();
  const ternq::ternary_matrix kept = check_against_cpu(q, w, dead_group, ternq::grid_precision::fp32);
  for (std::size_t i = 0; i < 12; ++i) CHECK(kept.scale(i, 1) == q.scale(i, 1));

  // a rank-one metric: every row's system is singular, solved by the least-norm fallback on both sides
  const Eigen::VectorXd v = Eigen::VectorXd::LinSpaced(70, -1.0, 2.0);
  const Eigen::MatrixXd rank_one = v * v.transpose();
  (void)check_against_cpu(q, w, rank_one, ternq::grid_precision::fp32, posed::singular);

  // no activations: nothing to fit, nothing changes
  ternq::ternary_matrix zero = q;
  const ternq::scale_refit_report none = ternq::testing::cuda::refit_on_device(
      zero, view_of(w), view_of(Eigen::MatrixXd::Zero(70, 70).eval()), ternq::grid_precision::fp32);
  CHECK(none.rows_changed == 0);
  CHECK(none.output_error_before == 0.0);
  CHECK(std::ranges::equal(zero.scales(), q.scales()));
}

TEST_CASE("CUDA scale refit takes a float, column-major, row-major or strided Gram matrix") {
  const row_matrix w = weights_of(40, 128, 6, true);
  const Eigen::MatrixXd c = gram_of(300, 128, 6, true);
  const ternq::ternary_matrix q =
      ternq::quantize(w, ternq::gptq{.grid = ternq::optimal_aga{.group_size = 64}, .order = ternq::act_order{}}, c);
  ternq::ternary_matrix packed = q, strided = q, transposed = q, single = q;
  const auto reference =
      ternq::testing::cuda::refit_on_device(packed, view_of(w), view_of(c), ternq::grid_precision::fp32);
  Eigen::MatrixXd tall = Eigen::MatrixXd::Zero(140, 128);  // C in its top rows: columns 140 apart
  tall.topRows(128) = c;
  (void)ternq::testing::cuda::refit_on_device(strided, view_of(w),
                                              ternq::matrix_view<const double>(tall.data(), 128, 128, 1, 140),
                                              ternq::grid_precision::fp32);
  CHECK(std::ranges::equal(strided.scales(), packed.scales()));  // packed on the host, then the same path
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rc = c;
  (void)ternq::testing::cuda::refit_on_device(transposed, view_of(w), ternq::row_major(rc.data(), 128, 128),
                                              ternq::grid_precision::fp32);
  CHECK(std::ranges::equal(transposed.scales(), packed.scales()));
  const Eigen::MatrixXf cf = c.cast<float>();
  const auto from_float = ternq::testing::cuda::refit_on_device(
      single, view_of(w), ternq::col_major(cf.data(), 128, 128), ternq::grid_precision::fp32);
  CHECK(close(from_float.output_error_before, reference.output_error_before, 1e-5));
  CHECK(from_float.output_error_after <= from_float.output_error_before);
}

TEST_CASE("CUDA scale refit refuses what the CPU refuses, with its messages") {
  const row_matrix w = weights_of(8, 64, 2, false);
  const Eigen::MatrixXd c = gram_of(100, 64, 2, false);
  ternq::ternary_matrix asym = ternq::quantize(w, ternq::itf{.group_size = 32});
  CHECK_THROWS_WITH_AS(ternq::testing::cuda::refit_on_device(asym, view_of(w), view_of(c), ternq::grid_precision::fp32),
                       doctest::Contains("offsets"), ternq::error);
  ternq::ternary_matrix q = ternq::quantize(w, ternq::twn{.group_size = 32});
  const Eigen::MatrixXd small = c.topLeftCorner(32, 32);
  CHECK_THROWS_WITH_AS(
      ternq::testing::cuda::refit_on_device(q, view_of(w), view_of(small), ternq::grid_precision::fp32),
      doctest::Contains("Gram matrix 32x32"), ternq::error);
  const row_matrix other = weights_of(9, 64, 2, false);
  CHECK_THROWS_WITH_AS(
      ternq::testing::cuda::refit_on_device(q, view_of(other), view_of(c), ternq::grid_precision::fp32),
      doctest::Contains("weights 9x64"), ternq::error);
}
