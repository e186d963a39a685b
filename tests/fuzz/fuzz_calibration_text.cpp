// SPDX-License-Identifier: MIT
// Fuzz target: the tools' calibration-text path: slice at an offset, normalize, tokenize with a byte-fallback
// vocabulary and with a character-level one without byte pieces, cut into windows.
// Layout: 4 option bytes (offset, tokens wanted, window length, windows), then the text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cli/text_slice.hpp"
#include "fuzz_support.hpp"
#include "tokenize/llama2c.hpp"

namespace {

ternq::io::llama2c_tokenizer byte_vocabulary() {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  static constexpr char hex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) pieces.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
  for (const char* p : {" ", "e", "t", "th", "the", " the", "\xc3\xa9", "in", "ing"}) pieces.emplace_back(p);
  std::vector<float> scores(pieces.size());
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = static_cast<float>(i % 7) - 3.0F;
  return {pieces, scores};
}

ternq::io::llama2c_tokenizer character_vocabulary() {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", " "};
  for (char c = 'a'; c <= 'z'; ++c) pieces.emplace_back(1, c);
  pieces.emplace_back("\xc3\xa9");
  return {pieces, std::vector<float>(pieces.size(), 0.0F)};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const ternq::tokenizers::llama2c with_bytes(byte_vocabulary());
  static const ternq::tokenizers::llama2c characters(character_vocabulary());
  if (size < 4) return 0;
  const auto text = ternq::fuzz::text(data + 4, size - 4);
  return ternq::fuzz::guarded([&] {
    const std::string slice = ternq::cli::slice_text(text, data[0], "fuzz");
    for (const auto* tok : {&with_bytes, &characters}) {
      const bool collapse = tok->needs_whitespace_collapse();
      const auto t = ternq::cli::tokenize(*tok, slice, data[1], collapse);
      if (t.tokens.size() >= 2) (void)ternq::cli::windows(t.tokens, data[2], data[3]);
    }
  });
}
