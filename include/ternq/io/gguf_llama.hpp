// SPDX-License-Identifier: MIT
// llama-architecture GGUF metadata and tokenizer keys with the exact types llama.cpp checks, and the tensor layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/io/gguf_types.hpp"
#include "ternq/pack/ggml_types.hpp"

namespace ternq::io {

/// `general.file_type` values (llama.cpp's `llama_ftype`, include/llama.h).
/// Mainline llama.cpp defines the first seven; it defines none for the
/// forks' types, whose values are those of the engine that reads them
/// (docs/formats.md): the PrismML fork's llama.h for PQ2_0 and PTQ1_0,
/// bitnet.cpp's for I2_S. The value is informational: llama.cpp prints it
/// as the model's type, and loads tensors by their own type ids.
namespace llama_file_type {
inline constexpr std::uint32_t all_f32 = 0;
inline constexpr std::uint32_t mostly_f16 = 1;
inline constexpr std::uint32_t mostly_q8_0 = 7;
inline constexpr std::uint32_t mostly_bf16 = 32;
inline constexpr std::uint32_t mostly_tq1_0 = 36;
inline constexpr std::uint32_t mostly_tq2_0 = 37;
inline constexpr std::uint32_t mostly_q2_0 = 41;     ///< mainline, since July 2026
inline constexpr std::uint32_t mostly_i2_s = 40;     ///< bitnet.cpp (mainline's 40 is Q1_0)
inline constexpr std::uint32_t mostly_pq2_0 = 141;   ///< PrismML fork
inline constexpr std::uint32_t mostly_ptq1_0 = 143;  ///< PrismML fork
}  // namespace llama_file_type

/// The `general.file_type` of a file whose (linear-layer) tensors are mostly of type `t`.
constexpr std::uint32_t file_type_of(pack::ggml_type t) noexcept {
  switch (t) {
    case pack::ggml_type::f32:
      return llama_file_type::all_f32;
    case pack::ggml_type::f16:
      return llama_file_type::mostly_f16;
    case pack::ggml_type::q8_0:
      return llama_file_type::mostly_q8_0;
    case pack::ggml_type::bf16:
      return llama_file_type::mostly_bf16;
    case pack::ggml_type::tq1_0:
      return llama_file_type::mostly_tq1_0;
    case pack::ggml_type::tq2_0:
      return llama_file_type::mostly_tq2_0;
    case pack::ggml_type::q2_0:
      return llama_file_type::mostly_q2_0;
    case pack::ggml_type::i2_s:
      return llama_file_type::mostly_i2_s;
    case pack::ggml_type::pq2_0:
      return llama_file_type::mostly_pq2_0;
    case pack::ggml_type::ptq1_0:
      return llama_file_type::mostly_ptq1_0;
  }
  return llama_file_type::all_f32;
}

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`, include/llama.h).
namespace token_type {
inline constexpr std::int32_t undefined = 0;
inline constexpr std::int32_t normal = 1;
inline constexpr std::int32_t unknown = 2;
inline constexpr std::int32_t control = 3;
inline constexpr std::int32_t user_defined = 4;
inline constexpr std::int32_t unused = 5;
inline constexpr std::int32_t byte = 6;
}  // namespace token_type

/// Hyperparameters of a Llama-family model.
struct llama_hparams {
  std::string architecture = "llama";     ///< `general.architecture` and the prefix of the keys: llama, qwen2, qwen3
  std::uint32_t vocab_size = 0;           ///< written as `llama.vocab_size` (what a `no_vocab` model is sized by)
  std::uint32_t context_length = 0;       ///< `llama.context_length`
  std::uint32_t embedding_length = 0;     ///< `llama.embedding_length` (n_embd)
  std::uint32_t block_count = 0;          ///< `llama.block_count` (layers)
  std::uint32_t feed_forward_length = 0;  ///< `llama.feed_forward_length` (n_ff)
  std::uint32_t head_count = 0;           ///< `llama.attention.head_count`
  std::optional<std::uint32_t> head_count_kv{};         ///< `llama.attention.head_count_kv` (grouped-query attention)
  float rms_norm_eps = 1e-5F;                           ///< `llama.attention.layer_norm_rms_epsilon`
  float rope_freq_base = 10000.0F;                      ///< `llama.rope.freq_base`
  std::optional<std::uint32_t> rope_dimension_count{};  ///< `llama.rope.dimension_count`; default: the head dimension
  /// `llama.attention.key_length` and `value_length`: the head width, when it is not `embedding_length /
  /// head_count` (Qwen3)
  std::optional<std::uint32_t> head_width{};

  /// `head_width`, else `embedding_length / head_count`.
  [[nodiscard]] std::uint32_t head_dim() const noexcept {
    return head_width ? *head_width : head_count == 0 ? 0 : embedding_length / head_count;
  }
  /// Rows of `attn_q`: `head_dim * head_count`.
  [[nodiscard]] std::uint32_t q_dim() const noexcept { return head_dim() * head_count; }
  /// Rows of `attn_k` / `attn_v`: `head_dim * head_count_kv`.
  [[nodiscard]] std::uint32_t kv_dim() const noexcept { return head_dim() * head_count_kv.value_or(head_count); }
};

/// A tokenizer's vocabulary, written as the `tokenizer.ggml.*` keys.
struct llama_vocab {
  /// `"llama"` (SentencePiece-style, pieces merged by score), `"gpt2"` (byte-level BPE, pieces merged by rank)
  /// or `"no_vocab"` (synthetic models)
  std::string model = "llama";
  std::vector<std::string> tokens{};        ///< `tokenizer.ggml.tokens`; may be empty for `no_vocab`
  std::vector<float> scores{};              ///< `tokenizer.ggml.scores`; empty: not written
  std::vector<std::int32_t> token_types{};  ///< `tokenizer.ggml.token_type` (see `token_type`)
  /// `tokenizer.ggml.merges` ("left right", best first): what a "gpt2" vocabulary merges by
  std::vector<std::string> merges{};
  /// `tokenizer.ggml.pre`: the name of a "gpt2" vocabulary's pre-tokenizer ("llama-bpe", "qwen2", ...), by
  /// which llama.cpp picks its splitting regexes; empty: not written
  std::string pre{};
  std::optional<std::uint32_t> bos_id{};  ///< `tokenizer.ggml.bos_token_id`
  std::optional<std::uint32_t> eos_id{};  ///< `tokenizer.ggml.eos_token_id`
  std::optional<std::uint32_t> unk_id{};  ///< `tokenizer.ggml.unknown_token_id`
  std::optional<std::uint32_t> pad_id{};  ///< `tokenizer.ggml.padding_token_id`
  std::optional<bool> add_bos{};          ///< `tokenizer.ggml.add_bos_token`; absent: llama.cpp's default
  /// `tokenizer.ggml.add_space_prefix`: whether a "llama" vocabulary puts U+2581 before the text
  /// (SentencePiece's dummy prefix); absent: llama.cpp's default (yes)
  std::optional<bool> add_space_prefix{};
};

/// Adds the model keys (FORMATS.md): `general.architecture` (llama, qwen2 or qwen3)
/// as the first pair, then `general.name` (when given), the `<architecture>.*` keys
/// (counts and lengths UINT32, epsilon and RoPE base FLOAT32; key/value lengths when the head width is not
/// `embedding_length / head_count`),
/// `general.file_type` and `general.quantization_version = 2` (UINT32).
/// Throws `invalid_argument` (adding nothing) for a zero count, a head count
/// that does not divide the embedding or the KV head count, or a key that is
/// already present.
inline void add_llama_metadata(gguf_metadata& md, const llama_hparams& hp, std::uint32_t file_type,
                               std::string_view name = {}) {
  const auto require = [](bool ok, const auto&... what) {
    if (!ok) fail(errc::invalid_argument, "add_llama_metadata: ", what...);
  };
  require(hp.vocab_size > 0 && hp.context_length > 0 && hp.embedding_length > 0 && hp.block_count > 0 &&
              hp.feed_forward_length > 0 && hp.head_count > 0,
          "vocab_size, context_length, embedding_length, block_count, feed_forward_length and head_count must be "
          "positive");
  require(hp.architecture == "llama" || hp.architecture == "qwen2" || hp.architecture == "qwen3", "architecture '",
          hp.architecture, "' is not one of llama, qwen2, qwen3");
  require(hp.head_width ? *hp.head_width > 0 && *hp.head_width % 2 == 0 : hp.embedding_length % hp.head_count == 0,
          "head_count ", hp.head_count, " does not divide embedding_length ", hp.embedding_length,
          " (or the head width is zero or odd)");
  const std::uint32_t kv = hp.head_count_kv.value_or(hp.head_count);
  require(kv > 0 && hp.head_count % kv == 0, "head_count_kv ", kv, " does not divide head_count ", hp.head_count);
  require(hp.rms_norm_eps > 0.0F, "rms_norm_eps must be positive");

  std::vector<gguf_kv> keys;
  const auto key = [&](const char* k) { return hp.architecture + "." + k; };
  if (!name.empty()) keys.push_back({"general.name", std::string(name)});
  keys.push_back({key("vocab_size"), hp.vocab_size});
  keys.push_back({key("context_length"), hp.context_length});
  keys.push_back({key("embedding_length"), hp.embedding_length});
  keys.push_back({key("block_count"), hp.block_count});
  keys.push_back({key("feed_forward_length"), hp.feed_forward_length});
  keys.push_back({key("rope.dimension_count"), hp.rope_dimension_count.value_or(hp.head_dim())});
  keys.push_back({key("attention.head_count"), hp.head_count});
  if (hp.head_count_kv) keys.push_back({key("attention.head_count_kv"), *hp.head_count_kv});
  if (hp.head_width) {
    keys.push_back({key("attention.key_length"), *hp.head_width});
    keys.push_back({key("attention.value_length"), *hp.head_width});
  }
  keys.push_back({key("attention.layer_norm_rms_epsilon"), hp.rms_norm_eps});
  keys.push_back({key("rope.freq_base"), hp.rope_freq_base});
  keys.push_back({"general.file_type", file_type});
  keys.push_back({"general.quantization_version", std::uint32_t{2}});
  require(!md.contains("general.architecture"), "general.architecture is already set");
  for (const auto& kv : keys) require(!md.contains(kv.key), kv.key, " is already set");
  md.insert(0, "general.architecture", hp.architecture);
  for (auto& kv : keys) md.add(std::move(kv.key), std::move(kv.value));
}

/// Adds the `tokenizer.ggml.*` keys. `tokens` (when given) must number
/// `vocab_size`; `scores` and `token_types` (when given) match `tokens`;
/// special ids must be below `vocab_size`; a "gpt2" vocabulary needs its
/// merges and only it has them. Throws `invalid_argument` (adding nothing),
/// also when a key is already present.
inline void add_llama_tokenizer(gguf_metadata& md, const llama_vocab& v, std::uint32_t vocab_size) {
  const auto require = [](bool ok, const auto&... what) {
    if (!ok) fail(errc::invalid_argument, "add_llama_tokenizer: ", what...);
  };
  require(v.model == "llama" || v.model == "gpt2" || v.model == "no_vocab", "tokenizer model '", v.model,
          "' is not supported (\"llama\", \"gpt2\" or \"no_vocab\")");
  require(v.model == "no_vocab" || !v.tokens.empty(), "a \"", v.model, "\" tokenizer needs its tokens");
  require(v.tokens.empty() || v.tokens.size() == vocab_size, v.tokens.size(), " tokens for a vocabulary of ",
          vocab_size);
  require(v.scores.empty() || v.scores.size() == v.tokens.size(), v.scores.size(), " scores for ", v.tokens.size(),
          " tokens");
  require(v.token_types.empty() || v.token_types.size() == v.tokens.size(), v.token_types.size(), " token types for ",
          v.tokens.size(), " tokens");
  require((v.model == "gpt2") == !v.merges.empty(),
          v.model == "gpt2" ? "a \"gpt2\" tokenizer needs its merges" : "only a \"gpt2\" tokenizer has merges");
  for (const auto& id : {v.bos_id, v.eos_id, v.unk_id, v.pad_id}) {
    require(!id || *id < vocab_size, "special token id ", id.value_or(0), " is outside the vocabulary of ", vocab_size);
  }
  std::vector<gguf_kv> keys;
  keys.push_back({"tokenizer.ggml.model", v.model});
  if (!v.pre.empty()) keys.push_back({"tokenizer.ggml.pre", v.pre});
  if (!v.tokens.empty()) keys.push_back({"tokenizer.ggml.tokens", gguf_array(v.tokens)});
  if (!v.scores.empty()) keys.push_back({"tokenizer.ggml.scores", gguf_array(v.scores)});
  if (!v.token_types.empty()) keys.push_back({"tokenizer.ggml.token_type", gguf_array(v.token_types)});
  if (!v.merges.empty()) keys.push_back({"tokenizer.ggml.merges", gguf_array(v.merges)});
  if (v.bos_id) keys.push_back({"tokenizer.ggml.bos_token_id", *v.bos_id});
  if (v.eos_id) keys.push_back({"tokenizer.ggml.eos_token_id", *v.eos_id});
  if (v.unk_id) keys.push_back({"tokenizer.ggml.unknown_token_id", *v.unk_id});
  if (v.pad_id) keys.push_back({"tokenizer.ggml.padding_token_id", *v.pad_id});
  if (v.add_bos) keys.push_back({"tokenizer.ggml.add_bos_token", *v.add_bos});
  if (v.add_space_prefix) keys.push_back({"tokenizer.ggml.add_space_prefix", *v.add_space_prefix});
  for (const auto& kv : keys) require(!md.contains(kv.key), kv.key, " is already set");
  for (auto& kv : keys) md.add(std::move(kv.key), std::move(kv.value));
}

/// `v` grown to `vocab_size` tokens, as llama.cpp's converters pad a model whose embedding has more rows than its
/// tokenizer has tokens (Qwen2's 151936 rows for 151665 tokens): the extra ids are `[PAD<id>]`, type unused,
/// score 0. A vocabulary already that size, or without tokens (`no_vocab`), is returned as it is; a larger one is
/// `invalid_argument`.
inline llama_vocab padded_vocab(llama_vocab v, std::uint32_t vocab_size) {
  if (v.tokens.empty()) return v;
  if (v.tokens.size() > vocab_size) {
    fail(errc::invalid_argument, "the tokenizer has ", v.tokens.size(), " tokens, more than the model's vocabulary of ",
         vocab_size);
  }
  for (std::size_t id = v.tokens.size(); id < vocab_size; ++id) {
    v.tokens.push_back(ternq::detail::concat("[PAD", id, "]"));
    if (!v.scores.empty()) v.scores.push_back(0.0F);
    if (!v.token_types.empty()) v.token_types.push_back(token_type::unused);
  }
  return v;
}

/// One tensor of a llama model: its GGUF name and extents (`ne[0]` innermost).
struct llama_tensor {
  std::string name;
  std::vector<std::int64_t> ne;
  bool is_norm = false;  ///< a vector (norm, bias or RoPE factors; stored F32)
};

/// Exactly the tensors llama.cpp loads for `hp`, in the order ternq writes
/// them: `token_embd.weight [n_embd, n_vocab]`, `output_norm.weight`,
/// `output.weight [n_embd, n_vocab]` (omitted when `tied_output`: the
/// embedding is reused), `rope_freqs.weight [head_dim/2]` when `rope_factors`, then per layer `attn_norm`,
/// `attn_q [n_embd, q_dim]`, `attn_k` and `attn_v [n_embd, kv_dim]` (each followed by its bias for qwen2),
/// `attn_output [q_dim, n_embd]`, `attn_q_norm` and `attn_k_norm [head_dim]` (qwen3), `ffn_norm`, `ffn_gate`
/// and `ffn_up [n_embd, n_ff]`, `ffn_down [n_ff, n_embd]`.
inline std::vector<llama_tensor> llama_tensors(const llama_hparams& hp, bool tied_output, bool rope_factors = false) {
  const std::int64_t embd = hp.embedding_length;
  const std::int64_t q = hp.q_dim();
  const std::int64_t hd = hp.head_dim();
  const bool bias = hp.architecture == "qwen2", qk_norm = hp.architecture == "qwen3";
  const std::int64_t vocab = hp.vocab_size;
  const std::int64_t ff = hp.feed_forward_length;
  const std::int64_t kv = hp.kv_dim();
  std::vector<llama_tensor> out;
  out.push_back({"token_embd.weight", {embd, vocab}, false});
  out.push_back({"output_norm.weight", {embd}, true});
  if (!tied_output) out.push_back({"output.weight", {embd, vocab}, false});
  if (rope_factors) out.push_back({"rope_freqs.weight", {hd / 2}, true});
  for (std::uint32_t l = 0; l < hp.block_count; ++l) {
    const std::string p = ternq::detail::concat("blk.", l, ".");
    out.push_back({p + "attn_norm.weight", {embd}, true});
    out.push_back({p + "attn_q.weight", {embd, q}, false});
    if (bias) out.push_back({p + "attn_q.bias", {q}, true});
    out.push_back({p + "attn_k.weight", {embd, kv}, false});
    if (bias) out.push_back({p + "attn_k.bias", {kv}, true});
    out.push_back({p + "attn_v.weight", {embd, kv}, false});
    if (bias) out.push_back({p + "attn_v.bias", {kv}, true});
    out.push_back({p + "attn_output.weight", {q, embd}, false});
    if (qk_norm) {
      out.push_back({p + "attn_q_norm.weight", {hd}, true});
      out.push_back({p + "attn_k_norm.weight", {hd}, true});
    }
    out.push_back({p + "ffn_norm.weight", {embd}, true});
    out.push_back({p + "ffn_gate.weight", {embd, ff}, false});
    out.push_back({p + "ffn_up.weight", {embd, ff}, false});
    out.push_back({p + "ffn_down.weight", {ff, embd}, false});
  }
  return out;
}

}  // namespace ternq::io
