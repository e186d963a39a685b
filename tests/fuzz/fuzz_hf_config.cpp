// SPDX-License-Identifier: MIT
// Fuzz target: a Hugging Face Llama config.json, then the tensor list it implies (for layer counts a
// model directory could hold; hf_llama_model bounds the count by the tensors present before listing).
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "ternq/io/hf_llama.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return ternq::fuzz::guarded([&] {
    const auto c = ternq::io::parse_hf_llama_config(ternq::fuzz::text(data, size), "fuzz");
    if (c.num_hidden_layers <= 256) (void)ternq::io::hf_llama_tensors(c);
  });
}
