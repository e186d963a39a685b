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
#include <ternq/pack/q8_0.hpp>

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
  std::string reason;  ///< why a ternary matrix fell back to another type, or that it was kept (empty otherwise)
  pack::ggml_type ggml = pack::ggml_type::f32;
  std::uint64_t elements = 0;  ///< weights in the tensor
  std::uint64_t bytes = 0;     ///< bytes of its data in the file
  bool linear = false;         ///< one of the seven linear layers of a block
  bool kept = false;           ///< stored at the type a `--keep` rule asked for
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

/// The tokenizer keys for a llama2.c vocabulary, as llama.cpp's own
/// converter (examples/convert-llama2c-to-ggml) writes them: ids 0, 1, 2
/// are llama2.c's unknown, BOS and EOS tokens (run.c's convention), written
/// with SentencePiece's texts `<unk>`, `<s>`, `</s>` (llama2.c's export
/// spells BOS and EOS "\n<s>\n" and "\n</s>\n") and the types of
/// llama.cpp's `llama_token_type`: 2 unknown, 3 control (BOS, EOS and any
/// empty piece), 6 byte (`<0xNN>`), 1 normal for the rest. The other pieces
/// are in SentencePiece spelling (see above). `unknown_token_id`,
/// `bos_token_id` and `eos_token_id` are 0, 1, 2. A llama2.c vocabulary has
/// no padding or separator token: those keys are left out, which llama.cpp
/// reads as "none" (the converter writes 0xFFFFFFFF, which llama.cpp
/// reports as a bad special token before falling back to the same "none").
inline io::llama_vocab vocab_of(const io::llama2c_tokenizer& tok) {
  if (tok.vocab_size() < 3) {
    fail(errc::invalid_argument, "a llama2.c vocabulary of ", tok.vocab_size(),
         " pieces lacks the unknown, BOS and EOS tokens (ids 0, 1, 2)");
  }
  io::llama_vocab v;
  v.model = "llama";
  for (std::size_t id = 0; id < tok.vocab_size(); ++id) {
    const int i = static_cast<int>(id);
    const std::string piece(tok.piece(i));
    std::string text = sentencepiece_spelling(piece);
    std::int32_t type = io::token_type::normal;
    if (id == 0) {
      text = "<unk>";
      type = io::token_type::unknown;
    } else if (id == 1) {
      text = "<s>";
      type = io::token_type::control;
    } else if (id == 2) {
      text = "</s>";
      type = io::token_type::control;
    } else if (piece.empty()) {
      type = io::token_type::control;
    } else if (piece.size() == 6 && piece.starts_with("<0x") && piece.ends_with(">")) {
      type = io::token_type::byte;
    }
    v.tokens.push_back(std::move(text));
    v.scores.push_back(tok.score(i));
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

/// Where the tensors of a GGUF go.
struct gguf_storage {
  pack::format format = pack::format::tq2_0;  ///< the ternary format of the layers given as ternary matrices
  /// Ternary formats tried in order for a layer `format` cannot hold exactly
  /// (a width that is not a multiple of its block, ...), before float storage.
  std::vector<pack::format> fallbacks{};
  bool f16_when_lossless = true;  ///< float layers: F16 where every value is an fp16 value, else F32
  /// Tensors stored at a chosen type (F32, F16 or Q8_0) whatever they are
  /// given as, by GGUF name (`--keep`): the caller has already rounded the
  /// model's values to that type, so the file holds them exactly.
  std::map<std::string, pack::ggml_type> keep{};
};

/// Writes `m` as a llama-architecture GGUF. Every linear layer that has an
/// entry in `ternary` is packed into `storage.format` when the format can
/// hold it exactly, else into the first of `storage.fallbacks` that can;
/// otherwise (a width no format's block divides, scales that differ inside
/// a block, offsets, a permutation) it is stored as the dequantized values,
/// and the reason (the conflict with `storage.format`) is recorded. Float
/// layers are F16 when that is lossless (and allowed), F32 otherwise, so
/// the file holds exactly the model's weights: the caller rounds ternary
/// scales to fp16 first so that packed blocks decode to them. Tensors named
/// in `storage.keep` are stored at their type (Q8_0 with ggml's reference
/// rule). Norms are F32 (llama.cpp requires it). `general.file_type` is
/// that of the type holding most linear-layer weights. `tokenizer` absent:
/// `tokenizer.ggml.model = "no_vocab"`.
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

  // Decide each tensor's storage, then declare all of them, then write in order.
  struct plan {
    std::string name;
    const matrix* dense = nullptr;  // float storage
    const vector* norm = nullptr;
    std::optional<pack::packed_tensor> packed;
    std::vector<std::uint8_t> q8_0;  // a kept Q8_0 tensor's blocks
    pack::ggml_type type = pack::ggml_type::f32;
    std::string reason;
    bool linear = false;
    bool kept = false;
  };
  std::vector<plan> plans;
  const auto add_dense = [&](std::string n, const matrix& w, std::string reason = {}) -> plan& {
    plan p;
    p.name = std::move(n);
    p.dense = &w;
    p.type = storage.f16_when_lossless && exactly_fp16(w) ? pack::ggml_type::f16 : pack::ggml_type::f32;
    p.reason = std::move(reason);
    plans.push_back(std::move(p));
    return plans.back();
  };
  const auto add_norm = [&](std::string n, const vector& v) {
    plan p;
    p.name = std::move(n);
    p.norm = &v;
    plans.push_back(std::move(p));
  };
  // A tensor a --keep rule names, at that rule's type; returns false when no rule names it.
  const auto add_kept = [&](const std::string& n, const matrix& w) {
    const auto it = storage.keep.find(n);
    if (it == storage.keep.end()) return false;
    plan& p = add_dense(n, w);
    p.type = it->second;
    p.kept = true;
    if (p.type == pack::ggml_type::q8_0) {
      // Row-major `out x in` values: the rows of the ggml tensor.
      p.q8_0 = pack::quantize_q8_0(std::span<const float>(w.data(), static_cast<std::size_t>(w.size())),
                                   static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
    } else if (!pack::is_float_type(p.type)) {
      fail(errc::invalid_argument, "save_gguf: tensor '", n, "' is to be kept as ", pack::ggml_type_name(p.type),
           "; only F32, F16, BF16 and Q8_0 are kept types");
    }
    return true;
  };
  const auto add_matrix = [&](const std::string& n, const matrix& w) {
    if (!add_kept(n, w)) add_dense(n, w);
  };
  const auto add_linear = [&](std::size_t l, linear which) {
    const std::string n = gguf_name(l, which);
    const matrix& w = m.layers[l].weight(which);
    const std::size_t first = plans.size();
    const auto it = ternary.find({l, which});
    if (add_kept(n, w)) {
      // kept: stored at the rule's type even when it was quantized too
    } else if (it == ternary.end()) {
      add_dense(n, w);
    } else if (const auto conflict = pack::find_conflict(it->second, format)) {
      std::optional<pack::format> fallback;
      for (const pack::format f : storage.fallbacks) {
        if (!pack::find_conflict(it->second, f)) {
          fallback = f;
          break;
        }
      }
      if (fallback) {
        plan p;
        p.name = n;
        p.packed = pack::pack(it->second, *fallback);
        p.type = p.packed->type();
        p.reason = conflict->message;
        plans.push_back(std::move(p));
      } else {
        add_dense(n, w, conflict->message);
      }
    } else {
      plan p;
      p.name = n;
      p.packed = pack::pack(it->second, format);
      p.type = p.packed->type();
      plans.push_back(std::move(p));
    }
    plans[first].linear = true;
  };
  add_matrix("token_embd.weight", m.embedding);
  add_norm("output_norm.weight", m.final_norm);
  if (m.classifier) add_matrix("output.weight", *m.classifier);
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    add_norm("blk." + std::to_string(l) + ".attn_norm.weight", m.layers[l].attn_norm);
    for (linear which : {linear::q, linear::k, linear::v, linear::o}) add_linear(l, which);
    add_norm("blk." + std::to_string(l) + ".ffn_norm.weight", m.layers[l].ffn_norm);
    for (linear which : {linear::gate, linear::up, linear::down}) add_linear(l, which);
  }
  for (const auto& kept : storage.keep) {
    // A named reference, not the structured binding: Clang 14 cannot capture bindings in lambdas.
    const std::string& kept_name = kept.first;
    const bool found = std::any_of(plans.begin(), plans.end(), [&](const plan& p) { return p.name == kept_name; });
    if (!found) fail(errc::invalid_argument, "save_gguf: the model has no tensor '", kept_name, "' to keep");
  }

  // The file type of the type that holds most linear-layer weights (F32 when there are none).
  std::map<pack::ggml_type, std::uint64_t> linear_weights;
  for (const plan& p : plans) {
    if (!p.linear) continue;
    linear_weights[p.type] += p.packed ? p.packed->rows * p.packed->cols : static_cast<std::uint64_t>(p.dense->size());
  }
  pack::ggml_type dominant = pack::ggml_type::f32;
  std::uint64_t most = 0;
  for (const auto& [type, count] : linear_weights) {
    if (count > most) {
      dominant = type;
      most = count;
    }
  }

  io::gguf_writer writer;
  io::add_llama_metadata(writer.edit_metadata(), hp, io::file_type_of(dominant), name);
  if (tokenizer != nullptr) {
    io::add_llama_tokenizer(writer.edit_metadata(), vocab_of(*tokenizer), hp.vocab_size);
  } else {
    io::llama_vocab none;
    none.model = "no_vocab";
    io::add_llama_tokenizer(writer.edit_metadata(), none, hp.vocab_size);
  }

  std::vector<stored_tensor> stored;
  for (const plan& p : plans) {
    const io::gguf_tensor_info* info = nullptr;
    if (p.packed) {
      info = &writer.add_tensor(p.name, *p.packed);
    } else if (p.norm != nullptr) {
      info = &writer.add_tensor(p.name, pack::ggml_type::f32, {static_cast<std::int64_t>(p.norm->size())});
    } else {
      info = &writer.add_tensor(p.name, p.type, {p.dense->cols(), p.dense->rows()});
    }
    stored_tensor s;
    s.name = p.name;
    s.type = std::string(pack::traits_of(p.type).name);
    s.reason = p.kept ? "--keep" : p.reason;
    s.ggml = p.type;
    s.bytes = info->size;
    s.elements = p.packed     ? p.packed->rows * p.packed->cols
                 : p.norm ? static_cast<std::uint64_t>(p.norm->size())
                          : static_cast<std::uint64_t>(p.dense->size());
    s.linear = p.linear;
    s.kept = p.kept;
    stored.push_back(std::move(s));
  }
  writer.open(path);
  for (const plan& p : plans) {
    if (p.packed) {
      writer.write_tensor(p.name, *p.packed);
    } else if (p.norm != nullptr) {
      writer.write_tensor(p.name, std::span<const float>(p.norm->data(), static_cast<std::size_t>(p.norm->size())));
    } else if (!p.q8_0.empty()) {
      writer.write_tensor(p.name, std::span<const std::uint8_t>(p.q8_0));
    } else {
      writer.write_tensor(p.name, std::span<const float>(p.dense->data(), static_cast<std::size_t>(p.dense->size())));
    }
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
