// SPDX-License-Identifier: MIT
// A model read part by part from its files: the configuration at once, each decoder block widened to fp32 only
// when asked for, the embedding a row at a time. Whole-model tools (ternq-quantize, ternq-eval) stream through
// it block by block, so a model never has to fit in memory in fp32; `materialize` still builds the whole model
// where a caller wants one (small models, tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <ternq/core/error.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/hf_llama.hpp>
#include <ternq/io/llama2c_checkpoint.hpp>

#include "llama/convert.hpp"
#include "llama/model.hpp"

namespace ternq::llama {

/// A model's weights, read on demand. Every matrix comes back as a row-major fp32 copy in GGUF's layout
/// (`out x in`; q/k rows in the RoPE layout of `cfg().rope`: interleaved for the Llama block, rotate-half for
/// Qwen), whatever the file stores.
class model_source {
 public:
  model_source() = default;
  model_source(const model_source&) = delete;
  model_source& operator=(const model_source&) = delete;
  virtual ~model_source() = default;

  [[nodiscard]] const config& cfg() const noexcept { return cfg_; }

  /// Decoder block `index` (`< cfg().n_layers`), widened to fp32.
  [[nodiscard]] virtual layer block(std::size_t index) const = 0;
  /// Rows `[first, first + out.size() / dim)` of the token embedding into `out`.
  virtual void embedding_rows(std::size_t first, std::span<float> out) const = 0;
  [[nodiscard]] virtual vector final_norm() const = 0;
  /// Whether the output matrix is its own tensor (else it is tied to the embedding).
  [[nodiscard]] virtual bool has_classifier() const = 0;
  /// Rows of the output matrix (the embedding's when tied).
  virtual void classifier_rows(std::size_t first, std::span<float> out) const = 0;
  /// The files the model is read from (for fingerprints).
  [[nodiscard]] virtual std::vector<std::filesystem::path> files() const = 0;

  /// The whole token embedding, `vocab x dim`.
  [[nodiscard]] matrix embedding() const { return rows_of([&](std::span<float> out) { embedding_rows(0, out); }); }
  /// The whole output matrix when it is its own tensor.
  [[nodiscard]] std::optional<matrix> classifier() const {
    if (!has_classifier()) return std::nullopt;
    return rows_of([&](std::span<float> out) { classifier_rows(0, out); });
  }

 protected:
  template <class Fill>
  [[nodiscard]] matrix rows_of(Fill fill) const {
    matrix m(static_cast<Eigen::Index>(cfg_.vocab_size), static_cast<Eigen::Index>(cfg_.dim));
    fill(std::span<float>(m.data(), static_cast<std::size_t>(m.size())));
    return m;
  }

  config cfg_;
};

/// The whole model in memory.
inline model materialize(const model_source& s) {
  model m;
  m.cfg = s.cfg();
  m.embedding = s.embedding();
  m.final_norm = s.final_norm();
  m.classifier = s.classifier();
  m.layers.reserve(m.cfg.n_layers);
  for (std::size_t l = 0; l < m.cfg.n_layers; ++l) m.layers.push_back(s.block(l));
  return m;
}

namespace detail {

/// A row-major copy of a read-only view.
inline matrix copy_view(const matrix_view<const float>& v) {
  matrix m(static_cast<Eigen::Index>(v.rows()), static_cast<Eigen::Index>(v.cols()));
  for (std::size_t i = 0; i < v.rows(); ++i) {
    for (std::size_t j = 0; j < v.cols(); ++j) m(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = v(i, j);
  }
  return m;
}

inline void copy_rows(const matrix_view<const float>& v, std::size_t first, std::span<float> out) {
  const std::size_t cols = v.cols();
  if (cols == 0 || out.size() % cols != 0 || first > v.rows() || out.size() / cols > v.rows() - first) {
    fail(errc::shape_mismatch, "model_source: rows from ", first, " of a ", v.rows(), "x", cols, " matrix cannot fill ",
         out.size(), " values");
  }
  for (std::size_t i = 0; i < out.size() / cols; ++i) {
    for (std::size_t j = 0; j < cols; ++j) out[i * cols + j] = v(first + i, j);
  }
}

}  // namespace detail

/// A llama2.c checkpoint (F32, memory-mapped; interleaved RoPE, eps 1e-5, theta 10000, as run.c).
class llama2c_source final : public model_source {
 public:
  explicit llama2c_source(const std::filesystem::path& path) : ck_(path) {
    const io::llama2c_config& c = ck_.config();
    cfg_.dim = c.dim;
    cfg_.hidden_dim = c.hidden_dim;
    cfg_.n_layers = c.n_layers;
    cfg_.n_heads = c.n_heads;
    cfg_.n_kv_heads = c.n_kv_heads;
    cfg_.vocab_size = c.vocab_size;
    cfg_.seq_len = c.seq_len;
  }

  [[nodiscard]] layer block(std::size_t index) const override {
    const auto& l = ck_.weights().layers.at(index);
    layer out;
    out.wq = detail::copy_view(l.wq);
    out.wk = detail::copy_view(l.wk);
    out.wv = detail::copy_view(l.wv);
    out.wo = detail::copy_view(l.wo);
    out.w1 = detail::copy_view(l.w1);
    out.w2 = detail::copy_view(l.w2);
    out.w3 = detail::copy_view(l.w3);
    out.attn_norm = Eigen::Map<const vector>(l.rms_att.data(), static_cast<Eigen::Index>(l.rms_att.size()));
    out.ffn_norm = Eigen::Map<const vector>(l.rms_ffn.data(), static_cast<Eigen::Index>(l.rms_ffn.size()));
    return out;
  }
  void embedding_rows(std::size_t first, std::span<float> out) const override {
    detail::copy_rows(ck_.weights().token_embedding, first, out);
  }
  [[nodiscard]] vector final_norm() const override {
    const auto& v = ck_.weights().rms_final;
    return Eigen::Map<const vector>(v.data(), static_cast<Eigen::Index>(v.size()));
  }
  [[nodiscard]] bool has_classifier() const override { return !ck_.config().shared_classifier; }
  void classifier_rows(std::size_t first, std::span<float> out) const override {
    detail::copy_rows(ck_.weights().classifier, first, out);
  }
  [[nodiscard]] std::vector<std::filesystem::path> files() const override { return {ck_.path()}; }

 private:
  io::llama2c_checkpoint ck_;
};

/// The family of a supported Hugging Face `model_type`: Mistral runs the Llama block.
inline family family_of(const io::hf_llama_config& c) {
  if (c.model_type == "qwen2") return family::qwen2;
  if (c.model_type == "qwen3") return family::qwen3;
  return family::llama;
}

/// How a model of `f` rotates its queries and keys in GGUF (and so in ternq): the Llama block in llama.cpp's
/// interleaved layout (its converter permutes the q/k rows), Qwen in Hugging Face's rotate-half layout (llama.cpp's
/// NEOX RoPE; its rows are stored as they are).
constexpr rope_style rope_of(family f) noexcept {
  return f == family::llama ? rope_style::interleaved : rope_style::rotate_half;
}

/// A Hugging Face Llama-family directory (config.json + model.safetensors or indexed shards; F32/F16/BF16, read
/// with pread a tensor at a time). For the Llama block, q/k rows (and biases) are reordered to the interleaved
/// RoPE layout; Qwen keeps rotate-half.
class hf_source final : public model_source {
 public:
  explicit hf_source(const std::filesystem::path& directory) : hf_(directory) {
    const io::hf_llama_config& c = hf_.config();
    cfg_.arch = family_of(c);
    cfg_.dim = c.hidden_size;
    cfg_.hidden_dim = c.intermediate_size;
    cfg_.n_layers = c.num_hidden_layers;
    cfg_.n_heads = c.num_attention_heads;
    cfg_.n_kv_heads = c.num_key_value_heads;
    cfg_.vocab_size = c.vocab_size;
    cfg_.seq_len = c.max_position_embeddings;
    cfg_.norm_eps = static_cast<float>(c.rms_norm_eps);
    cfg_.rope_theta = static_cast<float>(c.rope_theta);
    cfg_.rope = rope_of(cfg_.arch);
    if (c.declared_head_dim != 0) cfg_.head_width = c.declared_head_dim;
    cfg_.sliding_window = c.sliding_window;
    if (c.rope_scaling) cfg_.rope_factors = llama3_rope_factors(*c.rope_scaling, c.rope_theta, c.head_dim());
  }

  [[nodiscard]] layer block(std::size_t index) const override {
    if (index >= cfg_.n_layers) fail(errc::invalid_argument, "hf_source: no block ", index);
    layer out;
    for (const block_tensor t : block_tensor_order) {
      if (!has_tensor(cfg_.arch, t)) continue;
      if (const auto* which = std::get_if<linear>(&t)) {
        out.weight(*which) = from_hf_layout(cfg_, t, get(hf_name(index, t)));
      } else {
        const auto v = std::get<block_vector>(t);
        out.values(v) = from_hf_layout(cfg_, t, get_vector(hf_name(index, t)));
      }
    }
    return out;
  }
  void embedding_rows(std::size_t first, std::span<float> out) const override {
    hf_.tensors().read_rows("model.embed_tokens.weight", first, out);
  }
  [[nodiscard]] vector final_norm() const override { return get_vector("model.norm.weight"); }
  [[nodiscard]] bool has_classifier() const override { return hf_.classifier_name() == "lm_head.weight"; }
  void classifier_rows(std::size_t first, std::span<float> out) const override {
    hf_.tensors().read_rows(hf_.classifier_name(), first, out);
  }
  [[nodiscard]] std::vector<std::filesystem::path> files() const override {
    std::vector<std::filesystem::path> out{hf_.tensors().directory() / "config.json"};
    for (std::size_t i = 0; i < hf_.tensors().shard_count(); ++i) out.push_back(hf_.tensors().shard(i).path());
    return out;
  }
  [[nodiscard]] const io::hf_llama_model& files_model() const noexcept { return hf_; }

 private:
  [[nodiscard]] matrix get(const std::string& name) const {
    const io::tensor_info& t = hf_.tensors().info(name);
    matrix m(static_cast<Eigen::Index>(t.shape.at(0)), static_cast<Eigen::Index>(t.shape.at(1)));
    hf_.tensors().read_values(name, std::span<float>(m.data(), static_cast<std::size_t>(m.size())));
    return m;
  }
  [[nodiscard]] vector get_vector(const std::string& name) const {
    const io::tensor_info& t = hf_.tensors().info(name);
    vector v(static_cast<Eigen::Index>(t.element_count()));
    hf_.tensors().read_values(name, std::span<float>(v.data(), static_cast<std::size_t>(v.size())));
    return v;
  }

  io::hf_llama_model hf_;
};

/// The family of a GGUF `general.architecture`; other architectures are refused by name.
inline family family_of_architecture(const std::string& arch, const std::string& context) {
  for (const family f : {family::llama, family::qwen2, family::qwen3}) {
    if (arch == gguf_architecture(f)) return f;
  }
  fail(errc::unsupported, context, ": general.architecture \"", arch,
       "\" is not supported; ternq runs llama (also Mistral), qwen2 and qwen3");
}

/// How a `gguf_source` reads its file: memory-mapped (the default; tensor data can then be viewed in place, as the
/// packed runtime does), or through a stream (tensor data always copied).
enum class gguf_access { mapped, streamed };

/// A Llama-family GGUF (as `save_gguf` or llama.cpp's converter writes it, of any tensor type ternq reads);
/// `block` dequantizes every tensor with ggml's rules when it is read (packed_model.hpp keeps the ternary ones
/// packed instead). Every block tensor's shape is checked against the configuration when it is read.
class gguf_source final : public model_source {
 public:
  explicit gguf_source(const std::filesystem::path& path, gguf_access access = gguf_access::mapped)
      : r_(access == gguf_access::mapped ? io::gguf_reader::map(path) : io::gguf_reader::open(path)), path_(path) {
    const auto& md = r_.metadata();
    const std::string context = "gguf '" + path.string() + "'";
    if (!md.contains("general.architecture")) fail(errc::unsupported, context, ": general.architecture is missing");
    cfg_.arch = family_of_architecture(md.get<std::string>("general.architecture"), context);
    const std::string prefix = std::string(gguf_architecture(cfg_.arch)) + ".";
    const auto key = [&](const char* k) { return prefix + k; };
    const auto u32 = [&](const char* k) { return static_cast<std::size_t>(md.get<std::uint32_t>(key(k))); };
    cfg_.dim = u32("embedding_length");
    cfg_.hidden_dim = u32("feed_forward_length");
    cfg_.n_layers = u32("block_count");
    cfg_.n_heads = u32("attention.head_count");
    cfg_.n_kv_heads = md.contains(key("attention.head_count_kv")) ? u32("attention.head_count_kv") : cfg_.n_heads;
    cfg_.seq_len = u32("context_length");
    cfg_.norm_eps = md.get<float>(key("attention.layer_norm_rms_epsilon"));
    if (md.contains(key("rope.freq_base"))) cfg_.rope_theta = md.get<float>(key("rope.freq_base"));
    if (md.contains(key("attention.key_length"))) {
      const std::size_t width = u32("attention.key_length");
      if (md.contains(key("attention.value_length")) && u32("attention.value_length") != width) {
        fail(errc::unsupported, context, ": key and value heads of different widths are not supported");
      }
      if (width != cfg_.dim / cfg_.n_heads) cfg_.head_width = width;
    }
    cfg_.rope = rope_of(cfg_.arch);
    cfg_.vocab_size = r_.tensor("token_embd.weight").rows();
    if (r_.find_tensor("rope_freqs.weight") != nullptr) {
      cfg_.rope_factors = r_.read_floats(r_.tensor("rope_freqs.weight"));
      if (cfg_.rope_factors.size() != cfg_.head_dim() / 2) {
        fail(errc::shape_mismatch, context, ": rope_freqs.weight holds ", cfg_.rope_factors.size(),
             " factors for heads of ", cfg_.head_dim(), " dimensions (", cfg_.head_dim() / 2, " pairs)");
      }
    }
  }

  [[nodiscard]] layer block(std::size_t index) const override {
    layer w;
    for (const block_vector v : all_block_vectors) {
      if (has_vector(cfg_.arch, v)) w.values(v) = block_vector_values(index, v);
    }
    for (const linear which : all_linears) w.weight(which) = read_matrix(linear_tensor(index, which));
    return w;
  }
  void embedding_rows(std::size_t first, std::span<float> out) const override {
    r_.read_rows(r_.tensor("token_embd.weight"), first, out);
  }
  [[nodiscard]] vector final_norm() const override { return read_vector("output_norm.weight"); }
  [[nodiscard]] bool has_classifier() const override { return r_.find_tensor("output.weight") != nullptr; }
  void classifier_rows(std::size_t first, std::span<float> out) const override {
    r_.read_rows(r_.tensor(has_classifier() ? "output.weight" : "token_embd.weight"), first, out);
  }
  [[nodiscard]] std::vector<std::filesystem::path> files() const override { return {path_}; }
  [[nodiscard]] const io::gguf_reader& reader() const noexcept { return r_; }

  /// The tensor of linear layer `which` of block `index`, checked to be the `linear_shape` matrix of `cfg()`.
  [[nodiscard]] const io::gguf_tensor_info& linear_tensor(std::size_t index, linear which) const {
    if (index >= cfg_.n_layers) fail(errc::invalid_argument, context(), ": no block ", index);
    const io::gguf_tensor_info& info = r_.tensor(gguf_name(index, which));
    const auto [rows, cols] = linear_shape(cfg_, which);
    if (info.ne.size() != 2 || info.rows() != rows || info.cols() != cols) {
      fail(errc::shape_mismatch, context(), ": tensor '", info.name, "' (", pack::ggml_type_name(info.type),
           ") has extents ", extents(info), "; the model's ", linear_name(which), " layer is ", rows, "x", cols,
           " (ne [", cols, ", ", rows, "])");
    }
    return info;
  }
  /// Vector `v` of block `index` as floats, checked to have `vector_length` values.
  [[nodiscard]] vector block_vector_values(std::size_t index, block_vector v) const {
    const io::gguf_tensor_info& info = r_.tensor(gguf_name(index, v));
    if (info.ne.size() != 1 || info.cols() != vector_length(cfg_, v)) {
      fail(errc::shape_mismatch, context(), ": tensor '", info.name, "' has extents ", extents(info), ", expected [",
           vector_length(cfg_, v), "]");
    }
    return read_vector(info.name);
  }
  /// A matrix tensor dequantized to fp32.
  [[nodiscard]] matrix read_matrix(const io::gguf_tensor_info& info) const {
    matrix m(static_cast<Eigen::Index>(info.rows()), static_cast<Eigen::Index>(info.cols()));
    r_.read_rows(info, 0, std::span<float>(m.data(), static_cast<std::size_t>(m.size())));
    return m;
  }

 private:
  [[nodiscard]] std::string context() const { return "gguf '" + path_.string() + "'"; }
  static std::string extents(const io::gguf_tensor_info& info) {
    std::string out = "[";
    for (std::size_t k = 0; k < info.ne.size(); ++k) {
      if (k != 0) out += ", ";
      out += std::to_string(info.ne[k]);
    }
    out += ']';
    return out;
  }
  [[nodiscard]] vector read_vector(const std::string& n) const {
    const std::vector<float> values = r_.read_floats(r_.tensor(n));
    return Eigen::Map<const vector>(values.data(), static_cast<Eigen::Index>(values.size()));
  }

  io::gguf_reader r_;
  std::filesystem::path path_;
};

// ---------------------------------------------------------------------------------------------------------------
// Fingerprints: what identifies a model's files for a checkpoint, without reading all of them.

/// 64-bit FNV-1a, continued from `h`.
inline std::uint64_t fnv1a(std::span<const std::uint8_t> bytes, std::uint64_t h = 0xcbf29ce484222325ULL) noexcept {
  for (const std::uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// A file's size and a digest of its first and last MiB and of 16 evenly spaced 64 KiB samples: another model,
/// or the same one edited, gives another value with overwhelming probability; a copy of it the same value.
inline std::string file_fingerprint(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(errc::io, "cannot read '", path.string(), "' for its fingerprint");
  const std::uint64_t size = std::filesystem::file_size(path);
  std::uint64_t h = fnv1a({});
  std::vector<std::uint8_t> buf;
  const auto sample = [&](std::uint64_t offset, std::uint64_t n) {
    n = std::min(n, size - std::min(offset, size));
    buf.resize(static_cast<std::size_t>(n));
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(n));
    h = fnv1a(buf, h);
  };
  constexpr std::uint64_t mib = 1 << 20, piece = 64 << 10;
  sample(0, mib);
  for (std::uint64_t k = 1; k <= 16; ++k) sample(size / 17 * k, piece);
  sample(size > mib ? size - mib : 0, mib);
  char text[64];
  std::snprintf(text, sizeof text, "%llu:%016llx", static_cast<unsigned long long>(size),
                static_cast<unsigned long long>(h));
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// Opening any model file.

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

inline std::unique_ptr<model_source> open_source(const std::filesystem::path& path, model_kind kind) {
  switch (kind) {
    case model_kind::llama2c:
      return std::make_unique<llama2c_source>(path);
    case model_kind::hugging_face:
      return std::make_unique<hf_source>(path);
    case model_kind::gguf:
      return std::make_unique<gguf_source>(path);
  }
  fail(errc::unsupported, "unknown model kind");
}

}  // namespace ternq::llama
