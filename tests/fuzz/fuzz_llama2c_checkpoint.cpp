// SPDX-License-Identifier: MIT
// Fuzz target: a llama2.c checkpoint from memory: the header, the exact size it implies, views of every tensor.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_support.hpp"
#include "ternq/io/llama2c_checkpoint.hpp"

namespace {
volatile float sink = 0.0F;  // keeps the reads of the views
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return ternq::fuzz::guarded([&] {
    const auto [config, layout] = ternq::io::detail::read_llama2c_header(ternq::fuzz::bytes(data, size), "fuzz");
    std::vector<float> payload(layout.float_count);
    std::memcpy(payload.data(), data + 28, 4 * payload.size());
    const auto w = ternq::io::llama2c_views(static_cast<const float*>(payload.data()), config, layout);
    float sum = 0.0F;
    const auto touch = [&](const ternq::matrix_view<const float>& m) {
      if (!m.empty()) sum += m(0, 0) + m(m.rows() - 1, m.cols() - 1);
    };
    touch(w.token_embedding);
    touch(w.classifier);
    for (const auto& [name, m] : ternq::io::llama2c_linears(w)) touch(m);
    if (!w.rms_final.empty()) sum += w.rms_final.back();
    sink = sum;
  });
}
