// SPDX-License-Identifier: MIT
// A Llama-family model held in memory: configuration and weights (row-major Eigen matrices).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

namespace ternq::llama {

/// Row-major float matrix: `out x in` for weights, `tokens x features` for activations.
using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using vector = Eigen::VectorXf;

/// How rotary embeddings pair the dimensions of a head.
enum class rope_style {
  interleaved,  ///< pairs (2i, 2i+1): llama2.c and GGUF
  rotate_half,  ///< pairs (i, i + head_dim/2): Hugging Face checkpoints
};

struct config {
  std::size_t dim = 0;
  std::size_t hidden_dim = 0;
  std::size_t n_layers = 0;
  std::size_t n_heads = 0;
  std::size_t n_kv_heads = 0;
  std::size_t vocab_size = 0;
  std::size_t seq_len = 0;
  float norm_eps = 1e-5F;
  float rope_theta = 10000.0F;
  rope_style rope = rope_style::interleaved;

  [[nodiscard]] std::size_t head_dim() const noexcept { return dim / n_heads; }
  [[nodiscard]] std::size_t kv_dim() const noexcept { return head_dim() * n_kv_heads; }
};

/// The seven linear layers of a transformer block.
enum class linear { q, k, v, o, gate, up, down };
inline constexpr std::array<linear, 7> all_linears = {linear::q,    linear::k,  linear::v,   linear::o,
                                                      linear::gate, linear::up, linear::down};

/// Short name (`q`, `gate`, ...), as reports print it.
constexpr std::string_view linear_name(linear l) noexcept {
  constexpr std::array<std::string_view, 7> names = {"q", "k", "v", "o", "gate", "up", "down"};
  return names[static_cast<std::size_t>(l)];
}

/// The GGUF name of a linear layer's weight ("blk.3.attn_q.weight").
inline std::string gguf_name(std::size_t layer_index, linear l) {
  static constexpr const char* names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                          "ffn_gate", "ffn_up", "ffn_down"};
  return "blk." + std::to_string(layer_index) + "." + names[static_cast<std::size_t>(l)] + ".weight";
}

/// The GGUF names of a block's two RMSNorm weights.
inline std::string gguf_attn_norm_name(std::size_t layer_index) {
  return "blk." + std::to_string(layer_index) + ".attn_norm.weight";
}
inline std::string gguf_ffn_norm_name(std::size_t layer_index) {
  return "blk." + std::to_string(layer_index) + ".ffn_norm.weight";
}

struct layer {
  matrix wq, wk, wv, wo;  ///< dim x dim, kv_dim x dim, kv_dim x dim, dim x dim
  matrix w1, w2, w3;      ///< gate hidden x dim, down dim x hidden, up hidden x dim
  vector attn_norm, ffn_norm;

  [[nodiscard]] matrix& weight(linear l) noexcept {
    switch (l) {
      case linear::q:
        return wq;
      case linear::k:
        return wk;
      case linear::v:
        return wv;
      case linear::o:
        return wo;
      case linear::gate:
        return w1;
      case linear::up:
        return w3;
      case linear::down:
        return w2;
    }
    return wq;
  }
  [[nodiscard]] const matrix& weight(linear l) const noexcept { return const_cast<layer*>(this)->weight(l); }
};

struct model {
  config cfg;
  matrix embedding;                  ///< vocab x dim
  vector final_norm;                 ///< dim
  std::optional<matrix> classifier;  ///< vocab x dim; absent: tied to the embedding
  std::vector<layer> layers;

  [[nodiscard]] const matrix& output() const noexcept { return classifier ? *classifier : embedding; }
};

}  // namespace ternq::llama
