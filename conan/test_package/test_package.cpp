// SPDX-License-Identifier: MIT
// Conan test_package: the umbrella header compiles and one quantization runs.
#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include <cstdio>

int main() {
  Eigen::MatrixXf w = Eigen::MatrixXf::Ones(2, 8);
  const auto q = ternq::quantize(w, ternq::absmean{.group_size = 4});
  std::printf("ternq %s: code %d, scale %.1f\n", ternq::version_string, q.code(0, 0), static_cast<double>(q.scale(0, 0)));
  return q.code(0, 0) == 1 && q.scale(0, 0) == 1.0F ? 0 : 1;
}
