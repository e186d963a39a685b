// SPDX-License-Identifier: MIT
// The streaming pipeline's two ends: the calibration batch's embeddings read from a `model_source`, a finished
// block turned into the tensors its output stores, and the output files assembled from a checkpoint's block files
// and the source, one tensor in memory at a time (the vocabulary-sized ones a slice of rows at a time).
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
#include <ternq/io/hf_llama.hpp>
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
    source.embedding_rows(static_cast<std::size_t>(token_row(b.tokens[i], cfg.vocab_size)),
                          std::span<float>(h.row(static_cast<Eigen::Index>(i)).data(), cfg.dim));
  }
  // Rounding rows one by one equals rounding the table: Q8_0 blocks lie inside rows, F16/BF16 are elementwise.
  if (round) round("token_embd.weight", h);
  return h;
}

/// The GGUF tensors of finished block `index`, in file order, with their bytes: its vectors (F32) and its linear
/// layers (see `plan_block`; `ternary` holds each layer's matrix, or null for a dense one). With `with_data` false
/// only their descriptions are kept (a run that writes no file).
inline std::vector<stored_entry> block_entries(std::size_t index, const layer& w, const config& cfg,
                                               const std::array<const ternary_matrix*, 7>& ternary,
                                               const gguf_storage& storage, bool with_data) {
  std::vector<stored_entry> out;
  const auto ternary_of = [&](linear which) { return ternary[static_cast<std::size_t>(which)]; };
  for (planned_tensor& p : plan_block(index, w, cfg, ternary_of, storage)) {
    stored_entry e;
    e.info = std::move(p.info);
    e.ne = std::move(p.ne);
    if (with_data) e.data = p.bytes();
    e.info.bytes = e.data.size();
    out.push_back(std::move(e));
  }
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

/// The token embedding (`token_embd.weight`) or the classifier (`output.weight`: the embedding's rows when tied)
/// of `source`, read a slice of rows at a time and rounded by `round` (rounding a slice equals rounding the
/// matrix: Q8_0 blocks lie inside rows, F16/BF16 are elementwise). `source` and `round` must outlive it.
inline row_reader vocabulary_rows(const model_source& source, const std::string& gguf_name,
                                  const matrix_rounding& round) {
  const bool embedding = gguf_name == "token_embd.weight";
  if (!embedding && gguf_name != "output.weight") {
    fail(errc::invalid_argument, "vocabulary_rows: '", gguf_name, "' is neither token_embd.weight nor output.weight");
  }
  row_reader m;
  m.rows = source.cfg().vocab_size;
  m.cols = source.cfg().dim;
  m.read = [&source, &round, gguf_name, embedding](std::size_t first, matrix& out) {
    const std::span<float> values(out.data(), static_cast<std::size_t>(out.size()));
    if (embedding) {
      source.embedding_rows(first, values);
    } else {
      source.classifier_rows(first, values);
    }
    if (round) round(gguf_name, out);
  };
  return m;
}

/// The tensors a run takes from the source unchanged (but for --keep rounding): the embedding, the final norm,
/// the classifier and the RoPE factors, for the plans that refer to them. The embedding and the classifier are
/// vocabulary-sized (2 x 2.5 GB in fp32 at Qwen3-8B's 151936 x 4096), so they are never held: their plans read
/// them from the source a slice of at most `max_values` floats at a time (`plan_matrix` of a `row_reader`).
/// `source` and `round` must outlive the plans.
class source_tensors {
 public:
  source_tensors(const model_source& source, const matrix_rounding& round, std::size_t max_values = slice_values)
      : cfg_(source.cfg()),
        embedding_(vocabulary_rows(source, "token_embd.weight", round)),
        final_norm_(source.final_norm()),
        max_values_(max_values) {
    if (source.has_classifier()) classifier_ = vocabulary_rows(source, "output.weight", round);
  }
  source_tensors(const source_tensors&) = delete;  // the plans point into it
  source_tensors& operator=(const source_tensors&) = delete;

  /// Their GGUF plans, in file order, stored by `storage`.
  [[nodiscard]] std::vector<planned_tensor> plans(const gguf_storage& storage) const {
    std::vector<planned_tensor> out;
    out.push_back(plan_matrix("token_embd.weight", embedding_, storage, max_values_));
    out.push_back(plan_norm("output_norm.weight", final_norm_));
    if (classifier_) out.push_back(plan_matrix("output.weight", *classifier_, storage, max_values_));
    if (!cfg_.rope_factors.empty()) out.push_back(plan_rope_factors(cfg_));
    return out;
  }

 private:
  config cfg_;
  row_reader embedding_;
  vector final_norm_;
  std::optional<row_reader> classifier_;
  std::size_t max_values_;
};

/// The plans of every block's tensors as the block files hold them, for `assemble_gguf`.
inline std::vector<planned_tensor> block_plans(const config& cfg, const block_files& blocks) {
  std::vector<planned_tensor> plans;
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
  return plans;
}

/// The plans of every block's tensors dequantized, for `assemble_fake_gguf`: linear layers F16 where lossless,
/// else F32; vectors as the block files hold them (F32).
inline std::vector<planned_tensor> fake_block_plans(const config& cfg, const block_files& blocks) {
  std::vector<planned_tensor> plans;
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
  return plans;
}

/// Writes the GGUF of a finished run: the embedding, final norm and classifier from `source` (rounded by `round`
/// for --keep, stored by `storage`; the embedding and classifier a slice of at most `max_values` floats at a
/// time), every block's tensors as its block file holds them. `cfg` is the stored model's (FFN padding included).
inline std::vector<stored_tensor> assemble_gguf(const model_source& source, const config& cfg,
                                                const block_files& blocks, const gguf_storage& storage,
                                                const matrix_rounding& round, const io::llama_vocab* vocab,
                                                const std::filesystem::path& path, const std::string& name,
                                                std::size_t max_values = slice_values) {
  const source_tensors own(source, round, max_values);
  std::vector<planned_tensor> plans = own.plans(storage);
  for (planned_tensor& p : block_plans(cfg, blocks)) plans.push_back(std::move(p));
  require_kept_exist(storage, gguf_tensor_names(cfg, source.has_classifier()));
  return write_llama_gguf(cfg, plans, vocab, path, name);
}

/// Writes the fake-quantized model of a finished run as a GGUF (every tensor dequantized: F16 where lossless,
/// else F32), for GGUF inputs; the embedding and classifier a slice of at most `max_values` floats at a time.
inline void assemble_fake_gguf(const model_source& source, const config& cfg, const block_files& blocks,
                               const matrix_rounding& round, const io::llama_vocab* vocab,
                               const std::filesystem::path& path, const std::string& name,
                               std::size_t max_values = slice_values) {
  const source_tensors own(source, round, max_values);
  std::vector<planned_tensor> plans = own.plans(gguf_storage{});  // F16 where lossless, else F32; nothing kept
  for (planned_tensor& p : fake_block_plans(cfg, blocks)) plans.push_back(std::move(p));
  (void)write_llama_gguf(cfg, plans, vocab, path, name);
}

/// The Hugging Face configuration of the stored shape of `cfg` (FFN padding included), for its tensor list.
inline io::hf_llama_config hf_shape_of(const config& cfg) {
  io::hf_llama_config shape;
  // Hugging Face's model_type of each family is its GGUF architecture's name (Mistral's block is written as Llama's).
  shape.model_type = std::string(gguf_architecture(cfg.arch));
  shape.hidden_size = cfg.dim;
  shape.intermediate_size = cfg.hidden_dim;
  shape.num_hidden_layers = cfg.n_layers;
  shape.num_attention_heads = cfg.n_heads;
  shape.num_key_value_heads = cfg.n_kv_heads;
  shape.vocab_size = cfg.vocab_size;
  shape.declared_head_dim = cfg.head_width;
  return shape;
}

/// The GGUF name of a Hugging Face tensor of a decoder layer ("model.layers.3.mlp.up_proj.weight" ->
/// block 3, `linear::up`); nullopt for the tensors outside the blocks.
inline std::optional<std::pair<std::size_t, block_tensor>> block_tensor_of(std::string_view hf_name) {
  constexpr std::string_view prefix = "model.layers.";
  if (!hf_name.starts_with(prefix)) return std::nullopt;
  hf_name.remove_prefix(prefix.size());
  const std::size_t dot = hf_name.find('.');
  const std::size_t layer_index = std::stoul(std::string(hf_name.substr(0, dot)));
  const std::string_view suffix = hf_name.substr(dot + 1);
  for (const block_tensor t : block_tensor_order) {
    if (suffix == std::visit([](auto which) { return hf_suffix(which); }, t)) return std::pair{layer_index, t};
  }
  fail(errc::invalid_argument, "block_tensor_of: '", hf_name, "' is no tensor of a decoder layer");
}

/// Writes the fake-quantized model of a finished run as a Hugging Face directory: `config.json` from `source_dir`
/// with `intermediate_size` set to the stored FFN width and `torch_dtype` float32, and one F32
/// `model.safetensors` streamed a tensor at a time, in `io::hf_llama_tensors`' order (q/k rows and biases back in
/// rotate-half order for the Llama block); the embedding and classifier a slice of at most `max_values` floats at
/// a time.
inline void assemble_fake_hf(const model_source& source, const config& cfg, const block_files& blocks,
                             const matrix_rounding& round, const std::filesystem::path& source_dir,
                             const std::filesystem::path& directory, std::size_t max_values = slice_values) {
  std::filesystem::create_directories(directory);
  write_hf_config(source_dir, directory, cfg.hidden_dim, "float32");
  const std::vector<io::hf_tensor_spec> specs = io::hf_llama_tensors(hf_shape_of(cfg));
  io::safetensors_stream_writer writer;
  for (const io::hf_tensor_spec& t : specs) {
    if (t.role != io::hf_tensor_role::classifier || source.has_classifier()) {
      writer.add_tensor(t.name, io::dtype::f32, t.shape);
    }
  }
  writer.open(directory / "model.safetensors");
  const auto put = [&](const matrix& m) {
    writer.write(std::span<const float>(m.data(), static_cast<std::size_t>(m.size())));
  };
  const auto put_vector = [&](const vector& v) {
    writer.write(std::span<const float>(v.data(), static_cast<std::size_t>(v.size())));
  };
  // The vocabulary-sized matrices are streamed: the writer takes a tensor's values in pieces of any size.
  const auto put_slices = [&](const row_reader& m) {
    for_each_slice(m, max_values, [&](const matrix& slice) {
      put(slice);
      return true;
    });
  };
  for (const io::hf_tensor_spec& t : specs) {
    if (t.name == "model.embed_tokens.weight") {
      put_slices(vocabulary_rows(source, "token_embd.weight", round));
    } else if (t.name == "model.norm.weight") {
      put_vector(source.final_norm());
    } else if (t.role == io::hf_tensor_role::classifier) {
      if (source.has_classifier()) put_slices(vocabulary_rows(source, "output.weight", round));
    } else {
      const auto [l, which] = *block_tensor_of(t.name);
      const block_file& f = blocks[l];
      const matrix values = f.values(f.find(gguf_name(l, which)));
      if (std::holds_alternative<linear>(which)) {
        put(to_hf_layout(cfg, which, values));
      } else {
        put_vector(to_hf_layout(cfg, which, vector(values.row(0).transpose())));
      }
    }
  }
  writer.close();
}

/// The fake-quantized model of a finished run in memory: the source's embedding, norms and classifier (rounded by
/// `round`) with every block as its block file decodes. For the llama2.c output, a format of small F32 models
/// (run.c reads it whole into memory too), so unlike the GGUF and Hugging Face outputs it is not streamed.
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
    for (const block_vector v : all_block_vectors) {
      if (has_vector(cfg.arch, v)) w.values(v) = f.values(f.find(gguf_name(l, v))).row(0).transpose();
    }
    for (const linear which : all_linears) w.weight(which) = f.values(f.find(gguf_name(l, which)));
    m.layers.push_back(std::move(w));
  }
  return m;
}

}  // namespace ternq::llama
