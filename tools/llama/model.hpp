// SPDX-License-Identifier: MIT
// A Llama-family model held in memory: configuration and weights (row-major Eigen matrices).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
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

/// The decoder-block variants ternq runs. Mistral is the Llama block (llama.cpp stores it as "llama").
enum class family {
  llama,  ///< Llama 1/2/3, Mistral: plain attention, optional Llama-3 RoPE frequency factors
  qwen2,  ///< Qwen2/2.5: biases on q, k and v
  qwen3,  ///< Qwen3: RMSNorm per head on q and k (before RoPE), explicit head width
};

/// The GGUF `general.architecture` of `f` (also the prefix of its hyperparameter keys).
constexpr std::string_view gguf_architecture(family f) noexcept {
  switch (f) {
    case family::llama:
      return "llama";
    case family::qwen2:
      return "qwen2";
    case family::qwen3:
      return "qwen3";
  }
  return "llama";
}

struct config {
  family arch = family::llama;
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
  /// Divisors of the RoPE frequencies, one per rotated pair (Llama-3's scaling, GGUF's `rope_freqs.weight`);
  /// empty: none.
  std::vector<float> rope_factors{};
  std::size_t head_width = 0;      ///< width of an attention head; 0: `dim / n_heads`
  std::size_t sliding_window = 0;  ///< Mistral's attention window; 0: none (sequences longer are refused)

  [[nodiscard]] std::size_t head_dim() const noexcept { return head_width != 0 ? head_width : dim / n_heads; }
  /// Rows of `attn_q` (and columns of `attn_output`): `head_dim * n_heads`.
  [[nodiscard]] std::size_t q_dim() const noexcept { return head_dim() * n_heads; }
  [[nodiscard]] std::size_t kv_dim() const noexcept { return head_dim() * n_kv_heads; }
};

/// The seven linear layers of a transformer block.
enum class linear { q, k, v, o, gate, up, down };
inline constexpr std::array<linear, 7> all_linears = {linear::q,    linear::k,  linear::v,   linear::o,
                                                      linear::gate, linear::up, linear::down};

/// The shape of linear layer `l` of a block of `cfg`: `{rows (out), cols (in)}`.
inline std::array<std::size_t, 2> linear_shape(const config& cfg, linear l) noexcept {
  switch (l) {
    case linear::q:
      return {cfg.q_dim(), cfg.dim};
    case linear::k:
    case linear::v:
      return {cfg.kv_dim(), cfg.dim};
    case linear::o:
      return {cfg.dim, cfg.q_dim()};
    case linear::gate:
    case linear::up:
      return {cfg.hidden_dim, cfg.dim};
    case linear::down:
      return {cfg.dim, cfg.hidden_dim};
  }
  return {0, 0};
}

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

/// The vectors of a transformer block: the two RMSNorm weights every family has, the q/k/v biases (Qwen2) and
/// the per-head q/k RMSNorm weights (Qwen3).
enum class block_vector { attn_norm, ffn_norm, q_bias, k_bias, v_bias, q_norm, k_norm };
inline constexpr std::array<block_vector, 7> all_block_vectors = {
    block_vector::attn_norm, block_vector::ffn_norm, block_vector::q_bias, block_vector::k_bias,
    block_vector::v_bias,    block_vector::q_norm,   block_vector::k_norm};

/// The GGUF name of a block vector ("blk.3.attn_q.bias"), as llama.cpp's converter writes it.
inline std::string gguf_name(std::size_t layer_index, block_vector v) {
  static constexpr const char* names[] = {"attn_norm.weight", "ffn_norm.weight",    "attn_q.bias",       "attn_k.bias",
                                          "attn_v.bias",      "attn_q_norm.weight", "attn_k_norm.weight"};
  return "blk." + std::to_string(layer_index) + "." + names[static_cast<std::size_t>(v)];
}

/// The length of vector `v` of a block of `cfg`.
inline std::size_t vector_length(const config& cfg, block_vector v) noexcept {
  switch (v) {
    case block_vector::attn_norm:
    case block_vector::ffn_norm:
      return cfg.dim;
    case block_vector::q_bias:
      return cfg.q_dim();
    case block_vector::k_bias:
    case block_vector::v_bias:
      return cfg.kv_dim();
    case block_vector::q_norm:
    case block_vector::k_norm:
      return cfg.head_dim();
  }
  return 0;
}

/// The Hugging Face name of a block vector, after "model.layers.N.".
constexpr std::string_view hf_suffix(block_vector v) noexcept {
  constexpr std::array<std::string_view, 7> names = {
      "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.bias",  "self_attn.k_proj.bias",
      "self_attn.v_proj.bias",  "self_attn.q_norm.weight",         "self_attn.k_norm.weight"};
  return names[static_cast<std::size_t>(v)];
}

/// Whether a block of family `f` holds vector `v`.
constexpr bool has_vector(family f, block_vector v) noexcept {
  switch (v) {
    case block_vector::attn_norm:
    case block_vector::ffn_norm:
      return true;
    case block_vector::q_bias:
    case block_vector::k_bias:
    case block_vector::v_bias:
      return f == family::qwen2;
    case block_vector::q_norm:
    case block_vector::k_norm:
      return f == family::qwen3;
  }
  return false;
}

/// A tensor of a block: a linear layer or a vector.
using block_tensor = std::variant<linear, block_vector>;

/// The order in which a block's tensors are stored (GGUF, checkpoints): the attention norm, q, k and v (each
/// followed by its bias), o, the q/k norms, the FFN norm, gate, up and down. A family stores those it has
/// (`has_vector`).
inline constexpr std::array<block_tensor, 14> block_tensor_order = {block_vector::attn_norm,
                                                                    linear::q,
                                                                    block_vector::q_bias,
                                                                    linear::k,
                                                                    block_vector::k_bias,
                                                                    linear::v,
                                                                    block_vector::v_bias,
                                                                    linear::o,
                                                                    block_vector::q_norm,
                                                                    block_vector::k_norm,
                                                                    block_vector::ffn_norm,
                                                                    linear::gate,
                                                                    linear::up,
                                                                    linear::down};

/// The GGUF name of a block tensor.
inline std::string gguf_name(std::size_t layer_index, block_tensor t) {
  return std::visit([&](auto which) { return gguf_name(layer_index, which); }, t);
}

/// Whether a block of family `f` holds tensor `t`.
inline bool has_tensor(family f, block_tensor t) {
  return std::holds_alternative<linear>(t) || has_vector(f, std::get<block_vector>(t));
}

/// The Hugging Face name of a linear layer's weight, after "model.layers.N.".
constexpr std::string_view hf_suffix(linear l) noexcept {
  constexpr std::array<std::string_view, 7> names = {
      "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
      "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};
  return names[static_cast<std::size_t>(l)];
}

/// The Hugging Face name of a block tensor ("model.layers.3.mlp.up_proj.weight").
inline std::string hf_name(std::size_t layer_index, block_tensor t) {
  return "model.layers." + std::to_string(layer_index) + "." +
         std::string(std::visit([](auto which) { return hf_suffix(which); }, t));
}

/// A transformer block's tensors, its seven linear weights of type `Weight`: dense `matrix` (`layer`), or a
/// weight that may stay packed (`packed_layer`, packed_model.hpp). The forward pass is written once for both.
template <class Weight>
struct basic_layer {
  Weight wq, wk, wv, wo;  ///< q_dim x dim, kv_dim x dim, kv_dim x dim, dim x q_dim
  Weight w1, w2, w3;      ///< gate hidden x dim, down dim x hidden, up hidden x dim
  vector attn_norm, ffn_norm;
  vector bq, bk, bv;      ///< q/k/v biases (Qwen2; empty otherwise), in the rows' order
  vector q_norm, k_norm;  ///< per-head RMSNorm weights of q and k, head_dim each (Qwen3; empty otherwise)

  [[nodiscard]] vector& values(block_vector v) noexcept {
    switch (v) {
      case block_vector::attn_norm:
        return attn_norm;
      case block_vector::ffn_norm:
        return ffn_norm;
      case block_vector::q_bias:
        return bq;
      case block_vector::k_bias:
        return bk;
      case block_vector::v_bias:
        return bv;
      case block_vector::q_norm:
        return q_norm;
      case block_vector::k_norm:
        return k_norm;
    }
    return attn_norm;
  }
  [[nodiscard]] const vector& values(block_vector v) const noexcept {
    return const_cast<basic_layer*>(this)->values(v);
  }

  [[nodiscard]] Weight& weight(linear l) noexcept {
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
  [[nodiscard]] const Weight& weight(linear l) const noexcept { return const_cast<basic_layer*>(this)->weight(l); }
};

/// A block with dense fp32 weights.
using layer = basic_layer<matrix>;

struct model {
  config cfg;
  matrix embedding;                  ///< vocab x dim
  vector final_norm;                 ///< dim
  std::optional<matrix> classifier;  ///< vocab x dim; absent: tied to the embedding
  std::vector<layer> layers;

  [[nodiscard]] const matrix& output() const noexcept { return classifier ? *classifier : embedding; }
};

}  // namespace ternq::llama
