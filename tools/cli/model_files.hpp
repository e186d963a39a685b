// SPDX-License-Identifier: MIT
// Which kind of model file a path is, and loading any of them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <ternq/core/error.hpp>

#include "llama/gguf_io.hpp"
#include "llama/load.hpp"
#include "llama/model.hpp"

namespace ternq::cli {

enum class model_kind { llama2c, hugging_face, gguf };

inline std::string_view kind_name(model_kind k) {
  switch (k) {
    case model_kind::llama2c:
      return "llama2.c checkpoint";
    case model_kind::hugging_face:
      return "Hugging Face directory";
    case model_kind::gguf:
      return "GGUF";
  }
  return "?";
}

/// A directory is a Hugging Face model; a file starting with "GGUF" is a
/// GGUF; any other file is read as a llama2.c checkpoint (whose reader checks
/// the size against its header).
inline model_kind detect_model_kind(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) fail(errc::io, "model '", path.string(), "' does not exist");
  if (std::filesystem::is_directory(path)) return model_kind::hugging_face;
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  f.read(magic, 4);
  if (f.gcount() == 4 && std::string(magic, 4) == "GGUF") return model_kind::gguf;
  return model_kind::llama2c;
}

inline llama::model load_model(const std::filesystem::path& path, model_kind kind) {
  switch (kind) {
    case model_kind::llama2c:
      return llama::load_llama2c(path);
    case model_kind::hugging_face:
      return llama::load_hf(path);
    case model_kind::gguf:
      return llama::load_gguf(path);
  }
  fail(errc::unsupported, "unknown model kind");
}

}  // namespace ternq::cli
