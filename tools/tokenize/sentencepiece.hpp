// SPDX-License-Identifier: MIT
// A SentencePiece `tokenizer.model`, encoded by the SentencePiece library itself, and its "llama" GGUF vocabulary.
#pragma once

#include <sentencepiece_processor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>
#include <ternq/io/gguf_llama.hpp>

#include "tokenize/hf_tokenizer_json.hpp"
#include "tokenize/sentencepiece_proto.hpp"
#include "tokenize/tokenizer.hpp"

namespace ternq::tokenizers {

/// A SentencePiece model (Llama-2, Mistral, TinyLlama): the library normalizes and encodes; BOS goes first
/// unless `add_bos` says otherwise (a Hugging Face directory's `tokenizer_config.json` does, by
/// `add_bos_token`; SentencePiece models of Llama's family are trained with it).
class sentencepiece_model final : public tokenizer {
 public:
  explicit sentencepiece_model(const std::filesystem::path& path, bool add_bos = true) : add_bos_(add_bos) {
    const auto status = sp_.Load(path.string());
    if (!status.ok()) {
      fail(errc::corrupt_file, "SentencePiece model '", path.string(), "': ", status.ToString());
    }
    if (add_bos_ && sp_.bos_id() < 0) {
      fail(errc::invalid_argument, "SentencePiece model '", path.string(), "' has no BOS token to put first");
    }
    source_ = "SentencePiece model '" + path.string() + "'";
    facts_ = read_sentencepiece_facts(sp_.serialized_model_proto(), source_);
    if (facts_.piece_types.size() != static_cast<std::size_t>(sp_.GetPieceSize())) {
      fail(errc::corrupt_file, source_, ": ", facts_.piece_types.size(), " pieces in the model, ", sp_.GetPieceSize(),
           " loaded");
    }
  }

  /// The model at `path`, with `add_bos_token` from the `tokenizer_config.json` beside it when there is one.
  static std::unique_ptr<sentencepiece_model> open(const std::filesystem::path& path) {
    const std::filesystem::path config = path.parent_path() / "tokenizer_config.json";
    bool add_bos = true;
    if (std::filesystem::exists(config)) add_bos = detail::read_json(config).value("add_bos_token", true);
    return std::make_unique<sentencepiece_model>(path, add_bos);
  }

  [[nodiscard]] std::string describe() const override { return "SentencePiece"; }
  [[nodiscard]] std::size_t vocab_size() const override { return static_cast<std::size_t>(sp_.GetPieceSize()); }
  [[nodiscard]] std::optional<std::int32_t> bos_id() const override { return id(sp_.bos_id()); }
  [[nodiscard]] std::optional<std::int32_t> eos_id() const override { return id(sp_.eos_id()); }
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) fail(errc::invalid_argument, "SentencePiece: ", status.ToString());
    std::vector<std::int32_t> out;
    out.reserve(ids.size() + 1);
    if (add_bos_) out.push_back(sp_.bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  /// The "llama" vocabulary llama.cpp's converter writes for a SentencePiece model: the pieces as they are
  /// (with U+2581 for spaces), their scores and types (those of the model file: normal, unknown, control,
  /// user-defined, unused, byte), and the dummy prefix. llama.cpp encodes a "llama" vocabulary by merging the
  /// best-scoring pairs, SentencePiece's BPE; a Unigram model (best segmentation by piece likelihoods) would be
  /// tokenized differently there, so its vocabulary is `[ternq.unsupported]`.
  [[nodiscard]] io::llama_vocab gguf_vocab() const override {
    if (facts_.model_type != 2) {
      const char* names[] = {"?", "Unigram", "BPE", "word", "char"};
      fail(errc::unsupported, source_, ": a ", facts_.model_type < 5 ? names[facts_.model_type] : "?",
           " model; llama.cpp's \"llama\" vocabulary encodes as SentencePiece's BPE does, so only BPE models are "
           "written to GGUF");
    }
    io::llama_vocab v;
    v.model = "llama";
    const int n = sp_.GetPieceSize();
    for (int i = 0; i < n; ++i) {
      v.tokens.push_back(sp_.IdToPiece(i));
      v.scores.push_back(sp_.GetScore(i));
      v.token_types.push_back(facts_.piece_types[static_cast<std::size_t>(i)]);
    }
    const auto u32 = [](int id) { return id < 0 ? std::nullopt : std::optional<std::uint32_t>(id); };
    v.bos_id = u32(sp_.bos_id());
    v.eos_id = u32(sp_.eos_id());
    v.unk_id = u32(sp_.unk_id());
    v.pad_id = u32(sp_.pad_id());
    v.add_bos = add_bos_;
    v.add_space_prefix = facts_.add_dummy_prefix;
    return v;
  }

 private:
  static std::optional<std::int32_t> id(int i) { return i < 0 ? std::nullopt : std::optional<std::int32_t>(i); }

  ::sentencepiece::SentencePieceProcessor sp_;
  bool add_bos_ = true;
  std::string source_;
  sentencepiece_facts facts_;
};

}  // namespace ternq::tokenizers
