// SPDX-License-Identifier: MIT
// The smallest complete ternq program: quantize an Eigen matrix, inspect codes and scales, dequantize.
#include <cstdio>

#include <Eigen/Core>

#include <ternq/adapters/eigen.hpp>
#include <ternq/quant.hpp>

int main() {
  Eigen::MatrixXf w(2, 8);
  w << 0.31F, -0.02F, 0.27F, -0.35F, 0.05F, 0.22F, -0.28F, 0.01F,  //
      -0.10F, 0.12F, 0.09F, -0.11F, 0.40F, -0.01F, 0.02F, -0.38F;

  // Four columns per group; each (row, group) gets its own scale.
  const ternq::ternary_matrix q = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 4});

  for (std::size_t i = 0; i < q.rows(); ++i) {
    std::printf("row %zu codes:", i);
    for (std::int8_t c : q.row_codes(i)) std::printf(" %+d", c);
    std::printf("   scales: %.4f %.4f\n", static_cast<double>(q.scale(i, 0)), static_cast<double>(q.scale(i, 1)));
  }
  const Eigen::MatrixXf what = ternq::eigen::dequantize(q);
  std::printf("relative E_w = %.4f\n", ternq::relative_weight_error(w, q));
  std::printf("max |W - What| = %.4f\n", static_cast<double>((w - what).cwiseAbs().maxCoeff()));
  return 0;
}
