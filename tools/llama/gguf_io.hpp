// SPDX-License-Identifier: MIT
// GGUF files of whole Llama models: write a (ternarized) model that llama.cpp loads, read one back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ternq/core/half.hpp>
#include <ternq/io/gguf_llama.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/gguf_writer.hpp>
#include <ternq/io/llama2c_tokenizer.hpp>
#include <ternq/pack/compatibility.hpp>
#include <ternq/pack/pack.hpp>

#include "llama/model.hpp"

namespace ternq::llama {

/// The GGUF name of a linear layer's weight.
inline std::string gguf_name(std::size_t layer_index, linear l) {
  static constexpr const char* names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                          "ffn_gate", "ffn_up", "ffn_down"};
  return "blk." + std::to_string(layer_index) + "." + names[static_cast<std::size_t>(l)] + ".weight";
}

/// How one tensor was stored.
struct stored_tensor {
  std::string name;
  std::string type;    ///< ggml type name ("TQ2_0", "F16", ...)
  std::string reason;  ///< why a ternary matrix fell back to a float type (empty otherwise)
};

/// A llama2.c piece as a SentencePiece vocabulary spells it: llama2.c's
/// export turned SentencePiece's whitespace mark U+2581 into plain spaces,
/// and llama.cpp's "llama" tokenizer looks pieces up with the mark (it
/// escapes the text's spaces before matching), so the mark is put back.
inline std::string sentencepiece_spelling(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  for (const char c : piece) {
    if (c == ' ') {
      out += "\xE2\x96\x81";
    } else {
      out += c;
    }
  }
  return out;
}

/// The tokenizer keys for a llama2.c vocabulary: pieces (in SentencePiece
/// spelling, see above), scores, token types (0 unknown, 1 and 2 control,
/// `<0xNN>` byte pieces, the rest normal).
inline io::llama_vocab vocab_of(const io::llama2c_tokenizer& tok) {
  io::llama_vocab v;
  v.model = "llama";
  for (std::size_t id = 0; id < tok.vocab_size(); ++id) {
    const int i = static_cast<int>(id);
    const std::string piece(tok.piece(i));
    v.tokens.push_back(sentencepiece_spelling(piece));
    v.scores.push_back(tok.score(i));
    std::int32_t type = 1;
    if (i == 0) type = 2;
    if (i == 1 || i == 2) type = 3;
    if (piece.size() == 6 && piece.starts_with("<0x") && piece.ends_with(">")) type = 6;
    v.token_types.push_back(type);
  }
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

/// True when every value of `m` is exactly an fp16 value (then F16 storage is lossless).
inline bool exactly_fp16(const matrix& m) {
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    const float x = m.data()[i];
    if (fp16_bits_to_fp32(fp32_to_fp16_bits(x)) != x) return false;
  }
  return true;
}

/// Where the linear layers of a GGUF go.
struct gguf_storage {
  pack::format format = pack::format::tq2_0;  ///< the ternary format of the layers given as ternary matrices
  bool f16_when_lossless = true;              ///< float layers: F16 where every value is an fp16 value, else F32
};

/// Writes `m` as a llama-architecture GGUF. Every linear layer that has an
/// entry in `ternary` is packed into `storage.format` when the format can
/// hold it exactly; otherwise (a width that is not a multiple of the block,
/// scales that differ inside a block, offsets, a permutation) it is stored
/// as the dequantized values and the reason is recorded. Float layers are
/// F16 when that is lossless (and allowed), F32 otherwise, so the file holds
/// exactly the model's weights: the caller rounds ternary scales to fp16
/// first so that packed blocks decode to them. Norms are F32 (llama.cpp
/// requires it). `tokenizer` absent: `tokenizer.ggml.model = "no_vocab"`.
inline std::vector<stored_tensor> save_gguf(const model& m,
                                            const std::map<std::pair<std::size_t, linear>, ternary_matrix>& ternary,
                                            const gguf_storage& storage, const io::llama2c_tokenizer* tokenizer,
                                            const std::filesystem::path& path, const std::string& name) {
  const pack::format format = storage.format;
  io::llama_hparams hp;
  hp.vocab_size = static_cast<std::uint32_t>(m.cfg.vocab_size);
  hp.context_length = static_cast<std::uint32_t>(m.cfg.seq_len);
  hp.embedding_length = static_cast<std::uint32_t>(m.cfg.dim);
  hp.block_count = static_cast<std::uint32_t>(m.cfg.n_layers);
  hp.feed_forward_length = static_cast<std::uint32_t>(m.cfg.hidden_dim);
  hp.head_count = static_cast<std::uint32_t>(m.cfg.n_heads);
  hp.head_count_kv = static_cast<std::uint32_t>(m.cfg.n_kv_heads);
  hp.rms_norm_eps = m.cfg.norm_eps;
  hp.rope_freq_base = m.cfg.rope_theta;
  // llama.cpp names file types only for some formats; the value is informational (it never affects loading).
  const bool packs = !ternary.empty();
  const std::uint32_t file_type = packs && format == pack::format::tq1_0   ? io::llama_file_type::mostly_tq1_0
                                  : packs && format == pack::format::tq2_0 ? io::llama_file_type::mostly_tq2_0
                                                                           : io::llama_file_type::all_f32;

  io::gguf_writer writer;
  io::add_llama_metadata(writer.edit_metadata(), hp, file_type, name);
  if (tokenizer != nullptr) {
    io::add_llama_tokenizer(writer.edit_metadata(), vocab_of(*tokenizer), hp.vocab_size);
  } else {
    io::llama_vocab none;
    none.model = "no_vocab";
    io::add_llama_tokenizer(writer.edit_metadata(), none, hp.vocab_size);
  }

  // Decide each tensor's storage, then declare all of them, then write in order.
  struct plan {
    std::string name;
    const matrix* dense = nullptr;  // float storage
    const vector* norm = nullptr;
    std::optional<pack::packed_tensor> packed;
    pack::ggml_type type = pack::ggml_type::f32;
    std::string reason;
  };
  std::vector<plan> plans;
  const auto add_dense = [&](std::string n, const matrix& w, std::string reason = {}) {
    plan p;
    p.name = std::move(n);
    p.dense = &w;
    p.type = storage.f16_when_lossless && exactly_fp16(w) ? pack::ggml_type::f16 : pack::ggml_type::f32;
    p.reason = std::move(reason);
    plans.push_back(std::move(p));
  };
  const auto add_norm = [&](std::string n, const vector& v) {
    plan p;
    p.name = std::move(n);
    p.norm = &v;
    plans.push_back(std::move(p));
  };
  const auto add_linear = [&](std::size_t l, linear which) {
    const matrix& w = m.layers[l].weight(which);
    const auto it = ternary.find({l, which});
    if (it == ternary.end()) return add_dense(gguf_name(l, which), w);
    if (const auto conflict = pack::find_conflict(it->second, format))
      return add_dense(gguf_name(l, which), w, conflict->message);
    plan p;
    p.name = gguf_name(l, which);
    p.packed = pack::pack(it->second, format);
    p.type = p.packed->type();
    plans.push_back(std::move(p));
  };
  add_dense("token_embd.weight", m.embedding);
  add_norm("output_norm.weight", m.final_norm);
  if (m.classifier) add_dense("output.weight", *m.classifier);
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    add_norm("blk." + std::to_string(l) + ".attn_norm.weight", m.layers[l].attn_norm);
    for (linear which : {linear::q, linear::k, linear::v, linear::o}) add_linear(l, which);
    add_norm("blk." + std::to_string(l) + ".ffn_norm.weight", m.layers[l].ffn_norm);
    for (linear which : {linear::gate, linear::up, linear::down}) add_linear(l, which);
  }

  for (const plan& p : plans) {
    if (p.packed) {
      (void)writer.add_tensor(p.name, *p.packed);
    } else if (p.norm != nullptr) {
      (void)writer.add_tensor(p.name, pack::ggml_type::f32, {static_cast<std::int64_t>(p.norm->size())});
    } else {
      (void)writer.add_tensor(p.name, p.type, {p.dense->cols(), p.dense->rows()});
    }
  }
  writer.open(path);
  std::vector<stored_tensor> stored;
  for (const plan& p : plans) {
    if (p.packed) {
      writer.write_tensor(p.name, *p.packed);
    } else if (p.norm != nullptr) {
      writer.write_tensor(p.name, std::span<const float>(p.norm->data(), static_cast<std::size_t>(p.norm->size())));
    } else {
      writer.write_tensor(p.name, std::span<const float>(p.dense->data(), static_cast<std::size_t>(p.dense->size())));
    }
    stored.push_back({p.name, std::string(pack::traits_of(p.type).name), p.reason});
  }
  writer.close();
  return stored;
}

/// Reads a llama-architecture GGUF (as written by `save_gguf`, or any file of
/// the types ternq reads) into memory, dequantizing every tensor.
inline model load_gguf(const std::filesystem::path& path) {
  const io::gguf_reader r = io::gguf_reader::open(path);
  const auto& md = r.metadata();
  const std::string context = "gguf '" + path.string() + "'";
  if (!md.contains("general.architecture") || md.get<std::string>("general.architecture") != "llama") {
    fail(errc::unsupported, context, ": general.architecture is not \"llama\"");
  }
  const auto u32 = [&](const char* key) { return static_cast<std::size_t>(md.get<std::uint32_t>(key)); };
  model m;
  m.cfg.dim = u32("llama.embedding_length");
  m.cfg.hidden_dim = u32("llama.feed_forward_length");
  m.cfg.n_layers = u32("llama.block_count");
  m.cfg.n_heads = u32("llama.attention.head_count");
  m.cfg.n_kv_heads =
      md.contains("llama.attention.head_count_kv") ? u32("llama.attention.head_count_kv") : m.cfg.n_heads;
  m.cfg.seq_len = u32("llama.context_length");
  m.cfg.norm_eps = md.get<float>("llama.attention.layer_norm_rms_epsilon");
  if (md.contains("llama.rope.freq_base")) m.cfg.rope_theta = md.get<float>("llama.rope.freq_base");
  m.cfg.rope = rope_style::interleaved;
  const auto read_matrix = [&](const std::string& n) {
    const auto& info = r.tensor(n);
    const std::vector<float> values = r.read_floats(info);
    return matrix(Eigen::Map<const matrix>(values.data(), static_cast<Eigen::Index>(info.rows()),
                                           static_cast<Eigen::Index>(info.cols())));
  };
  const auto read_vector = [&](const std::string& n) {
    const std::vector<float> values = r.read_floats(r.tensor(n));
    return vector(Eigen::Map<const vector>(values.data(), static_cast<Eigen::Index>(values.size())));
  };
  m.embedding = read_matrix("token_embd.weight");
  m.cfg.vocab_size = static_cast<std::size_t>(m.embedding.rows());
  m.final_norm = read_vector("output_norm.weight");
  if (r.find_tensor("output.weight") != nullptr) m.classifier = read_matrix("output.weight");
  for (std::size_t l = 0; l < m.cfg.n_layers; ++l) {
    layer w;
    w.attn_norm = read_vector("blk." + std::to_string(l) + ".attn_norm.weight");
    w.ffn_norm = read_vector("blk." + std::to_string(l) + ".ffn_norm.weight");
    for (linear which : all_linears) w.weight(which) = read_matrix(gguf_name(l, which));
    m.layers.push_back(std::move(w));
  }
  return m;
}

}  // namespace ternq::llama
