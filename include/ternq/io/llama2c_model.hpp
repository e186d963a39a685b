// SPDX-License-Identifier: MIT
// llama2c_model: an owned, editable llama2.c model, and the checkpoint writer.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "ternq/core/checks.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/view.hpp"
#include "ternq/io/atomic_output.hpp"
#include "ternq/io/detail/bytes.hpp"
#include "ternq/io/detail/read_float.hpp"
#include "ternq/io/llama2c_checkpoint.hpp"
#include "ternq/io/mapped_file.hpp"

namespace ternq::io {

namespace detail {

/// Streams the elements of `m` (row-major order, any strides) as little-endian float32.
inline void write_f32(atomic_output& out, matrix_view<const float> m) {
  std::array<std::byte, 4 * 1024> buffer{};
  std::size_t used = 0;
  for (std::size_t i = 0; i < m.rows(); ++i) {
    for (std::size_t j = 0; j < m.cols(); ++j) {
      store_f32_le(buffer.data() + used, m(i, j));
      used += 4;
      if (used == buffer.size()) {
        out.write(buffer);
        used = 0;
      }
    }
  }
  out.write(std::span(buffer).first(used));
}
inline void write_f32(atomic_output& out, std::span<const float> v) {
  write_f32(out, matrix_view<const float>(v.data(), 1, v.size(), 0, 1));
}

inline void require_length(std::span<const float> v, std::size_t n, std::string_view what) {
  if (v.size() != n) {
    fail(errc::shape_mismatch, "write_llama2c_checkpoint: ", what, " has ", v.size(), " values, expected ", n);
  }
}

}  // namespace detail

/// Writes a llama2.c checkpoint of `config` holding `weights` (views of any
/// strides). Every tensor's shape is checked against the config
/// (`[ternq.shape_mismatch]` naming it). With a shared classifier,
/// `weights.classifier` must be empty or the embedding itself; otherwise it
/// is written after the legacy RoPE tables, and the header's vocab_size is
/// negative. Empty `legacy_rope` writes zeros (run.c never reads them).
template <class T>
void write_llama2c_checkpoint(const std::filesystem::path& path, const llama2c_config& config,
                              const llama2c_weights<T>& w) {
  constexpr const char* context = "write_llama2c_checkpoint";
  const llama2c_layout layout = make_llama2c_layout(config, errc::invalid_argument, context);
  const std::size_t dim = config.dim;
  const std::size_t kv = config.kv_dim();
  const std::size_t hidden = config.hidden_dim;
  require_shape(w.token_embedding, config.vocab_size, dim, context, "token_embedding");
  if (w.layers.size() != config.n_layers) {
    fail(errc::shape_mismatch, context, ": ", w.layers.size(), " layers, the config has ", config.n_layers);
  }
  for (std::size_t i = 0; i < config.n_layers; ++i) {
    const llama2c_layer<T>& l = w.layers[i];
    const std::string at = "layers[" + std::to_string(i) + "].";
    detail::require_length(l.rms_att, dim, at + "rms_att");
    require_shape(l.wq, dim, dim, context, at + "wq");
    require_shape(l.wk, kv, dim, context, at + "wk");
    require_shape(l.wv, kv, dim, context, at + "wv");
    require_shape(l.wo, dim, dim, context, at + "wo");
    detail::require_length(l.rms_ffn, dim, at + "rms_ffn");
    require_shape(l.w1, hidden, dim, context, at + "w1");
    require_shape(l.w2, dim, hidden, context, at + "w2");
    require_shape(l.w3, hidden, dim, context, at + "w3");
  }
  detail::require_length(w.rms_final, dim, "rms_final");
  if (!w.legacy_rope.empty()) detail::require_length(w.legacy_rope, layout.legacy_rope_count, "legacy_rope");
  if (config.shared_classifier) {
    const auto& c = w.classifier;
    const auto& e = w.token_embedding;
    const bool is_embedding = c.data() == e.data() && c.rows() == e.rows() && c.cols() == e.cols() &&
                              c.row_stride() == e.row_stride() && c.col_stride() == e.col_stride();
    if (!c.empty() && !is_embedding) {
      fail(errc::invalid_argument, context,
           ": the config shares the classifier with the embedding, but weights.classifier is another matrix");
    }
  } else {
    require_shape(w.classifier, config.vocab_size, dim, context, "classifier");
  }

  atomic_output out(path, context);
  std::array<std::byte, 28> header{};
  const std::size_t fields[7] = {config.dim,        config.hidden_dim, config.n_layers, config.n_heads,
                                 config.n_kv_heads, config.vocab_size, config.seq_len};
  for (std::size_t i = 0; i < 7; ++i) {
    const auto v = static_cast<std::int32_t>(fields[i]);
    detail::store_i32_le(header.data() + 4 * i, i == 5 && !config.shared_classifier ? -v : v);
  }
  out.write(header);
  detail::write_f32(out, w.token_embedding);
  const auto each_layer = [&](auto member) {
    for (const auto& l : w.layers) detail::write_f32(out, l.*member);
  };
  each_layer(&llama2c_layer<T>::rms_att);
  each_layer(&llama2c_layer<T>::wq);
  each_layer(&llama2c_layer<T>::wk);
  each_layer(&llama2c_layer<T>::wv);
  each_layer(&llama2c_layer<T>::wo);
  each_layer(&llama2c_layer<T>::rms_ffn);
  each_layer(&llama2c_layer<T>::w1);
  each_layer(&llama2c_layer<T>::w2);
  each_layer(&llama2c_layer<T>::w3);
  detail::write_f32(out, w.rms_final);
  if (w.legacy_rope.empty()) {
    const std::vector<float> zeros(layout.legacy_rope_count, 0.0F);
    detail::write_f32(out, zeros);
  } else {
    detail::write_f32(out, w.legacy_rope);
  }
  if (!config.shared_classifier) detail::write_f32(out, w.classifier);
  out.commit();
}

/// A llama2.c model held in memory, every tensor editable (for instance
/// replaced by its fake-quantized version) and writable back in the same
/// format. The floats live in one buffer in file order, so a model loaded
/// and written unchanged gives back the same bytes.
class llama2c_model {
 public:
  /// A zero-filled model of `config` (`[ternq.invalid_argument]` for an invalid config).
  explicit llama2c_model(const llama2c_config& config)
      : config_(config),
        layout_(make_llama2c_layout(config, errc::invalid_argument, "llama2c_model")),
        payload_(layout_.float_count, 0.0F) {}

  /// Reads a checkpoint into memory (little-endian decoding: any host).
  [[nodiscard]] static llama2c_model load(const std::filesystem::path& path) {
    const mapped_file map(path);
    const auto [config, layout] = detail::read_llama2c_header(map.bytes(), "llama2c '" + path.string() + "'");
    llama2c_model m(config);
    detail::read_as_float(map, 28, dtype::f32, m.payload_);
    return m;
  }

  [[nodiscard]] const llama2c_config& config() const noexcept { return config_; }
  [[nodiscard]] const llama2c_layout& layout() const noexcept { return layout_; }
  /// Every float in file order.
  [[nodiscard]] std::span<float> payload() noexcept { return payload_; }
  [[nodiscard]] std::span<const float> payload() const noexcept { return payload_; }

  /// Named, writable views; valid until the model is destroyed or `unshare_classifier` runs.
  [[nodiscard]] llama2c_weights<float> weights() noexcept { return llama2c_views(payload_.data(), config_, layout_); }
  [[nodiscard]] llama2c_weights<const float> weights() const noexcept {
    return llama2c_views(static_cast<const float*>(payload_.data()), config_, layout_);
  }

  /// Gives the classifier its own copy of the embedding, so the two can be
  /// changed apart (the file written then stores both). No-op when unshared.
  void unshare_classifier() {
    if (!config_.shared_classifier) return;
    config_.shared_classifier = false;
    layout_ = make_llama2c_layout(config_, errc::invalid_argument, "llama2c_model");
    payload_.resize(layout_.float_count);
    std::copy_n(payload_.begin() + static_cast<std::ptrdiff_t>(layout_.token_embedding),
                config_.vocab_size * config_.dim, payload_.begin() + static_cast<std::ptrdiff_t>(layout_.classifier));
  }

  /// Writes the model as a llama2.c checkpoint.
  void write(const std::filesystem::path& path) const { write_llama2c_checkpoint(path, config_, weights()); }

 private:
  llama2c_config config_;
  llama2c_layout layout_;
  std::vector<float> payload_;
};

}  // namespace ternq::io
