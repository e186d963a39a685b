// SPDX-License-Identifier: MIT
// A llama2.c tokenizer `.bin` as a `tokenizer`, and the GGUF vocabulary llama.cpp's converter writes for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ternq/core/error.hpp>
#include <ternq/io/gguf_llama.hpp>
#include <ternq/io/llama2c_tokenizer.hpp>

#include "tokenize/tokenizer.hpp"

namespace ternq::tokenizers {

/// A llama2.c piece as a SentencePiece vocabulary spells it: llama2.c's
/// export turned SentencePiece's whitespace mark U+2581 into plain spaces,
/// and llama.cpp's "llama" tokenizer looks pieces up with the mark (it
/// escapes the text's spaces before matching), so the mark is put back.
inline std::string sentencepiece_spelling(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  for (const char c : piece) {
    if (c == ' ') {
      out += "\xE2\x96\x81";
    } else {
      out += c;
    }
  }
  return out;
}

/// The tokenizer keys for a llama2.c vocabulary, as llama.cpp's own
/// converter (examples/convert-llama2c-to-ggml) writes them: ids 0, 1, 2
/// are llama2.c's unknown, BOS and EOS tokens (run.c's convention), written
/// with SentencePiece's texts `<unk>`, `<s>`, `</s>` (llama2.c's export
/// spells BOS and EOS "\n<s>\n" and "\n</s>\n") and the types of
/// llama.cpp's `llama_token_type`: 2 unknown, 3 control (BOS, EOS and any
/// empty piece), 6 byte (`<0xNN>`), 1 normal for the rest. The other pieces
/// are in SentencePiece spelling (see above). `unknown_token_id`,
/// `bos_token_id` and `eos_token_id` are 0, 1, 2. A llama2.c vocabulary has
/// no padding or separator token: those keys are left out, which llama.cpp
/// reads as "none" (the converter writes 0xFFFFFFFF, which llama.cpp
/// reports as a bad special token before falling back to the same "none").
inline io::llama_vocab vocab_of(const io::llama2c_tokenizer& tok) {
  if (tok.vocab_size() < 3) {
    fail(errc::invalid_argument, "a llama2.c vocabulary of ", tok.vocab_size(),
         " pieces lacks the unknown, BOS and EOS tokens (ids 0, 1, 2)");
  }
  io::llama_vocab v;
  v.model = "llama";
  for (std::size_t id = 0; id < tok.vocab_size(); ++id) {
    const int i = static_cast<int>(id);
    const std::string piece(tok.piece(i));
    std::string text = sentencepiece_spelling(piece);
    std::int32_t type = io::token_type::normal;
    if (id == 0) {
      text = "<unk>";
      type = io::token_type::unknown;
    } else if (id == 1) {
      text = "<s>";
      type = io::token_type::control;
    } else if (id == 2) {
      text = "</s>";
      type = io::token_type::control;
    } else if (piece.empty()) {
      type = io::token_type::control;
    } else if (piece.size() == 6 && piece.starts_with("<0x") && piece.ends_with(">")) {
      type = io::token_type::byte;
    }
    v.tokens.push_back(std::move(text));
    v.scores.push_back(tok.score(i));
    v.token_types.push_back(type);
  }
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

/// True for a character-level vocabulary (every piece but the specials and
/// the `<0xNN>` byte pieces is one UTF-8 character) without a newline piece:
/// the BabyLlama tokenizers. Their models were trained on text whose
/// whitespace runs were collapsed to one space, so their input must be too
/// (../shared/models/README.md). Vocabularies with merged pieces, such as
/// tok512, see raw text (newlines through the byte pieces).
inline bool needs_whitespace_collapse(const io::llama2c_tokenizer& tok) {
  if (tok.find("\n").has_value()) return false;
  for (std::size_t id = 3; id < tok.vocab_size(); ++id) {
    const std::string_view p = tok.piece(static_cast<int>(id));
    const bool byte_piece = p.size() == 6 && p.starts_with("<0x") && p.ends_with(">");
    std::size_t chars = 0;
    for (const char c : p) chars += (static_cast<unsigned char>(c) & 0xC0U) != 0x80U ? 1 : 0;
    if (!byte_piece && chars > 1) return false;
  }
  return true;
}

/// A llama2.c tokenizer file: run.c's encoding with BOS, the vocabulary `vocab_of` gives.
class llama2c final : public tokenizer {
 public:
  explicit llama2c(const std::filesystem::path& path) : tok_(path) {}
  explicit llama2c(io::llama2c_tokenizer tok) : tok_(std::move(tok)) {}

  [[nodiscard]] std::string describe() const override { return "llama2.c"; }
  [[nodiscard]] std::size_t vocab_size() const override { return tok_.vocab_size(); }
  [[nodiscard]] std::optional<std::int32_t> bos_id() const override { return io::llama2c_tokenizer::bos_id; }
  [[nodiscard]] std::optional<std::int32_t> eos_id() const override { return io::llama2c_tokenizer::eos_id; }
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text) const override { return tok_.encode(text); }
  [[nodiscard]] bool needs_whitespace_collapse() const override { return tokenizers::needs_whitespace_collapse(tok_); }
  [[nodiscard]] bool encodes_every_character() const override { return tok_.has_byte_pieces(); }
  [[nodiscard]] bool encodes(std::string_view cp) const override {
    return tok_.has_byte_pieces() || tok_.find(cp).has_value();
  }
  [[nodiscard]] io::llama_vocab gguf_vocab() const override { return vocab_of(tok_); }
  [[nodiscard]] const io::llama2c_tokenizer& file() const noexcept { return tok_; }

 private:
  io::llama2c_tokenizer tok_;
};

}  // namespace ternq::tokenizers
