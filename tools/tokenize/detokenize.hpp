// SPDX-License-Identifier: MIT
// Token ids back to text, from any tokenizer's GGUF vocabulary (`tokenizer::gguf_vocab`): what a generator prints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <ternq/io/gguf_llama.hpp>

#include "tokenize/byte_level_bpe.hpp"

namespace ternq::tokenizers {

/// The text of `ids` in vocabulary `v`, as llama.cpp's detokenizer writes it without special tokens:
/// - `"llama"` (SentencePiece spelling): U+2581 is a space, `<0xNN>` byte pieces are their byte, control and
///   unknown tokens give nothing, and the space SentencePiece puts before the text (unless
///   `add_space_prefix` is false) is removed from the first piece;
/// - `"gpt2"` (byte-level BPE): each character of the byte alphabet is its byte; control tokens give nothing;
/// - `"no_vocab"`: the ids in brackets ("[17][4]").
/// An id the vocabulary does not have (a model's padding rows beyond its tokenizer, as Qwen2's) is written in
/// brackets too.
inline std::string detokenize(const io::llama_vocab& v, std::span<const std::int32_t> ids) {
  std::string out;
  const auto bracketed = [&](std::int32_t id) {
    out += '[';
    out += std::to_string(id);
    out += ']';
  };
  if (v.model == "no_vocab" || v.tokens.empty()) {
    for (const std::int32_t id : ids) bracketed(id);
    return out;
  }
  const auto type_of = [&](std::size_t id) {
    return id < v.token_types.size() ? v.token_types[id] : io::token_type::normal;
  };
  std::map<std::string, char> byte_of_character;  // byte-level BPE's alphabet, reversed
  if (v.model == "gpt2") {
    for (unsigned b = 0; b < 256; ++b) byte_of_character[byte_characters()[b]] = static_cast<char>(b);
  }
  bool first = true;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int32_t id = ids[i];
    if (id < 0 || static_cast<std::size_t>(id) >= v.tokens.size()) {
      bracketed(id);
      first = false;
      continue;
    }
    const auto k = static_cast<std::size_t>(id);
    const std::int32_t type = type_of(k);
    if (type == io::token_type::control || type == io::token_type::unknown || type == io::token_type::unused) {
      continue;
    }
    const std::string_view piece = v.tokens[k];
    std::string text;
    if (v.model == "gpt2") {
      for (std::size_t c = 0; c < piece.size();) {
        const std::size_t n = (static_cast<unsigned char>(piece[c]) & 0xE0U) == 0xC0U ? 2 : 1;
        const auto it = byte_of_character.find(std::string(piece.substr(c, n)));
        if (it != byte_of_character.end()) {
          text += it->second;
        } else {
          text += piece.substr(c, n);
        }
        c += n;
      }
    } else if (type == io::token_type::byte && piece.size() == 6 && piece.starts_with("<0x")) {
      text += static_cast<char>(std::stoi(std::string(piece.substr(3, 2)), nullptr, 16));
    } else {
      constexpr std::string_view space = "\xE2\x96\x81";
      for (std::size_t c = 0; c < piece.size();) {
        if (piece.substr(c, space.size()) == space) {
          text += ' ';
          c += space.size();
        } else {
          text += piece[c++];
        }
      }
      if (first && v.add_space_prefix.value_or(true) && !text.empty() && text.front() == ' ') text.erase(0, 1);
    }
    first = false;
    out += text;
  }
  return out;
}

}  // namespace ternq::tokenizers
