// SPDX-License-Identifier: MIT
// The tokenizer the tools use, whatever file it comes from: text to ids, its special ids, its GGUF vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ternq/io/gguf_llama.hpp>

namespace ternq::tokenizers {

/// A tokenizer: what calibration and evaluation need to turn text into a model's token ids, and what an output
/// GGUF needs so that llama.cpp tokenizes as the model was trained. The implementations (one header each) read
/// llama2.c `.bin` files, Hugging Face `tokenizer.json`, SentencePiece `tokenizer.model` and the vocabulary of a
/// GGUF file; `open.hpp` picks one for a path.
class tokenizer {
 public:
  tokenizer() = default;
  tokenizer(const tokenizer&) = delete;
  tokenizer& operator=(const tokenizer&) = delete;
  virtual ~tokenizer() = default;

  /// What the tokenizer is, for messages and reports ("llama2.c", "byte-level BPE", ...).
  [[nodiscard]] virtual std::string describe() const = 0;
  /// Ids run from 0 to `vocab_size() - 1`; a model's vocabulary may be larger (padding rows), never smaller.
  [[nodiscard]] virtual std::size_t vocab_size() const = 0;
  [[nodiscard]] virtual std::optional<std::int32_t> bos_id() const = 0;
  [[nodiscard]] virtual std::optional<std::int32_t> eos_id() const = 0;
  /// The ids of `text` (UTF-8) as the model saw its training text: BOS first when the tokenizer adds one.
  [[nodiscard]] virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  /// True for a vocabulary whose models were trained on text with whitespace runs collapsed to one space, which
  /// has no newline: the character-level BabyLlama ones. Text is collapsed first then (`--collapse-whitespace`).
  [[nodiscard]] virtual bool needs_whitespace_collapse() const { return false; }
  /// False when some character has no token and no byte fallback: then `encodes` says which do, and evaluation
  /// drops the others rather than fail.
  [[nodiscard]] virtual bool encodes_every_character() const { return true; }
  /// Whether the code point `cp` (its UTF-8 bytes) has a token.
  [[nodiscard]] virtual bool encodes(std::string_view cp) const {
    (void)cp;
    return true;
  }
  /// The `tokenizer.ggml.*` keys of an output GGUF (padded to the model by `io::padded_vocab`).
  [[nodiscard]] virtual io::llama_vocab gguf_vocab() const = 0;
};

}  // namespace ternq::tokenizers
