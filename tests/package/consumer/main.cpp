// SPDX-License-Identifier: MIT
// A consumer program: the umbrella header on its own, then the Eigen adapter, then one quantization.
#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include <cstdio>
#include <string>

int main() {
  Eigen::MatrixXf w(2, 4);
  w << 1.0F, -1.0F, 0.1F, 0.0F,  //
      0.5F, 0.5F, -0.5F, -0.5F;
  const ternq::ternary_matrix q = ternq::quantize(w, ternq::optimal_symmetric{.group_size = 4});
  const Eigen::MatrixXf d = ternq::eigen::dequantize(q);
  // Row 1 is exactly ternary; row 0 keeps its two large entries.
  const bool ok = q.code(0, 0) == 1 && q.code(0, 1) == -1 && q.code(0, 2) == 0 && d(1, 2) == -0.5F &&
                  std::string(ternq::version_string) == TERNQ_EXPECTED_VERSION;
  std::printf("ternq %s consumer: %s\n", ternq::version_string, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
