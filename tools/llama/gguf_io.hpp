// SPDX-License-Identifier: MIT
// GGUF files of whole Llama models: write a (ternarized) model that llama.cpp loads, read one back.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <ternq/core/half.hpp>
#include <ternq/io/gguf_llama.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/gguf_writer.hpp>
#include <ternq/pack/compatibility.hpp>
#include <ternq/pack/pack.hpp>
#include <ternq/pack/q8_0.hpp>

#include "llama/model.hpp"
#include "llama/source.hpp"

namespace ternq::llama {


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

/// Where a planned tensor's data go when it is written a piece at a time.
using byte_sink = std::function<void(std::span<const std::uint8_t>)>;

/// One tensor of a llama GGUF, decided: how it is stored (`info`; its `bytes` are filled in when it is declared)
/// and its ggml extents. Its data are made on demand by `bytes`, so a writer holds one tensor's data at a time;
/// a tensor too large for that (a vocabulary-sized matrix) has `pieces` instead, which gives its data to `put` in
/// order, a slice at a time.
struct planned_tensor {
  stored_tensor info;
  std::vector<std::int64_t> ne;
  std::function<std::vector<std::uint8_t>()> bytes;
  std::function<void(const byte_sink& put)> pieces;
};

/// The row-major values of `rows x cols` float rows (the ggml rows) at float type `t` or Q8_0.
inline std::vector<std::uint8_t> encode_dense(pack::ggml_type t, std::span<const float> values, std::size_t rows,
                                              std::size_t cols) {
  if (t == pack::ggml_type::q8_0) return pack::quantize_q8_0(values, rows, cols);
  std::vector<std::uint8_t> out(values.size() * pack::float_type_size(t));
  pack::encode_floats(t, values, out);
  return out;
}

/// The values of a float matrix (row-major `out x in`, the ggml rows) at float type `t` or Q8_0.
inline std::vector<std::uint8_t> encode_dense(pack::ggml_type t, const matrix& w) {
  return encode_dense(t, std::span<const float>(w.data(), static_cast<std::size_t>(w.size())),
                      static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
}

/// The plan of a `rows x cols` float matrix, without its data: the type a `--keep` rule names (`storage.keep`),
/// else F16 where that is lossless (and allowed), else F32. `lossless_fp16()` tells whether every value is an
/// fp16 value; it is asked only when the answer decides the type (it may read the whole matrix).
template <class LosslessFp16>
planned_tensor plan_dense(const std::string& name, std::size_t rows, std::size_t cols, const gguf_storage& storage,
                          LosslessFp16&& lossless_fp16, std::string reason = {}) {
  planned_tensor p;
  p.info.name = name;
  p.info.reason = std::move(reason);
  p.info.elements = static_cast<std::uint64_t>(rows) * cols;
  p.ne = {static_cast<std::int64_t>(cols), static_cast<std::int64_t>(rows)};
  if (const auto it = storage.keep.find(name); it != storage.keep.end()) {
    if (!pack::is_float_type(it->second) && it->second != pack::ggml_type::q8_0) {
      fail(errc::invalid_argument, "save_gguf: tensor '", name, "' is to be kept as ",
           pack::ggml_type_name(it->second), "; only F32, F16, BF16 and Q8_0 are kept types");
    }
    p.info.ggml = it->second;
    p.info.kept = true;
    p.info.reason = "--keep";
  } else {
    p.info.ggml = storage.f16_when_lossless && lossless_fp16() ? pack::ggml_type::f16 : pack::ggml_type::f32;
  }
  p.info.type = std::string(pack::traits_of(p.info.ggml).name);
  return p;
}

/// A float matrix's tensor (see `plan_dense` for its type). The bytes are read from `w` when asked for: it must
/// outlive the plan.
inline planned_tensor plan_matrix(const std::string& name, const matrix& w, const gguf_storage& storage,
                                  std::string reason = {}) {
  const auto lossless = [&w] { return exactly_fp16(w); };
  planned_tensor p = plan_dense(name, static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()), storage,
                                lossless, std::move(reason));
  const pack::ggml_type t = p.info.ggml;
  p.bytes = [t, &w] { return encode_dense(t, w); };
  return p;
}

/// Floats per slice of a matrix streamed a slice of rows at a time: 1 Mi values, 4 MiB of fp32 (256 rows of a
/// 4096-wide model), small next to a block's work and large enough that reading and writing stay sequential.
inline constexpr std::size_t slice_values = std::size_t{1} << 20;

/// A `rows x cols` float matrix that is never whole in memory: `read(first, out)` fills `out` (row-major,
/// `n x cols`) with rows `[first, first + n)`, as the output stores them.
struct row_reader {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::function<void(std::size_t first, matrix& out)> read;
};

/// Calls `f(slice)` on the rows of `m` in order while it returns true, `slice` holding at most `max_values`
/// floats (and at least one row): the last slice is shorter when the row count is not a multiple of the slice's.
template <class F>
void for_each_slice(const row_reader& m, std::size_t max_values, F&& f) {
  const std::size_t step = std::max<std::size_t>(1, max_values / std::max<std::size_t>(1, m.cols));
  matrix slice;
  for (std::size_t first = 0; first < m.rows; first += step) {
    const std::size_t n = std::min(step, m.rows - first);
    slice.resize(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(m.cols));
    m.read(first, slice);
    if (!f(static_cast<const matrix&>(slice))) return;
  }
}

/// True when every value of `m` is an fp16 value, read a slice at a time and stopping at the first that is not.
inline bool exactly_fp16(const row_reader& m, std::size_t max_values) {
  bool exact = true;
  for_each_slice(m, max_values, [&](const matrix& slice) { return exact = exactly_fp16(slice); });
  return exact;
}

/// `plan_matrix` for a matrix read a slice of rows at a time (`m` must outlive the plan), holding one slice of
/// at most `max_values` floats and its encoding: whether F16 is lossless is decided by a first pass over the
/// slices, and the data are encoded and written slice by slice. The bytes are those of the whole matrix, since
/// Q8_0 blocks lie inside rows and F32, F16 and BF16 are elementwise.
inline planned_tensor plan_matrix(const std::string& name, const row_reader& m, const gguf_storage& storage,
                                  std::size_t max_values = slice_values) {
  planned_tensor p = plan_dense(name, m.rows, m.cols, storage, [&] { return exactly_fp16(m, max_values); });
  const pack::ggml_type t = p.info.ggml;
  p.pieces = [t, &m, max_values](const byte_sink& put) {
    for_each_slice(m, max_values, [&](const matrix& slice) {
      put(encode_dense(t, slice));
      return true;
    });
  };
  return p;
}
/// A temporary reader would be gone when the plan reads it.
planned_tensor plan_matrix(const std::string&, row_reader&&, const gguf_storage&, std::size_t = slice_values) = delete;

/// A norm's tensor: always F32 (llama.cpp requires it).
inline planned_tensor plan_norm(const std::string& name, const vector& v) {
  planned_tensor p;
  p.info.name = name;
  p.info.ggml = pack::ggml_type::f32;
  p.info.type = "F32";
  p.info.elements = static_cast<std::uint64_t>(v.size());
  p.ne = {v.size()};
  p.bytes = [&v] {
    std::vector<std::uint8_t> out(static_cast<std::size_t>(v.size()) * 4);
    pack::encode_floats(pack::ggml_type::f32, std::span<const float>(v.data(), static_cast<std::size_t>(v.size())),
                        out);
    return out;
  };
  return p;
}

/// A linear layer's tensor. A `--keep` rule wins; else its ternary matrix `q` (when given) is packed into
/// `storage.format` when the format holds it exactly, else into the first of `storage.fallbacks` that does;
/// otherwise (a width no format's block divides, scales that differ inside a block, offsets, a permutation) it is
/// stored as the dequantized values `w`, with the conflict with `storage.format` as the reason. `w` and `q` must
/// outlive the plan.
inline planned_tensor plan_linear(const std::string& name, const matrix& w, const ternary_matrix* q,
                                  const gguf_storage& storage) {
  planned_tensor p;
  if (storage.keep.contains(name) || q == nullptr) {
    p = plan_matrix(name, w, storage);
  } else {
    std::optional<pack::format> chosen;
    std::string reason;
    if (const auto conflict = pack::find_conflict(*q, storage.format)) {
      reason = conflict->message;
      for (const pack::format f : storage.fallbacks) {
        if (!pack::find_conflict(*q, f)) {
          chosen = f;
          break;
        }
      }
    } else {
      chosen = storage.format;
    }
    if (!chosen) {
      p = plan_matrix(name, w, storage, std::move(reason));
    } else {
      const pack::format f = *chosen;
      p.info.name = name;
      p.info.ggml = pack::ggml_type_of(f);
      p.info.type = std::string(pack::traits_of(p.info.ggml).name);
      p.info.reason = std::move(reason);
      p.info.elements = static_cast<std::uint64_t>(q->rows()) * q->cols();
      p.ne = {static_cast<std::int64_t>(q->cols()), static_cast<std::int64_t>(q->rows())};
      p.bytes = [f, q] { return pack::pack(*q, f).data; };
    }
  }
  p.info.linear = true;
  return p;
}

/// The hyperparameters a GGUF declares for `cfg`.
inline io::llama_hparams hparams_of(const config& cfg) {
  io::llama_hparams hp;
  hp.architecture = std::string(gguf_architecture(cfg.arch));
  if (cfg.head_width != 0 && cfg.head_width * cfg.n_heads != cfg.dim) {
    hp.head_width = static_cast<std::uint32_t>(cfg.head_width);
  }
  hp.vocab_size = static_cast<std::uint32_t>(cfg.vocab_size);
  hp.context_length = static_cast<std::uint32_t>(cfg.seq_len);
  hp.embedding_length = static_cast<std::uint32_t>(cfg.dim);
  hp.block_count = static_cast<std::uint32_t>(cfg.n_layers);
  hp.feed_forward_length = static_cast<std::uint32_t>(cfg.hidden_dim);
  hp.head_count = static_cast<std::uint32_t>(cfg.n_heads);
  hp.head_count_kv = static_cast<std::uint32_t>(cfg.n_kv_heads);
  hp.rms_norm_eps = cfg.norm_eps;
  hp.rope_freq_base = cfg.rope_theta;
  return hp;
}

/// Writes a llama-architecture GGUF of `cfg` holding `tensors` in their order, one tensor's data in memory at a
/// time. `general.file_type` is that of the type holding most linear-layer weights. `vocab` (a tokenizer's
/// `gguf_vocab()`) is padded to the model's vocabulary (`io::padded_vocab`); absent:
/// `tokenizer.ggml.model = "no_vocab"`. Returns how each tensor was stored, with its size in the file.
inline std::vector<stored_tensor> write_llama_gguf(const config& cfg, const std::vector<planned_tensor>& tensors,
                                                   const io::llama_vocab* vocab, const std::filesystem::path& path,
                                                   const std::string& name) {
  const io::llama_hparams hp = hparams_of(cfg);
  // The file type of the type that holds most linear-layer weights (F32 when there are none).
  std::map<pack::ggml_type, std::uint64_t> linear_weights;
  for (const planned_tensor& p : tensors) {
    if (p.info.linear) linear_weights[p.info.ggml] += p.info.elements;
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
  if (vocab != nullptr) {
    io::add_llama_tokenizer(writer.edit_metadata(), io::padded_vocab(*vocab, hp.vocab_size), hp.vocab_size);
  } else {
    io::llama_vocab none;
    none.model = "no_vocab";
    io::add_llama_tokenizer(writer.edit_metadata(), none, hp.vocab_size);
  }
  std::vector<stored_tensor> stored;
  stored.reserve(tensors.size());
  for (const planned_tensor& p : tensors) {
    stored.push_back(p.info);
    stored.back().bytes = writer.add_tensor(p.info.name, p.info.ggml, p.ne).size;
  }
  writer.open(path);
  for (const planned_tensor& p : tensors) {
    if (p.pieces) {
      writer.begin_tensor(p.info.name);
      p.pieces([&writer](std::span<const std::uint8_t> piece) { writer.write_part(piece); });
      writer.end_tensor();
    } else {
      const std::vector<std::uint8_t> data = p.bytes();
      writer.write_tensor(p.info.name, std::span<const std::uint8_t>(data));
    }
  }
  writer.close();
  return stored;
}

/// The GGUF names of every tensor of a model of `cfg` (`classifier`: whether `output.weight` is its own), in
/// file order: the embedding, the final norm, the classifier, the RoPE factors (when `cfg` has them), then every
/// block's tensors in `block_tensor_order`.
inline std::vector<std::string> gguf_tensor_names(const config& cfg, bool classifier) {
  std::vector<std::string> names = {"token_embd.weight", "output_norm.weight"};
  if (classifier) names.emplace_back("output.weight");
  if (!cfg.rope_factors.empty()) names.emplace_back("rope_freqs.weight");
  for (std::size_t l = 0; l < cfg.n_layers; ++l) {
    for (const block_tensor t : block_tensor_order) {
      if (has_tensor(cfg.arch, t)) names.push_back(gguf_name(l, t));
    }
  }
  return names;
}

/// The plan of `cfg`'s RoPE factors (`rope_freqs.weight`, F32), which must outlive it.
inline planned_tensor plan_rope_factors(const config& cfg) {
  planned_tensor p;
  p.info.name = "rope_freqs.weight";
  p.info.ggml = pack::ggml_type::f32;
  p.info.type = "F32";
  p.info.elements = cfg.rope_factors.size();
  p.ne = {static_cast<std::int64_t>(cfg.rope_factors.size())};
  p.bytes = [&cfg] {
    std::vector<std::uint8_t> out(cfg.rope_factors.size() * 4);
    pack::encode_floats(pack::ggml_type::f32, std::span<const float>(cfg.rope_factors), out);
    return out;
  };
  return p;
}

/// The plans of block `index`'s tensors, in `block_tensor_order`: its vectors (F32) and its linear layers
/// (`plan_linear`, with `ternary(which)` the layer's ternary matrix or null). `w` must outlive them.
template <class TernaryOf>
std::vector<planned_tensor> plan_block(std::size_t index, const layer& w, const config& cfg, TernaryOf&& ternary,
                                       const gguf_storage& storage) {
  std::vector<planned_tensor> out;
  for (const block_tensor t : block_tensor_order) {
    if (!has_tensor(cfg.arch, t)) continue;
    if (const auto* which = std::get_if<linear>(&t)) {
      out.push_back(plan_linear(gguf_name(index, *which), w.weight(*which), ternary(*which), storage));
    } else {
      out.push_back(plan_norm(gguf_name(index, t), w.values(std::get<block_vector>(t))));
    }
  }
  return out;
}

/// Refuses `--keep` names that are no tensor of the model.
inline void require_kept_exist(const gguf_storage& storage, const std::vector<std::string>& names) {
  for (const auto& kept : storage.keep) {
    if (std::find(names.begin(), names.end(), kept.first) == names.end()) {
      fail(errc::invalid_argument, "save_gguf: the model has no tensor '", kept.first, "' to keep");
    }
  }
}

/// Writes `m` as a GGUF of its family (see `plan_linear` for where each
/// linear layer goes and `write_llama_gguf` for the metadata). Every linear
/// layer that has an entry in `ternary` is packed where a format holds it;
/// float layers are F16 when that is lossless (and allowed), F32 otherwise,
/// so the file holds exactly the model's weights: the caller rounds ternary
/// scales to fp16 first so that packed blocks decode to them. Tensors named
/// in `storage.keep` are stored at their type (Q8_0 with ggml's reference
/// rule). Norms are F32.
inline std::vector<stored_tensor> save_gguf(const model& m,
                                            const std::map<std::pair<std::size_t, linear>, ternary_matrix>& ternary,
                                            const gguf_storage& storage, const io::llama_vocab* vocab,
                                            const std::filesystem::path& path, const std::string& name) {
  std::vector<planned_tensor> plans;
  plans.push_back(plan_matrix("token_embd.weight", m.embedding, storage));
  plans.push_back(plan_norm("output_norm.weight", m.final_norm));
  if (m.classifier) plans.push_back(plan_matrix("output.weight", *m.classifier, storage));
  if (!m.cfg.rope_factors.empty()) plans.push_back(plan_rope_factors(m.cfg));
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    const auto ternary_of = [&](linear which) -> const ternary_matrix* {
      const auto it = ternary.find({l, which});
      return it == ternary.end() ? nullptr : &it->second;
    };
    for (planned_tensor& p : plan_block(l, m.layers[l], m.cfg, ternary_of, storage)) plans.push_back(std::move(p));
  }
  require_kept_exist(storage, gguf_tensor_names(m.cfg, m.classifier.has_value()));
  return write_llama_gguf(m.cfg, plans, vocab, path, name);
}

/// Reads a Llama-family GGUF (as written by `save_gguf`, or any file of
/// the types ternq reads) into memory, dequantizing every tensor.
inline model load_gguf(const std::filesystem::path& path) { return materialize(gguf_source(path)); }

}  // namespace ternq::llama
