// SPDX-License-Identifier: MIT
// Fuzz target: a llama2.c tokenizer file from memory, then encode and decode of text from the same input.
// Layout: 2 bytes (little-endian) = length of the tokenizer file, the file, one option byte, the text.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.hpp"
#include "ternq/io/llama2c_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::size_t n = std::min<std::size_t>(size - 2, data[0] | (std::size_t{data[1]} << 8U));
  const std::uint8_t* file = data + 2;
  const std::uint8_t* rest = file + n;
  const std::size_t rest_size = size - 2 - n;
  return ternq::fuzz::guarded([&] {
    const ternq::io::llama2c_tokenizer tok(ternq::fuzz::bytes(file, n), "fuzz");
    const std::uint8_t flags = rest_size > 0 ? rest[0] : 0;
    const auto text = rest_size > 0 ? ternq::fuzz::text(rest + 1, rest_size - 1) : std::string_view();
    const ternq::io::encode_options options{
        .bos = (flags & 1U) != 0, .eos = (flags & 2U) != 0, .dummy_prefix = (flags & 4U) != 0};
    const std::vector<int> ids = tok.encode(text, options);
    (void)tok.decode(ids);
    (void)tok.find(text);
    std::vector<int> raw;  // arbitrary ids, most outside the vocabulary
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
      raw.push_back(static_cast<int>(static_cast<unsigned char>(text[i])) - 8 +
                    static_cast<int>(static_cast<unsigned char>(text[i + 1]) << 4U));
    }
    (void)tok.decode(raw);
    (void)ternq::io::collapse_whitespace(text);
  });
}
