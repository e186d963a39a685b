// SPDX-License-Identifier: MIT
// The splitting regexes of the byte-level BPE families, and their names in GGUF's `tokenizer.ggml.pre`.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ternq::tokenizers {

/// The regex of GPT-2's byte-level pre-tokenizer (`ByteLevel` with `use_regex`): contractions, letters, digits
/// and other symbols each with an optional leading space, and whitespace.
inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
/// Llama-3's: case-insensitive contractions, numbers cut into runs of up to three digits, newlines kept apart.
inline constexpr std::string_view llama3_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
/// Qwen2's (and Qwen3's): Llama-3's with every digit its own piece.
inline constexpr std::string_view qwen2_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
/// A `Digits` pre-tokenizer with `individual_digits`: every digit its own piece (SmolLM's first step).
inline constexpr std::string_view digit_pattern = R"(\p{N})";

/// A pre-tokenizer llama.cpp knows by name: the regexes it applies in turn.
struct known_pre_tokenizer {
  std::string_view name;  ///< `tokenizer.ggml.pre`
  std::vector<std::string_view> patterns;
};

/// The pre-tokenizers ternq recognizes, with llama.cpp's names for them (its `llama-vocab.cpp` picks the same
/// regexes for these names).
inline const std::array<known_pre_tokenizer, 4>& known_pre_tokenizers() {
  static const std::array<known_pre_tokenizer, 4> known = {{
      {"llama-bpe", {llama3_pattern}},
      {"qwen2", {qwen2_pattern}},
      {"smollm", {digit_pattern, gpt2_pattern}},
      {"gpt-2", {gpt2_pattern}},
  }};
  return known;
}

/// The name of the pre-tokenizer that applies exactly `patterns` in this order, or nothing.
inline std::optional<std::string_view> pre_tokenizer_name(const std::vector<std::string>& patterns) {
  for (const known_pre_tokenizer& k : known_pre_tokenizers()) {
    if (k.patterns.size() != patterns.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < patterns.size() && same; ++i) same = k.patterns[i] == patterns[i];
    if (same) return k.name;
  }
  return std::nullopt;
}

/// The regexes of the pre-tokenizer named `name`, or nothing for a name ternq does not know.
inline std::optional<std::vector<std::string>> pre_tokenizer_patterns(std::string_view name) {
  for (const known_pre_tokenizer& k : known_pre_tokenizers()) {
    if (k.name == name) return std::vector<std::string>(k.patterns.begin(), k.patterns.end());
  }
  return std::nullopt;
}

/// The names `pre_tokenizer_patterns` knows, for messages.
inline std::string known_pre_tokenizer_names() {
  std::string out;
  for (const known_pre_tokenizer& k : known_pre_tokenizers()) {
    if (!out.empty()) out += ", ";
    out += k.name;
  }
  return out;
}

}  // namespace ternq::tokenizers
