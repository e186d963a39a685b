// SPDX-License-Identifier: MIT
// Fuzz target: byte-level BPE encoding of arbitrary bytes: UTF-8 validation, added-token splitting, NFC, the
// PCRE2 pre-tokenizer regexes of the Llama-3 and SmolLM families, and the merges. Every id is in the vocabulary,
// and text that is not UTF-8 is refused, never encoded.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "tokenize/byte_level_bpe.hpp"

namespace {

/// The 256 byte characters, merges that build "Ġthe", "in", "ing", "é" and a CJK character, and added tokens
/// (one a prefix of another, so the longest must win).
ternq::tokenizers::bpe_definition definition(std::vector<std::string> patterns, bool nfc) {
  ternq::tokenizers::bpe_definition d;
  d.source = "fuzz";
  const auto& chars = ternq::tokenizers::byte_characters();
  d.tokens.assign(chars.begin(), chars.end());
  const auto merge = [&](const std::string& a, const std::string& b) {
    d.merges.emplace_back(a, b);
    d.tokens.push_back(a + b);
  };
  const std::string space = chars[' '];
  merge(space, "t");
  merge("h", "e");
  merge(space + "t", "he");
  merge("i", "n");
  merge("in", "g");
  merge(chars[0xC3], chars[0xA9]);  // é
  merge(chars[0xE6], chars[0x97]);
  merge(chars[0xE6] + chars[0x97], chars[0xA5]);  // 日
  const auto n = static_cast<std::int32_t>(d.tokens.size());
  d.added = {{"<|begin_of_text|>", n, true}, {"<|end|>", n + 1, true}, {"<|end|>x", n + 2, false, true, true}};
  d.patterns = std::move(patterns);
  d.nfc = nfc;
  d.ignore_merges = true;
  d.prefix = {n};
  d.bos = n;
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ternq::tokenizers;
  static const byte_level_bpe llama3(definition({std::string(llama3_pattern)}, true));
  static const byte_level_bpe smollm(definition({std::string(digit_pattern), std::string(gpt2_pattern)}, false));
  const auto text = ternq::fuzz::text(data, size);
  const bool utf8 = utf8_error_offset(text) == text.size();
  for (const byte_level_bpe* tok : {&llama3, &smollm}) {
    bool encoded = false;
    ternq::fuzz::guarded([&] {
      for (const std::int32_t id : tok->encode(text)) {
        if (id < 0 || static_cast<std::size_t>(id) >= tok->vocab_size()) __builtin_trap();
      }
      encoded = true;
    });
    if (encoded != utf8) __builtin_trap();  // refused exactly when the text is not UTF-8
  }
  return 0;
}
