// SPDX-License-Identifier: MIT
// Which kind of model file a path is, and loading any of them whole (the streaming tools open a `model_source`).
#pragma once

#include <filesystem>

#include "llama/model.hpp"
#include "llama/source.hpp"

namespace ternq::cli {

using llama::detect_model_kind;
using llama::kind_name;
using llama::model_kind;

inline llama::model load_model(const std::filesystem::path& path, model_kind kind) {
  return llama::materialize(*llama::open_source(path, kind));
}

}  // namespace ternq::cli
