// SPDX-License-Identifier: MIT
// llama2.c checkpoints: the header, the tensor layout, named weight views, and a memory-mapped reader.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/view.hpp"
#include "ternq/io/detail/bytes.hpp"
#include "ternq/io/mapped_file.hpp"

namespace ternq::io {

/// The header of a llama2.c checkpoint: seven little-endian int32 `dim,
/// hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len`, where a
/// negative `vocab_size` means the file stores its own output matrix.
struct llama2c_config {
  std::size_t dim = 0;
  std::size_t hidden_dim = 0;
  std::size_t n_layers = 0;
  std::size_t n_heads = 0;
  std::size_t n_kv_heads = 0;
  std::size_t vocab_size = 0;  ///< always positive here; the sign lives in `shared_classifier`
  std::size_t seq_len = 0;
  bool shared_classifier = true;  ///< true: the output matrix is the token embedding

  [[nodiscard]] std::size_t head_size() const noexcept { return dim / n_heads; }
  /// Rows of wk and wv: `dim * n_kv_heads / n_heads`.
  [[nodiscard]] std::size_t kv_dim() const noexcept { return head_size() * n_kv_heads; }
  friend bool operator==(const llama2c_config&, const llama2c_config&) = default;
};

/// Where each tensor starts, in floats from the end of the header, in
/// llama2.c's order (each per-layer tensor holds all layers back to back).
struct llama2c_layout {
  std::size_t token_embedding = 0, rms_att = 0, wq = 0, wk = 0, wv = 0, wo = 0, rms_ffn = 0, w1 = 0, w2 = 0, w3 = 0,
              rms_final = 0, legacy_rope = 0, classifier = 0;
  std::size_t legacy_rope_count = 0;  ///< floats in the two legacy RoPE tables together
  std::size_t float_count = 0;        ///< every float in the file

  /// Header plus floats: the exact size of a checkpoint file.
  [[nodiscard]] std::size_t file_size() const noexcept { return 28 + 4 * float_count; }
};

/// `config` as the header prints it, for messages.
inline std::string describe(const llama2c_config& c) {
  return ternq::detail::concat("dim ", c.dim, ", hidden_dim ", c.hidden_dim, ", n_layers ", c.n_layers, ", n_heads ",
                               c.n_heads, ", n_kv_heads ", c.n_kv_heads, ", vocab_size ", c.vocab_size,
                               c.shared_classifier ? " shared" : " unshared", ", seq_len ", c.seq_len);
}

/// Validates `config` (every field positive and an int32, `dim` a multiple
/// of `n_heads`, `n_heads` a multiple of `n_kv_heads`, sizes within 64 bits)
/// and lays it out; a violation throws `code` with `context`.
inline llama2c_layout make_llama2c_layout(const llama2c_config& c, errc code, std::string_view context) {
  const std::pair<const char*, std::size_t> fields[] = {
      {"dim", c.dim},         {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers},
      {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
      {"seq_len", c.seq_len}};
  for (const auto& [name, value] : fields) {
    if (value == 0 || value > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
      fail(code, context, ": ", name, " ", value, " is not a positive int32");
    }
  }
  if (c.dim % c.n_heads != 0) fail(code, context, ": dim ", c.dim, " is not a multiple of n_heads ", c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0) {
    fail(code, context, ": n_heads ", c.n_heads, " is not a multiple of n_kv_heads ", c.n_kv_heads);
  }
  // Every field is below 2^31, so products of two fit; three or four need checking.
  std::uint64_t total = 0;
  const auto take = [&](std::uint64_t a, std::uint64_t b, std::uint64_t f = 1) {
    const std::uint64_t start = total;
    const auto n = detail::checked_mul(a * b, f);
    const auto end = n ? detail::checked_add(total, *n) : std::nullopt;
    if (!end || *end > (std::numeric_limits<std::uint64_t>::max() - 28) / 4) {
      fail(code, context, ": the sizes (", describe(c), ") overflow 64 bits");
    }
    total = *end;
    return static_cast<std::size_t>(start);
  };
  llama2c_layout l;
  l.token_embedding = take(c.vocab_size, c.dim);
  l.rms_att = take(c.n_layers, c.dim);
  l.wq = take(c.n_layers, c.dim, c.dim);
  l.wk = take(c.n_layers, c.kv_dim(), c.dim);
  l.wv = take(c.n_layers, c.kv_dim(), c.dim);
  l.wo = take(c.n_layers, c.dim, c.dim);
  l.rms_ffn = take(c.n_layers, c.dim);
  l.w1 = take(c.n_layers, c.hidden_dim, c.dim);
  l.w2 = take(c.n_layers, c.dim, c.hidden_dim);
  l.w3 = take(c.n_layers, c.hidden_dim, c.dim);
  l.rms_final = take(c.dim, 1);
  // Two tables of `seq_len * head_size / 2` floats each (C integer division, as run.c skips them).
  l.legacy_rope_count = 2 * (c.seq_len * c.head_size() / 2);
  l.legacy_rope = take(l.legacy_rope_count, 1);
  l.classifier = c.shared_classifier ? l.token_embedding : take(c.vocab_size, c.dim);
  l.float_count = static_cast<std::size_t>(total);
  return l;
}

/// The tensors of one transformer layer. Matrices are row-major `out x in`.
template <class T>
struct llama2c_layer {
  std::span<T> rms_att;  ///< attention RMSNorm weights, dim
  matrix_view<T> wq;     ///< dim x dim
  matrix_view<T> wk;     ///< kv_dim x dim
  matrix_view<T> wv;     ///< kv_dim x dim
  matrix_view<T> wo;     ///< dim x dim
  std::span<T> rms_ffn;  ///< FFN RMSNorm weights, dim
  matrix_view<T> w1;     ///< hidden_dim x dim (gate)
  matrix_view<T> w2;     ///< dim x hidden_dim (down)
  matrix_view<T> w3;     ///< hidden_dim x dim (up)
};

/// Every tensor of a llama2.c model, by name. `T` is `const float` for a
/// mapped checkpoint and `float` for an owned model.
template <class T>
struct llama2c_weights {
  matrix_view<T> token_embedding;  ///< vocab_size x dim
  std::vector<llama2c_layer<T>> layers;
  std::span<T> rms_final;     ///< dim
  std::span<T> legacy_rope;   ///< the two unused RoPE tables as stored (empty when writing: zeros)
  matrix_view<T> classifier;  ///< vocab_size x dim; the embedding's own storage when shared
};

/// Views of a float payload laid out by `make_llama2c_layout(config)`.
template <class T>
llama2c_weights<T> llama2c_views(T* payload, const llama2c_config& c, const llama2c_layout& l) {
  const std::size_t dim = c.dim;
  const std::size_t kv = c.kv_dim();
  const std::size_t hidden = c.hidden_dim;
  const auto mat = [&](std::size_t offset, std::size_t rows, std::size_t cols) {
    return matrix_view<T>(payload + offset, rows, cols, static_cast<std::ptrdiff_t>(cols), 1);
  };
  llama2c_weights<T> w;
  w.token_embedding = mat(l.token_embedding, c.vocab_size, dim);
  w.layers.resize(c.n_layers);
  for (std::size_t i = 0; i < c.n_layers; ++i) {
    llama2c_layer<T>& layer = w.layers[i];
    layer.rms_att = {payload + l.rms_att + i * dim, dim};
    layer.wq = mat(l.wq + i * dim * dim, dim, dim);
    layer.wk = mat(l.wk + i * kv * dim, kv, dim);
    layer.wv = mat(l.wv + i * kv * dim, kv, dim);
    layer.wo = mat(l.wo + i * dim * dim, dim, dim);
    layer.rms_ffn = {payload + l.rms_ffn + i * dim, dim};
    layer.w1 = mat(l.w1 + i * hidden * dim, hidden, dim);
    layer.w2 = mat(l.w2 + i * dim * hidden, dim, hidden);
    layer.w3 = mat(l.w3 + i * hidden * dim, hidden, dim);
  }
  w.rms_final = {payload + l.rms_final, dim};
  w.legacy_rope = {payload + l.legacy_rope, l.legacy_rope_count};
  w.classifier = mat(l.classifier, c.vocab_size, dim);
  return w;
}

/// The seven linear matrices of every layer, named `layers.<i>.<wq|wk|wv|wo|w1|w2|w3>`,
/// in file order: the matrices a quantizer replaces (norms, embedding and classifier excluded).
template <class T>
std::vector<std::pair<std::string, matrix_view<T>>> llama2c_linears(const llama2c_weights<T>& w) {
  std::vector<std::pair<std::string, matrix_view<T>>> out;
  const std::pair<const char*, matrix_view<T> llama2c_layer<T>::*> members[] = {
      {"wq", &llama2c_layer<T>::wq}, {"wk", &llama2c_layer<T>::wk}, {"wv", &llama2c_layer<T>::wv},
      {"wo", &llama2c_layer<T>::wo}, {"w1", &llama2c_layer<T>::w1}, {"w2", &llama2c_layer<T>::w2},
      {"w3", &llama2c_layer<T>::w3}};
  for (const auto& [name, member] : members) {
    for (std::size_t i = 0; i < w.layers.size(); ++i) {
      out.emplace_back("layers." + std::to_string(i) + "." + name, w.layers[i].*member);
    }
  }
  return out;
}

namespace detail {

/// Reads and validates the header of a checkpoint held in `file`: the
/// fields, then the file size, which must be exactly what they imply.
inline std::pair<llama2c_config, llama2c_layout> read_llama2c_header(std::span<const std::byte> file,
                                                                     std::string_view context) {
  if (file.size() < 28)
    fail(errc::corrupt_file, context, ": ", file.size(), " bytes are too few for the 28-byte header");
  // Seven plausible header fields (each below 2^24) hold zero bytes; a header of printable text without one is
  // a text file, named as such rather than by the first field its characters happen to break.
  const auto text_byte = [](std::byte b) {
    const auto c = static_cast<unsigned char>(b);
    return c >= 0x80 || (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\r';
  };
  if (std::all_of(file.begin(), file.begin() + 28, text_byte)) {
    std::string start(reinterpret_cast<const char*>(file.data()), 28);
    for (char& ch : start) ch = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
    fail(errc::corrupt_file, context, ": not a llama2.c checkpoint: the file begins with text (\"", start,
         "...\"), where a checkpoint has seven int32 header fields");
  }
  std::int64_t raw[7];
  for (std::size_t i = 0; i < 7; ++i) raw[i] = load_i32_le(file.data() + 4 * i);
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (std::size_t i = 0; i < 7; ++i) {
    if (raw[i] <= 0 && !(i == 5 && raw[i] < 0)) {
      fail(errc::corrupt_file, context, ": header field ", names[i], " is ", raw[i],
           i == 5 ? " (must be nonzero)" : " (must be positive)");
    }
  }
  llama2c_config c;
  c.dim = static_cast<std::size_t>(raw[0]);
  c.hidden_dim = static_cast<std::size_t>(raw[1]);
  c.n_layers = static_cast<std::size_t>(raw[2]);
  c.n_heads = static_cast<std::size_t>(raw[3]);
  c.n_kv_heads = static_cast<std::size_t>(raw[4]);
  c.shared_classifier = raw[5] > 0;
  c.vocab_size = static_cast<std::size_t>(raw[5] > 0 ? raw[5] : -raw[5]);
  c.seq_len = static_cast<std::size_t>(raw[6]);
  const llama2c_layout l = make_llama2c_layout(c, errc::corrupt_file, context);
  if (file.size() != l.file_size()) {
    fail(errc::corrupt_file, context, ": the header (", describe(c), ") implies ", l.file_size(),
         " bytes, the file has ", file.size());
  }
  return {c, l};
}

}  // namespace detail

/// A llama2.c checkpoint, memory-mapped: the header validated (including the
/// exact file size it implies) and every tensor a view on the mapping.
/// Views need a little-endian host (`[ternq.unsupported]` otherwise;
/// `llama2c_model::load` decodes on any host).
class llama2c_checkpoint {
 public:
  explicit llama2c_checkpoint(const std::filesystem::path& path) : map_(path) {
    const std::string context = "llama2c '" + path.string() + "'";
    std::tie(config_, layout_) = detail::read_llama2c_header(map_.bytes(), context);
    if constexpr (std::endian::native != std::endian::little) {
      fail(errc::unsupported, context, ": in-place views need a little-endian host (llama2c_model::load decodes)");
    }
    // The floats start at byte 28 of a page-aligned mapping: 4-byte aligned.
    payload_ = {reinterpret_cast<const float*>(map_.bytes().data() + 28), layout_.float_count};
    weights_ = llama2c_views(payload_.data(), config_, layout_);
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return map_.path(); }
  [[nodiscard]] const llama2c_config& config() const noexcept { return config_; }
  [[nodiscard]] const llama2c_layout& layout() const noexcept { return layout_; }
  /// Every float after the header, in file order.
  [[nodiscard]] std::span<const float> payload() const noexcept { return payload_; }
  /// Named views on the mapping; valid while this object lives.
  [[nodiscard]] const llama2c_weights<const float>& weights() const noexcept { return weights_; }

 private:
  mapped_file map_;
  llama2c_config config_;
  llama2c_layout layout_;
  std::span<const float> payload_;
  llama2c_weights<const float> weights_;
};

}  // namespace ternq::io
