// SPDX-License-Identifier: MIT
// Writing a model back in its input's format: llama2.c checkpoints and Hugging Face directories.
#pragma once

#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>
#include <ternq/io/atomic_output.hpp>
#include <ternq/io/hf_llama.hpp>
#include <ternq/io/llama2c_model.hpp>
#include <ternq/io/safetensors_reader.hpp>
#include <ternq/io/safetensors_writer.hpp>

#include "llama/convert.hpp"
#include "llama/model.hpp"

namespace ternq::llama {

namespace detail {
inline matrix_view<const float> view_of(const matrix& m) {
  return {m.data(), static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols()),
          static_cast<std::ptrdiff_t>(m.cols()), 1};
}
inline void copy_into(const matrix& m, matrix_view<float> out) {
  for (std::size_t i = 0; i < out.rows(); ++i) {
    for (std::size_t j = 0; j < out.cols(); ++j)
      out(i, j) = m(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
  }
}
inline void copy_into(const vector& v, std::span<float> out) { std::copy(v.data(), v.data() + v.size(), out.begin()); }
}  // namespace detail

/// Writes `m` as a llama2.c checkpoint (the classifier is stored only when
/// it is not tied to the embedding). The format holds the plain Llama block of run.c only: biases, q/k norms,
/// RoPE factors, another RoPE base or epsilon or head width are refused.
inline void save_llama2c(const model& m, const std::filesystem::path& path) {
  const config& cfg = m.cfg;
  if (cfg.arch != family::llama || !cfg.rope_factors.empty() || cfg.rope_theta != 10000.0F || cfg.norm_eps != 1e-5F ||
      cfg.head_dim() * cfg.n_heads != cfg.dim || cfg.rope != rope_style::interleaved) {
    fail(errc::unsupported,
         "save_llama2c: a llama2.c checkpoint holds only run.c's Llama block (RoPE base 10000, "
         "eps 1e-5, no biases or q/k norms, no RoPE scaling); write a GGUF or Hugging Face directory instead");
  }
  io::llama2c_config c;
  c.dim = m.cfg.dim;
  c.hidden_dim = m.cfg.hidden_dim;
  c.n_layers = m.cfg.n_layers;
  c.n_heads = m.cfg.n_heads;
  c.n_kv_heads = m.cfg.n_kv_heads;
  c.vocab_size = m.cfg.vocab_size;
  c.seq_len = m.cfg.seq_len;
  c.shared_classifier = !m.classifier.has_value();
  io::llama2c_model out(c);
  auto w = out.weights();
  detail::copy_into(m.embedding, w.token_embedding);
  detail::copy_into(m.final_norm, w.rms_final);
  if (m.classifier) detail::copy_into(*m.classifier, w.classifier);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const layer& l = m.layers[i];
    auto& o = w.layers[i];
    detail::copy_into(l.wq, o.wq);
    detail::copy_into(l.wk, o.wk);
    detail::copy_into(l.wv, o.wv);
    detail::copy_into(l.wo, o.wo);
    detail::copy_into(l.w1, o.w1);
    detail::copy_into(l.w2, o.w2);
    detail::copy_into(l.w3, o.w3);
    detail::copy_into(l.attn_norm, o.rms_att);
    detail::copy_into(l.ffn_norm, o.rms_ffn);
  }
  out.write(path);
}

/// Writes `directory/config.json`: the one of `source` (an input directory) with `intermediate_size` set to
/// `hidden` (which FFN padding may have changed) and, when given, `torch_dtype` (the dtype the weights are now
/// stored in), through `io::atomic_output`.
inline void write_hf_config(const std::filesystem::path& source, const std::filesystem::path& directory,
                            std::size_t hidden, std::string_view torch_dtype = {}) {
  std::ifstream in(source / "config.json");
  if (!in) fail(errc::io, "save_hf: cannot read ", (source / "config.json").string());
  nlohmann::json config = nlohmann::json::parse(in, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    fail(errc::corrupt_file, "save_hf: ", (source / "config.json").string(), " is not a JSON object");
  }
  config["intermediate_size"] = hidden;
  if (!torch_dtype.empty()) config["torch_dtype"] = torch_dtype;
  const std::string text = config.dump(2) + "\n";
  io::atomic_output out(directory / "config.json", "config.json");
  out.write(std::as_bytes(std::span(text)));
  out.commit();
}

/// Writes `m` as a Hugging Face Llama-family directory: `config.json` from
/// `source` (the input directory, see `write_hf_config`; `torch_dtype` float32) and every tensor in
/// one F32 `model.safetensors`, with the q/k rows (and biases) back in rotate-half order for the Llama block.
/// Both files are written through `io::atomic_output`.
inline void save_hf(const model& m, const std::filesystem::path& source, const std::filesystem::path& directory) {
  std::filesystem::create_directories(directory);
  write_hf_config(source, directory, m.cfg.hidden_dim, "float32");
  // The writer keeps views: hold every converted tensor until write().
  std::vector<matrix> kept;
  kept.reserve(all_linears.size() * m.layers.size());  // the writer keeps views: no reallocation
  std::vector<vector> kept_vectors;
  kept_vectors.reserve(all_block_vectors.size() * m.layers.size());  // the writer keeps views: no reallocation
  io::safetensors_writer writer;
  const auto add = [&](const std::string& name, const matrix& w) {
    writer.add(name, io::dtype::f32, detail::view_of(w));
  };
  const auto add_vector = [&](const std::string& name, const vector& v) {
    writer.add(name, io::dtype::f32, {static_cast<std::size_t>(v.size())}, std::span<const float>(v.data(), v.size()));
  };
  add("model.embed_tokens.weight", m.embedding);
  add_vector("model.norm.weight", m.final_norm);
  if (m.classifier) add("lm_head.weight", *m.classifier);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const layer& l = m.layers[i];
    for (const block_tensor t : block_tensor_order) {
      if (!has_tensor(m.cfg.arch, t)) continue;
      if (const auto* which = std::get_if<linear>(&t)) {
        kept.push_back(to_hf_layout(m.cfg, t, l.weight(*which)));
        add(hf_name(i, t), kept.back());
      } else {
        kept_vectors.push_back(to_hf_layout(m.cfg, t, l.values(std::get<block_vector>(t))));
        add_vector(hf_name(i, t), kept_vectors.back());
      }
    }
  }
  writer.write(directory / "model.safetensors");
}

}  // namespace ternq::llama
