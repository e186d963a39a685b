// SPDX-License-Identifier: MIT
// Which tokenizer a path holds (`--tokenizer`), and the tokenizer a model input brings with it.
#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <ternq/core/error.hpp>
#include <ternq/io/gguf_reader.hpp>

#include "tokenize/byte_level_bpe.hpp"
#include "tokenize/gguf_vocab.hpp"
#include "tokenize/hf_tokenizer_json.hpp"
#include "tokenize/llama2c.hpp"
#include "tokenize/sentencepiece.hpp"
#include "tokenize/tokenizer.hpp"

namespace ternq::tokenizers {

namespace detail {

inline bool starts_with_gguf_magic(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  f.read(magic, 4);
  return f.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

/// The tokenizer of a Hugging Face model directory, or null when it has none: `tokenizer.json` when it is
/// byte-level BPE, else `tokenizer.model` (the SentencePiece original of a converted `tokenizer.json`), else
/// the `tokenizer.json`, whose reader says why it cannot be used.
inline std::unique_ptr<tokenizer> directory_tokenizer(const std::filesystem::path& dir) {
  const std::filesystem::path json = dir / "tokenizer.json";
  const std::filesystem::path model = dir / "tokenizer.model";
  const bool has_json = std::filesystem::exists(json);
  if (has_json && is_byte_level_bpe(read_json(json))) {
    return std::make_unique<byte_level_bpe>(read_tokenizer_json(json));
  }
  if (std::filesystem::exists(model)) return sentencepiece_model::open(model);
  if (has_json) return std::make_unique<byte_level_bpe>(read_tokenizer_json(json));
  return nullptr;
}

}  // namespace detail

/// The tokenizer in `path` (`--tokenizer`): a GGUF file's vocabulary, a Hugging Face `tokenizer.json` (a name
/// ending in `.json`), a SentencePiece model (a name ending in `.model`), the tokenizer of a Hugging Face
/// directory, or else a llama2.c tokenizer `.bin`.
inline std::unique_ptr<tokenizer> open_tokenizer(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) fail(errc::io, "tokenizer '", path.string(), "' does not exist");
  if (std::filesystem::is_directory(path)) {
    auto tok = detail::directory_tokenizer(path);
    if (!tok) fail(errc::invalid_argument, "directory '", path.string(), "' has no tokenizer.json or tokenizer.model");
    return tok;
  }
  if (detail::starts_with_gguf_magic(path)) return read_gguf_tokenizer(path);
  const std::string ext = path.extension().string();
  if (ext == ".json") return std::make_unique<byte_level_bpe>(read_tokenizer_json(path));
  if (ext == ".model") return sentencepiece_model::open(path);
  return std::make_unique<llama2c>(path);
}

/// The tokenizer that comes with the model input `model`, or null: a Hugging Face directory's tokenizer files,
/// a GGUF file's vocabulary (none when it is `no_vocab`); a llama2.c checkpoint has none.
inline std::unique_ptr<tokenizer> model_tokenizer(const std::filesystem::path& model) {
  if (std::filesystem::is_directory(model)) return detail::directory_tokenizer(model);
  if (!detail::starts_with_gguf_magic(model)) return nullptr;
  const io::gguf_reader r = io::gguf_reader::open(model);
  const io::gguf_value* kind = r.metadata().find("tokenizer.ggml.model");
  if (kind == nullptr || !r.metadata().contains("tokenizer.ggml.tokens")) return nullptr;
  return read_gguf_tokenizer(model);
}

/// Refuses a tokenizer with more ids than the model has embedding rows. Fewer is a model with padding rows
/// (Qwen2's 151936 for 151665 tokens): its GGUF vocabulary is padded to match (`io::padded_vocab`).
inline void require_fits(const tokenizer& tok, std::size_t model_vocab) {
  if (tok.vocab_size() > model_vocab) {
    fail(errc::shape_mismatch, "the tokenizer (", tok.describe(), ") has ", tok.vocab_size(),
         " tokens, the model a vocabulary of ", model_vocab);
  }
}

}  // namespace ternq::tokenizers
