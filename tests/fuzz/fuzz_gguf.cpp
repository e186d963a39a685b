// SPDX-License-Identifier: MIT
// Fuzz target: a GGUF file from memory, header and metadata validation, then every tensor decoded.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.hpp"
#include "ternq/io/gguf_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return ternq::fuzz::guarded([&] {
    const auto r = ternq::io::gguf_reader::from_bytes(std::vector<std::uint8_t>(data, data + size));
    for (const auto& t : r.tensors()) {
      (void)r.tensor_bytes(t);
      (void)r.read_floats(t);
      if (ternq::pack::format_of(t.type)) (void)r.read_ternary(t);
    }
  });
}
