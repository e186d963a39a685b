// SPDX-License-Identifier: MIT
// Fuzz target: a safetensors file from memory, header validation, then every float tensor read.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.hpp"
#include "ternq/io/safetensors_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return ternq::fuzz::guarded([&] {
    const ternq::io::safetensors_file f(ternq::fuzz::bytes(data, size), "fuzz");
    for (const auto& t : f.tensors()) {
      (void)f.bytes(t.name);
      if (ternq::io::is_float_dtype(t.type)) {
        const std::vector<float> v = f.values(t.name);
        if (t.shape.size() <= 2) (void)f.matrix(t.name);
      }
    }
  });
}
