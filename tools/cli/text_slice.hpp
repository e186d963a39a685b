// SPDX-License-Identifier: MIT
// Text slices for calibration and evaluation: read, normalize for the tokenizer, tokenize, cut into windows.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ternq/core/error.hpp>
#include <ternq/io/llama2c_tokenizer.hpp>

#include "llama/forward.hpp"
#include "tokenize/tokenizer.hpp"

namespace ternq::cli {

/// `text` (the contents of `name`) from byte `offset` on, moved forward to
/// the start of a UTF-8 code point so a slice never begins inside a character.
inline std::string slice_text(std::string_view text, std::size_t offset, std::string_view name) {
  if (offset > text.size()) {
    fail(errc::invalid_argument, "text offset ", offset, " is beyond the end of '", name, "' (", text.size(),
         " bytes)");
  }
  while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0U) == 0x80U) ++offset;
  return std::string(text.substr(offset));
}

/// The bytes of `path` from `offset` on (see `slice_text`).
inline std::string read_text(const std::filesystem::path& path, std::size_t offset) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(errc::io, "cannot open text file '", path.string(), "'");
  std::stringstream buffer;
  buffer << f.rdbuf();
  return slice_text(buffer.str(), offset, path.string());
}

/// The characters of `text` the tokenizer can encode. A vocabulary without
/// byte pieces (the character-level BabyLlama ones) has no way to encode a
/// character it lacks; run.c would emit a meaningless id, ternq's encoder
/// refuses. For evaluation on general text (WikiText) those characters are
/// dropped instead, and counted.
inline std::string drop_unencodable(const tokenizers::tokenizer& tok, std::string_view text, std::size_t& dropped) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    std::size_t j = i + 1;  // a lead byte and its continuation bytes, as the encoder groups them
    while (j < text.size() && j - i < 4 && (static_cast<unsigned char>(text[j]) & 0xC0U) == 0x80U) ++j;
    const std::string_view cp = text.substr(i, j - i);
    if (tok.encodes(cp)) {
      out += cp;
    } else {
      ++dropped;
    }
    i = j;
  }
  return out;
}

/// A tokenized text slice and what was done to the text first.
struct tokenized {
  std::vector<std::int32_t> tokens;
  bool collapsed = false;   ///< whitespace runs collapsed to one space
  std::size_t dropped = 0;  ///< characters the vocabulary cannot encode, removed
};

/// Tokens of `text` (with BOS where the tokenizer adds one), at most
/// `max_tokens` of them. Only a prefix of the text is tokenized (a generous
/// multiple of the tokens wanted), so a slice of a large file costs little.
inline tokenized tokenize(const tokenizers::tokenizer& tok, std::string text, std::size_t max_tokens,
                          bool collapse_whitespace) {
  // Every token covers at least one byte, so 8 bytes per token is plenty for
  // these vocabularies; the cut may split a character, so trim it back.
  const std::size_t bytes = std::min(text.size(), max_tokens * 8 + 64);
  std::size_t cut = bytes;
  while (cut < text.size() && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) --cut;
  text.resize(cut);
  tokenized out;
  out.collapsed = collapse_whitespace;
  if (collapse_whitespace) text = io::collapse_whitespace(text);
  if (!tok.encodes_every_character()) text = drop_unencodable(tok, text, out.dropped);
  const std::vector<std::int32_t> ids = tok.encode(text);
  out.tokens.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), max_tokens)));
  return out;
}

/// Token ids from `text` (the contents of `name`): whitespace-separated
/// non-negative integers that fit an int32.
inline std::vector<std::int32_t> parse_token_ids(std::string_view text, std::string_view name) {
  std::istringstream in{std::string(text)};
  std::vector<std::int32_t> out;
  long long v = 0;
  while (in >> v) {
    if (v < 0 || v > INT32_MAX) fail(errc::invalid_argument, "token file '", name, "': id ", v, " out of range");
    out.push_back(static_cast<std::int32_t>(v));
  }
  if (!in.eof()) fail(errc::corrupt_file, "token file '", name, "': not a list of integers");
  return out;
}

/// Reads token ids from a text file of whitespace-separated integers.
inline std::vector<std::int32_t> read_token_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(errc::io, "cannot open token file '", path.string(), "'");
  std::stringstream buffer;
  buffer << f.rdbuf();
  return parse_token_ids(buffer.str(), path.string());
}

/// Cuts `tokens` into windows of `length` (the last, partial one is dropped
/// unless it is the only one), at most `max_windows` of them.
inline llama::batch windows(const std::vector<std::int32_t>& tokens, std::size_t length, std::size_t max_windows) {
  if (length == 0) fail(errc::invalid_argument, "the window length must be at least 1 token");
  if (tokens.size() < 2) fail(errc::invalid_argument, "need at least 2 tokens, got ", tokens.size());
  llama::batch b;
  b.length = std::min(length, tokens.size());
  b.sequences = std::min(max_windows, tokens.size() / b.length);
  b.tokens.assign(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(b.sequences * b.length));
  return b;
}

}  // namespace ternq::cli
