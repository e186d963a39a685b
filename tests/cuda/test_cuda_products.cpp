// SPDX-License-Identifier: MIT
// The CUDA packed products against the CPU reference (f32 path, within its stated bound). Exits 77 (CTest:
// skipped) where no CUDA device can be used: this test has run only where it says it passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include <ternq/kernels.hpp>

#include "cuda_products_runner.hpp"
#include "llm_like.hpp"
#include "packed_problems.hpp"

TEST_CASE("CUDA TQ2_0 and Q2_0 products equal the CPU reference within the f32 bound") {
  for (const ternq::pack::format f : {ternq::pack::format::tq2_0, ternq::pack::format::q2_0}) {
    CAPTURE(ternq::pack::name_of(f));
    const std::size_t block = ternq::pack::traits_of(f).block_elements;
    for (const auto& shape : {std::tuple<std::size_t, std::size_t, std::size_t>{1, block, 1},
                              {67, 3 * block, 1}, {130, 4 * block, 5}, {64, 1024, 64}, {4096, 4096, 1}}) {
      // Plain copies, not structured bindings: Clang 14 cannot capture bindings in CAPTURE's lambda.
      const std::size_t rows = std::get<0>(shape), cols = std::get<1>(shape), n = std::get<2>(shape);
      CAPTURE(rows);
      CAPTURE(n);
      const auto p = ternq::testing::random_packed(f, rows, cols, rows + cols + n, 0.4, true);
      const ternq::testing::row_matrix x = ternq::testing::llm_like_activations(n, cols, 3 + n);
      const std::vector<float> y = ternq::testing::cuda::packed_matmul(
          f, rows, cols, p.bytes, std::span<const float>(x.data(), static_cast<std::size_t>(x.size())), n);
      const ternq::kernels::packed_view w = ternq::kernels::make_packed_view(f, rows, cols, p.bytes);
      ternq::testing::row_matrix ref(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(rows));
      ternq::kernels::matmul(w, ternq::row_major(x.data(), n, cols), ternq::row_major(ref.data(), n, rows),
                             {.activations = ternq::kernels::activation_precision::f32});
      const Eigen::MatrixXd abs_sum = x.cast<double>().cwiseAbs() * p.values.cast<double>().cwiseAbs().transpose();
      std::size_t bad = 0;
      for (std::size_t t = 0; t < n; ++t) {
        for (std::size_t r = 0; r < rows; ++r) {
          const auto i = static_cast<Eigen::Index>(t), j = static_cast<Eigen::Index>(r);
          if (std::abs(static_cast<double>(y[t * rows + r]) - static_cast<double>(ref(i, j))) >
              ternq::kernels::f32_path_bound(cols, abs_sum(i, j)) + 1e-30) {
            ++bad;
          }
        }
      }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("formats without a CUDA kernel are refused") {
  const auto p = ternq::testing::random_packed(ternq::pack::format::tq1_0, 2, 256, 1);
  const std::vector<float> x(256, 1.0F);
  CHECK_THROWS_WITH_AS(ternq::testing::cuda::packed_matmul(ternq::pack::format::tq1_0, 2, 256, p.bytes, x, 1),
                       "[ternq.unsupported] CUDA packed product: TQ1_0 has no CUDA kernel (TQ2_0 and Q2_0 have)",
                       ternq::error);
}

int main(int argc, char** argv) {
  std::string why;
  if (!ternq::testing::cuda::device_available(why)) {
    std::printf("ternq_tests_cuda: skipped: %s\n", why.c_str());
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
