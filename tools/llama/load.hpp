// SPDX-License-Identifier: MIT
// Loading models into memory: llama2.c checkpoints and Hugging Face Llama directories.
#pragma once

#include <filesystem>
#include <span>
#include <string>

#include <ternq/io/hf_llama.hpp>
#include <ternq/io/llama2c_checkpoint.hpp>

#include "llama/convert.hpp"
#include "llama/model.hpp"

namespace ternq::llama {

/// A row-major copy of a read-only view.
inline matrix to_matrix(const matrix_view<const float>& v) {
  matrix m(static_cast<Eigen::Index>(v.rows()), static_cast<Eigen::Index>(v.cols()));
  for (std::size_t i = 0; i < v.rows(); ++i) {
    for (std::size_t j = 0; j < v.cols(); ++j) m(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = v(i, j);
  }
  return m;
}

inline vector to_vector(std::span<const float> s) {
  return Eigen::Map<const vector>(s.data(), static_cast<Eigen::Index>(s.size()));
}

/// The configuration of a llama2.c checkpoint (interleaved RoPE, eps 1e-5, theta 10000, as run.c).
inline config config_of(const io::llama2c_config& c) {
  config cfg;
  cfg.dim = c.dim;
  cfg.hidden_dim = c.hidden_dim;
  cfg.n_layers = c.n_layers;
  cfg.n_heads = c.n_heads;
  cfg.n_kv_heads = c.n_kv_heads;
  cfg.vocab_size = c.vocab_size;
  cfg.seq_len = c.seq_len;
  return cfg;
}

/// A llama2.c checkpoint.
inline model load_llama2c(const std::filesystem::path& path) {
  const io::llama2c_checkpoint ck(path);
  const auto& w = ck.weights();
  model m;
  m.cfg = config_of(ck.config());
  m.embedding = to_matrix(w.token_embedding);
  m.final_norm = to_vector(w.rms_final);
  if (!ck.config().shared_classifier) m.classifier = to_matrix(w.classifier);
  for (const auto& l : w.layers) {
    layer out;
    out.wq = to_matrix(l.wq);
    out.wk = to_matrix(l.wk);
    out.wv = to_matrix(l.wv);
    out.wo = to_matrix(l.wo);
    out.w1 = to_matrix(l.w1);
    out.w2 = to_matrix(l.w2);
    out.w3 = to_matrix(l.w3);
    out.attn_norm = to_vector(l.rms_att);
    out.ffn_norm = to_vector(l.rms_ffn);
    m.layers.push_back(std::move(out));
  }
  return m;
}

/// The configuration of a Hugging Face Llama model, in the interleaved
/// RoPE convention the loader converts its q/k rows to.
inline config config_of(const io::hf_llama_config& c) {
  config cfg;
  cfg.dim = c.hidden_size;
  cfg.hidden_dim = c.intermediate_size;
  cfg.n_layers = c.num_hidden_layers;
  cfg.n_heads = c.num_attention_heads;
  cfg.n_kv_heads = c.num_key_value_heads;
  cfg.vocab_size = c.vocab_size;
  cfg.seq_len = c.max_position_embeddings;
  cfg.norm_eps = static_cast<float>(c.rms_norm_eps);
  cfg.rope_theta = static_cast<float>(c.rope_theta);
  cfg.rope = rope_style::interleaved;
  return cfg;
}

/// A Hugging Face Llama directory (config.json + model.safetensors or an
/// indexed set of shards; F32/F16/BF16). The q and k rows are reordered to
/// the interleaved RoPE layout, so the model in memory has GGUF's layout.
inline model load_hf(const std::filesystem::path& directory) {
  const io::hf_llama_model hf(directory);
  const auto& t = hf.tensors();
  const auto get = [&](const std::string& name) { return to_matrix(t.matrix(name).view()); };
  const auto get_vector = [&](const std::string& name) {
    const auto values = t.values(name);
    return to_vector(values);
  };
  model m;
  m.cfg = config_of(hf.config());
  m.embedding = get("model.embed_tokens.weight");
  m.final_norm = get_vector("model.norm.weight");
  if (hf.classifier_name() == "lm_head.weight") m.classifier = get("lm_head.weight");
  for (std::size_t i = 0; i < m.cfg.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    layer out;
    out.wq = interleave_rope_rows(get(p + "self_attn.q_proj.weight"), m.cfg.n_heads);
    out.wk = interleave_rope_rows(get(p + "self_attn.k_proj.weight"), m.cfg.n_kv_heads);
    out.wv = get(p + "self_attn.v_proj.weight");
    out.wo = get(p + "self_attn.o_proj.weight");
    out.w1 = get(p + "mlp.gate_proj.weight");
    out.w3 = get(p + "mlp.up_proj.weight");
    out.w2 = get(p + "mlp.down_proj.weight");
    out.attn_norm = get_vector(p + "input_layernorm.weight");
    out.ffn_norm = get_vector(p + "post_attention_layernorm.weight");
    m.layers.push_back(std::move(out));
  }
  return m;
}

}  // namespace ternq::llama
