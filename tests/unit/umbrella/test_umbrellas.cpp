// SPDX-License-Identifier: MIT
// The umbrella headers in different orders give the same program: the same GGUF bytes and weights.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include <ternq/ternq.hpp>
#include <ternq/adapters/eigen.hpp>

#define TERNQ_PIPELINE_NAME pipeline_umbrella
#include "pipeline_body.inc"

std::vector<std::uint8_t> pipeline_quant_pack_io();
std::vector<std::uint8_t> pipeline_io_pack_quant();
std::vector<std::uint8_t> pipeline_layers_mixed();

TEST_CASE("umbrella headers: every include order quantizes, packs and writes the same bytes") {
  const std::vector<std::uint8_t> reference = pipeline_umbrella();
  // 16x256 fp32 twice after the file: the file itself is not empty.
  REQUIRE(reference.size() > 2 * 16 * 256 * sizeof(float));
  CHECK(pipeline_quant_pack_io() == reference);
  CHECK(pipeline_io_pack_quant() == reference);
  CHECK(pipeline_layers_mixed() == reference);
}
