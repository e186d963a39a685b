// SPDX-License-Identifier: MIT
// The vocabulary of a GGUF file (`tokenizer.ggml.*`) as a tokenizer: "llama" by scores, "gpt2" as byte-level BPE.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ternq/core/error.hpp>
#include <ternq/io/gguf_llama.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/llama2c_tokenizer.hpp>

#include "tokenize/byte_level_bpe.hpp"
#include "tokenize/llama2c.hpp"
#include "tokenize/pre_tokenizers.hpp"
#include "tokenize/tokenizer.hpp"

namespace ternq::tokenizers {

namespace detail {

/// The `tokenizer.ggml.*` keys of `md` as a `llama_vocab` (what `io::add_llama_tokenizer` wrote).
inline io::llama_vocab read_llama_vocab(const io::gguf_metadata& md, const std::string& source) {
  const auto need = [&](std::string_view key) -> const io::gguf_value& {
    const io::gguf_value* v = md.find(key);
    if (v == nullptr) fail(errc::invalid_argument, source, ": no '", key, "', so no vocabulary to tokenize with");
    return *v;
  };
  const auto array = [&](std::string_view key) -> const io::gguf_array& {
    const auto* a = std::get_if<io::gguf_array>(&need(key));
    if (a == nullptr) fail(errc::corrupt_file, source, ": '", key, "' is not an array");
    return *a;
  };
  const auto id = [&](std::string_view key) -> std::optional<std::uint32_t> {
    if (!md.contains(key)) return std::nullopt;
    return md.get<std::uint32_t>(key);
  };
  io::llama_vocab v;
  v.model = md.get<std::string>("tokenizer.ggml.model");
  if (v.model == "no_vocab")
    fail(errc::invalid_argument, source, ": the vocabulary is 'no_vocab' (a model without one)");
  if (v.model != "llama" && v.model != "gpt2") {
    fail(errc::unsupported, source, ": tokenizer.ggml.model '", v.model, "' is not supported (\"llama\" or \"gpt2\")");
  }
  v.tokens = array("tokenizer.ggml.tokens").get<std::string>();
  if (md.contains("tokenizer.ggml.scores")) v.scores = array("tokenizer.ggml.scores").get<float>();
  if (md.contains("tokenizer.ggml.token_type")) v.token_types = array("tokenizer.ggml.token_type").get<std::int32_t>();
  if (md.contains("tokenizer.ggml.merges")) v.merges = array("tokenizer.ggml.merges").get<std::string>();
  if (md.contains("tokenizer.ggml.pre")) v.pre = md.get<std::string>("tokenizer.ggml.pre");
  v.bos_id = id("tokenizer.ggml.bos_token_id");
  v.eos_id = id("tokenizer.ggml.eos_token_id");
  v.unk_id = id("tokenizer.ggml.unknown_token_id");
  v.pad_id = id("tokenizer.ggml.padding_token_id");
  if (md.contains("tokenizer.ggml.add_bos_token")) v.add_bos = md.get<bool>("tokenizer.ggml.add_bos_token");
  if (md.contains("tokenizer.ggml.add_space_prefix")) {
    v.add_space_prefix = md.get<bool>("tokenizer.ggml.add_space_prefix");
  }
  if ((!v.scores.empty() && v.scores.size() != v.tokens.size()) ||
      (!v.token_types.empty() && v.token_types.size() != v.tokens.size())) {
    fail(errc::corrupt_file, source, ": ", v.tokens.size(), " tokens, ", v.scores.size(), " scores and ",
         v.token_types.size(), " token types");
  }
  for (const auto& s : {v.bos_id, v.eos_id, v.unk_id, v.pad_id}) {
    if (s && *s >= v.tokens.size()) {
      fail(errc::corrupt_file, source, ": special token id ", *s, " is outside the vocabulary of ", v.tokens.size());
    }
  }
  return v;
}

/// A token's text with SentencePiece's whitespace mark U+2581 turned back into spaces (llama2.c's spelling).
inline std::string plain_spelling(std::string_view token) {
  std::string out;
  for (std::size_t i = 0; i < token.size();) {
    if (token.compare(i, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      i += 3;
    } else {
      out += token[i++];
    }
  }
  return out;
}

}  // namespace detail

/// A "llama" (SentencePiece-style) GGUF vocabulary, encoded by run.c's algorithm (`io::llama2c_tokenizer`):
/// code points looked up as pieces, bytes through the `<0xNN>` pieces, then the best-scoring merges — what
/// llama.cpp's SPM tokenizer does. Unknown and control tokens are never matched in text. The file's own
/// vocabulary is what an output GGUF gets back.
class gguf_llama_vocab final : public tokenizer {
 public:
  gguf_llama_vocab(io::llama_vocab v, const std::string& source)
      : v_(std::move(v)), tok_(pieces(v_), scores(v_)), add_space_prefix_(v_.add_space_prefix.value_or(true)) {
    // run.c's ids: <unk> 0, BOS 1, EOS 2, the byte pieces 3..258; another layout would be encoded wrongly.
    if (v_.unk_id.value_or(0) != 0 || v_.bos_id.value_or(1) != 1 || v_.eos_id.value_or(2) != 2) {
      fail(errc::unsupported, source, ": a \"llama\" vocabulary with <unk>, BOS, EOS at ids ", v_.unk_id.value_or(0),
           ", ", v_.bos_id.value_or(1), ", ", v_.eos_id.value_or(2), " is not supported (0, 1, 2 are)");
    }
    add_bos_ = v_.add_bos.value_or(true);  // llama.cpp's default for SentencePiece vocabularies
  }

  [[nodiscard]] std::string describe() const override { return "GGUF \"llama\" vocabulary"; }
  [[nodiscard]] std::size_t vocab_size() const override { return v_.tokens.size(); }
  [[nodiscard]] std::optional<std::int32_t> bos_id() const override { return io::llama2c_tokenizer::bos_id; }
  [[nodiscard]] std::optional<std::int32_t> eos_id() const override { return io::llama2c_tokenizer::eos_id; }
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text) const override {
    // BOS is put first after the merges: its piece here is empty (never matched), and an empty piece next to
    // the dummy prefix " " would merge into " ".
    std::vector<std::int32_t> ids;
    if (add_bos_) ids.push_back(io::llama2c_tokenizer::bos_id);
    const std::vector<int> text_ids =
        tok_.encode(text, {.bos = false, .eos = false, .dummy_prefix = add_space_prefix_});
    ids.insert(ids.end(), text_ids.begin(), text_ids.end());
    return ids;
  }
  [[nodiscard]] bool needs_whitespace_collapse() const override { return tokenizers::needs_whitespace_collapse(tok_); }
  [[nodiscard]] bool encodes_every_character() const override { return tok_.has_byte_pieces(); }
  [[nodiscard]] bool encodes(std::string_view cp) const override {
    return tok_.has_byte_pieces() || tok_.find(cp).has_value();
  }
  [[nodiscard]] io::llama_vocab gguf_vocab() const override { return v_; }

 private:
  static std::vector<std::string> pieces(const io::llama_vocab& v) {
    if (v.tokens.size() < 3) fail(errc::corrupt_file, "a \"llama\" vocabulary of ", v.tokens.size(), " tokens");
    std::vector<std::string> out;
    out.reserve(v.tokens.size());
    for (std::size_t id = 0; id < v.tokens.size(); ++id) {
      const std::int32_t type = v.token_types.empty() ? io::token_type::normal : v.token_types[id];
      const bool text = type == io::token_type::normal || type == io::token_type::byte ||
                        type == io::token_type::user_defined || type == io::token_type::undefined;
      // An empty piece matches nothing: `<s>` in the text stays three characters, as in SentencePiece.
      out.push_back(text && id >= 3 ? detail::plain_spelling(v.tokens[id]) : std::string());
    }
    return out;
  }
  static std::vector<float> scores(const io::llama_vocab& v) {
    if (v.scores.empty()) return std::vector<float>(v.tokens.size(), 0.0F);
    return v.scores;
  }

  io::llama_vocab v_;
  io::llama2c_tokenizer tok_;
  bool add_space_prefix_ = true;
  bool add_bos_ = true;
};

/// The byte-level BPE of a "gpt2" GGUF vocabulary: normal tokens are the model's, control and user-defined
/// tokens are matched first as added tokens, the pre-tokenizer's regexes come from `tokenizer.ggml.pre` (a name
/// ternq does not know is `[ternq.unsupported]`). As llama.cpp does, "llama-bpe" takes a piece that is a token
/// whole; "qwen2" also puts the text in NFC first, as Qwen's tokenizer.json does.
inline bpe_definition bpe_of_gguf_vocab(const io::llama_vocab& v, const std::string& source) {
  bpe_definition d;
  d.source = source;
  const auto patterns = pre_tokenizer_patterns(v.pre);
  if (!patterns) {
    fail(errc::unsupported, source, ": tokenizer.ggml.pre '", v.pre, "' is not a pre-tokenizer ternq knows (",
         known_pre_tokenizer_names(), ")");
  }
  d.patterns = *patterns;
  d.ignore_merges = v.pre == "llama-bpe";
  d.nfc = v.pre == "qwen2";
  d.tokens.resize(v.tokens.size());
  for (std::size_t id = 0; id < v.tokens.size(); ++id) {
    const std::int32_t type = v.token_types.empty() ? io::token_type::normal : v.token_types[id];
    if (type == io::token_type::control || type == io::token_type::user_defined) {
      d.added.push_back({v.tokens[id], static_cast<std::int32_t>(id), type == io::token_type::control});
    } else if (type != io::token_type::unused) {
      d.tokens[id] = v.tokens[id];
    }
  }
  for (const std::string& m : v.merges) {
    const std::size_t space = m.find(' ');
    if (space == std::string::npos) fail(errc::corrupt_file, source, ": merge '", m, "' is not two tokens");
    d.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  const auto i32 = [](std::optional<std::uint32_t> id) {
    return id ? std::optional<std::int32_t>(static_cast<std::int32_t>(*id)) : std::nullopt;
  };
  d.bos = i32(v.bos_id);
  d.eos = i32(v.eos_id);
  d.unk = i32(v.unk_id);
  d.pad = i32(v.pad_id);
  if (v.add_bos.value_or(false) && d.bos) d.prefix.push_back(*d.bos);
  return d;
}

/// The tokenizer of a GGUF file's vocabulary.
inline std::unique_ptr<tokenizer> read_gguf_tokenizer(const std::filesystem::path& path) {
  const io::gguf_reader r = io::gguf_reader::open(path);
  const std::string source = "GGUF '" + path.string() + "'";
  const io::gguf_metadata& md = r.metadata();
  io::llama_vocab v = detail::read_llama_vocab(md, source);
  if (v.model == "gpt2") return std::make_unique<byte_level_bpe>(bpe_of_gguf_vocab(v, source));
  return std::make_unique<gguf_llama_vocab>(std::move(v), source);
}

}  // namespace ternq::tokenizers
