// SPDX-License-Identifier: MIT
// Loading whole models into memory: llama2.c checkpoints and Hugging Face Llama directories (through their
// `model_source`, which the streaming tools read block by block instead).
#pragma once

#include <filesystem>
#include <span>

#include "llama/model.hpp"
#include "llama/source.hpp"

namespace ternq::llama {

/// A row-major copy of a read-only view.
inline matrix to_matrix(const matrix_view<const float>& v) { return detail::copy_view(v); }

inline vector to_vector(std::span<const float> s) {
  return Eigen::Map<const vector>(s.data(), static_cast<Eigen::Index>(s.size()));
}

/// A llama2.c checkpoint.
inline model load_llama2c(const std::filesystem::path& path) { return materialize(llama2c_source(path)); }

/// A Hugging Face Llama directory (config.json + model.safetensors or an
/// indexed set of shards; F32/F16/BF16). The q and k rows are reordered to
/// the interleaved RoPE layout, so the model in memory has GGUF's layout.
inline model load_hf(const std::filesystem::path& directory) { return materialize(hf_source(directory)); }

}  // namespace ternq::llama
