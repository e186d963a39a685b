// SPDX-License-Identifier: MIT
// The streaming pipeline's two ends: the calibration batch's embeddings read from a `model_source`, a finished
// block turned into the tensors its output stores, and the output files assembled from a checkpoint's block files
// and the source, one tensor in memory at a time.
#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>
#include <ternq/io/atomic_output.hpp>
#include <ternq/io/safetensors_stream_writer.hpp>

#include "llama/checkpoint.hpp"
#include "llama/convert.hpp"
#include "llama/fold.hpp"
#include "llama/forward.hpp"
#include "llama/gguf_io.hpp"
#include "llama/model.hpp"
#include "llama/save.hpp"
#include "llama/source.hpp"

namespace ternq::llama {

/// Gives a float matrix of the model (`token_embd.weight`, `output.weight`) the values its stored type holds
/// (`--keep`); empty: none is changed.
using matrix_rounding = std::function<void(const std::string& gguf_name, matrix& values)>;

/// Token embeddings of batch `b`, `tokens x dim`, read row by row from `source` (never the whole table).
/// Token ids are checked against the vocabulary. `round` gives the rows the values the output stores.
inline matrix embed(const model_source& source, const batch& b, const matrix_rounding& round = {}) {
  const config& cfg = source.cfg();
  matrix h(static_cast<Eigen::Index>(b.size()), static_cast<Eigen::Index>(cfg.dim));
  for (std::size_t i = 0; i < b.size(); ++i) {
    const std::int32_t t = b.tokens[i];
    if (t < 0 || static_cast<std::size_t>(t) >= cfg.vocab_size) {
      throw std::out_of_range("token id " + std::to_string(t) + " outside the vocabulary of " +
                              std::to_string(cfg.vocab_size));
    }
    source.embedding_rows(static_cast<std::size_t>(t),
                          std::span<float>(h.row(static_cast<Eigen::Index>(i)).data(), cfg.dim));
  }
  // Rounding rows one by one equals rounding the table: Q8_0 blocks lie inside rows, F16/BF16 are elementwise.
  if (round) round("token_embd.weight", h);
  return h;
}

/// The GGUF tensors of finished block `index`, in file order, with their bytes: the two norms (F32) and the seven
/// linear layers (see `plan_linear`; `ternary` holds each layer's matrix, or null for a dense one). With
/// `with_data` false only their descriptions are kept (a run that writes no file).
inline std::vector<stored_entry> block_entries(std::size_t index, const layer& w,
                                               const std::array<const ternary_matrix*, 7>& ternary,
                                               const gguf_storage& storage, bool with_data) {
  std::vector<stored_entry> out;
  const auto add = [&](planned_tensor p) {
    stored_entry e;
    e.info = std::move(p.info);
    e.ne = std::move(p.ne);
    if (with_data) e.data = p.bytes();
    e.info.bytes = e.data.size();
    out.push_back(std::move(e));
  };
  const std::string prefix = "blk." + std::to_string(index) + ".";
  const auto add_linear = [&](linear which) {
    add(plan_linear(gguf_name(index, which), w.weight(which), ternary[static_cast<std::size_t>(which)], storage));
  };
  add(plan_norm(prefix + "attn_norm.weight", w.attn_norm));
  for (linear which : {linear::q, linear::k, linear::v, linear::o}) add_linear(which);
  add(plan_norm(prefix + "ffn_norm.weight", w.ffn_norm));
  for (linear which : {linear::gate, linear::up, linear::down}) add_linear(which);
  return out;
}

/// The block files of a finished checkpoint, opened (and checked) once.
class block_files {
 public:
  block_files(const checkpoint& ck, std::size_t blocks) {
    files_.reserve(blocks);
    for (std::size_t b = 0; b < blocks; ++b) files_.push_back(std::make_unique<block_file>(ck.block_path(b), b));
  }
  [[nodiscard]] const block_file& operator[](std::size_t b) const { return *files_.at(b); }
  [[nodiscard]] std::size_t size() const noexcept { return files_.size(); }

 private:
  std::vector<std::unique_ptr<block_file>> files_;
};

/// The tensors a run takes from the source unchanged (but for --keep rounding): the embedding, the final norm and
/// the classifier, held for the plans that refer to them.
class source_tensors {
 public:
  source_tensors(const model_source& source, const matrix_rounding& round)
      : embedding_(source.embedding()), final_norm_(source.final_norm()), classifier_(source.classifier()) {
    if (round) {
      round("token_embd.weight", embedding_);
      if (classifier_) round("output.weight", *classifier_);
    }
  }
  /// Their GGUF plans, in file order, stored by `storage`.
  [[nodiscard]] std::vector<planned_tensor> plans(const gguf_storage& storage) const {
    std::vector<planned_tensor> out;
    out.push_back(plan_matrix("token_embd.weight", embedding_, storage));
    out.push_back(plan_norm("output_norm.weight", final_norm_));
    if (classifier_) out.push_back(plan_matrix("output.weight", *classifier_, storage));
    return out;
  }

 private:
  matrix embedding_;
  vector final_norm_;
  std::optional<matrix> classifier_;
};

/// Writes the GGUF of a finished run: the embedding, final norm and classifier from `source` (rounded by `round`
/// for --keep, stored by `storage`), every block's tensors as its block file holds them. `cfg` is the stored
/// model's (FFN padding included).
inline std::vector<stored_tensor> assemble_gguf(const model_source& source, const config& cfg,
                                                const block_files& blocks, const gguf_storage& storage,
                                                const matrix_rounding& round, const io::llama2c_tokenizer* tokenizer,
                                                const std::filesystem::path& path, const std::string& name) {
  const source_tensors own(source, round);
  std::vector<planned_tensor> plans = own.plans(storage);
  for (std::size_t b = 0; b < cfg.n_layers; ++b) {
    const block_file& f = blocks[b];
    for (std::size_t i = 0; i < f.size(); ++i) {
      planned_tensor p;
      p.info = f.info(i);
      p.ne = f.ne(i);
      p.bytes = [&f, i] { return f.data(i); };
      plans.push_back(std::move(p));
    }
  }
  require_kept_exist(storage, gguf_tensor_names(cfg, source.has_classifier()));
  return write_llama_gguf(cfg, plans, tokenizer, path, name);
}

/// Writes the fake-quantized model of a finished run as a GGUF (every tensor dequantized: F16 where lossless,
/// else F32), for GGUF inputs.
inline void assemble_fake_gguf(const model_source& source, const config& cfg, const block_files& blocks,
                               const matrix_rounding& round, const io::llama2c_tokenizer* tokenizer,
                               const std::filesystem::path& path, const std::string& name) {
  const source_tensors own(source, round);
  std::vector<planned_tensor> plans = own.plans(gguf_storage{});  // F16 where lossless, else F32; nothing kept
  for (std::size_t b = 0; b < cfg.n_layers; ++b) {
    const block_file& f = blocks[b];
    for (std::size_t i = 0; i < f.size(); ++i) {
      planned_tensor p;
      p.info = f.info(i);
      p.ne = f.ne(i);
      if (f.info(i).linear) {
        // The type follows the values (F16 when lossless), decided here and encoded again when written.
        const matrix values = f.values(i);
        p.info.ggml = exactly_fp16(values) ? pack::ggml_type::f16 : pack::ggml_type::f32;
        p.info.type = std::string(pack::traits_of(p.info.ggml).name);
        p.info.kept = false;
        p.info.reason.clear();
        const pack::ggml_type t = p.info.ggml;
        p.bytes = [&f, i, t] { return encode_dense(t, f.values(i)); };
      } else {
        p.bytes = [&f, i] { return f.data(i); };
      }
      plans.push_back(std::move(p));
    }
  }
  (void)write_llama_gguf(cfg, plans, tokenizer, path, name);
}

/// Writes the fake-quantized model of a finished run as a Hugging Face directory: `config.json` from `source_dir`
/// with `intermediate_size` set to the stored FFN width and `torch_dtype` float32, and one F32
/// `model.safetensors` streamed a tensor at a time (q/k rows back in rotate-half order).
inline void assemble_fake_hf(const model_source& source, const config& cfg, const block_files& blocks,
                             const matrix_rounding& round, const std::filesystem::path& source_dir,
                             const std::filesystem::path& directory) {
  std::filesystem::create_directories(directory);
  write_hf_config(source_dir, directory, cfg.hidden_dim, "float32");
  io::safetensors_stream_writer writer;
  const auto declare = [&](const std::string& n, std::vector<std::size_t> shape) {
    writer.add_tensor(n, io::dtype::f32, std::move(shape));
  };
  const std::size_t dim = cfg.dim, kv = cfg.kv_dim(), hid = cfg.hidden_dim;
  declare("model.embed_tokens.weight", {cfg.vocab_size, dim});
  for (std::size_t l = 0; l < cfg.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    declare(p + "input_layernorm.weight", {dim});
    declare(p + "self_attn.q_proj.weight", {dim, dim});
    declare(p + "self_attn.k_proj.weight", {kv, dim});
    declare(p + "self_attn.v_proj.weight", {kv, dim});
    declare(p + "self_attn.o_proj.weight", {dim, dim});
    declare(p + "post_attention_layernorm.weight", {dim});
    declare(p + "mlp.gate_proj.weight", {hid, dim});
    declare(p + "mlp.up_proj.weight", {hid, dim});
    declare(p + "mlp.down_proj.weight", {dim, hid});
  }
  declare("model.norm.weight", {dim});
  if (source.has_classifier()) declare("lm_head.weight", {cfg.vocab_size, dim});
  writer.open(directory / "model.safetensors");
  const auto put = [&](const matrix& m) {
    writer.write(std::span<const float>(m.data(), static_cast<std::size_t>(m.size())));
  };
  {
    matrix embedding = source.embedding();
    if (round) round("token_embd.weight", embedding);
    put(embedding);
  }
  for (std::size_t l = 0; l < cfg.n_layers; ++l) {
    const block_file& f = blocks[l];
    const auto get = [&](const std::string& suffix) { return f.values(f.find("blk." + std::to_string(l) + suffix)); };
    put(get(".attn_norm.weight"));
    put(deinterleave_rope_rows(get(".attn_q.weight"), cfg.n_heads));
    put(deinterleave_rope_rows(get(".attn_k.weight"), cfg.n_kv_heads));
    put(get(".attn_v.weight"));
    put(get(".attn_output.weight"));
    put(get(".ffn_norm.weight"));
    put(get(".ffn_gate.weight"));
    put(get(".ffn_up.weight"));
    put(get(".ffn_down.weight"));
  }
  {
    const vector norm = source.final_norm();
    writer.write(std::span<const float>(norm.data(), static_cast<std::size_t>(norm.size())));
  }
  if (auto classifier = source.classifier()) {
    if (round) round("output.weight", *classifier);
    put(*classifier);
  }
  writer.close();
}

/// The fake-quantized model of a finished run in memory: the source's embedding, norms and classifier (rounded by
/// `round`) with every block as its block file decodes. For the llama2.c output, a format of small F32 models.
inline model assemble_fake_model(const model_source& source, const config& cfg, const block_files& blocks,
                                 const matrix_rounding& round) {
  model m;
  m.cfg = cfg;
  m.embedding = source.embedding();
  if (round) round("token_embd.weight", m.embedding);
  m.final_norm = source.final_norm();
  m.classifier = source.classifier();
  if (m.classifier && round) round("output.weight", *m.classifier);
  for (std::size_t l = 0; l < cfg.n_layers; ++l) {
    const block_file& f = blocks[l];
    layer w;
    const std::string p = "blk." + std::to_string(l) + ".";
    w.attn_norm = f.values(f.find(p + "attn_norm.weight")).row(0).transpose();
    w.ffn_norm = f.values(f.find(p + "ffn_norm.weight")).row(0).transpose();
    for (const linear which : all_linears) w.weight(which) = f.values(f.find(gguf_name(l, which)));
    m.layers.push_back(std::move(w));
  }
  return m;
}

}  // namespace ternq::llama
