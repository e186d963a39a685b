// SPDX-License-Identifier: MIT
// Hugging Face Llama models: config.json, the expected tensor names and shapes, and a validated model directory.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/io/detail/json.hpp"
#include "ternq/io/mapped_file.hpp"
#include "ternq/io/safetensors_reader.hpp"
#include "ternq/io/safetensors_shards.hpp"

namespace ternq::io {

/// The fields of a Llama `config.json` that fix the tensors and the forward
/// pass. Optional fields take transformers' `LlamaConfig` defaults.
struct hf_llama_config {
  std::size_t hidden_size = 0;
  std::size_t intermediate_size = 0;
  std::size_t num_hidden_layers = 0;
  std::size_t num_attention_heads = 0;
  std::size_t num_key_value_heads = 0;  ///< default: num_attention_heads
  std::size_t vocab_size = 0;
  std::size_t max_position_embeddings = 2048;  ///< default 2048
  double rms_norm_eps = 1e-6;                  ///< default 1e-6
  double rope_theta = 10000.0;                 ///< default 10000
  bool tie_word_embeddings = false;            ///< default false: lm_head.weight is its own tensor
  std::string model_type;                      ///< as written ("llama"), empty when absent

  [[nodiscard]] std::size_t head_dim() const noexcept { return hidden_size / num_attention_heads; }
  [[nodiscard]] std::size_t kv_dim() const noexcept { return head_dim() * num_key_value_heads; }
};

namespace detail {

inline std::optional<std::size_t> positive_field(const nlohmann::json& j, const char* key, std::string_view context,
                                                 bool required) {
  const auto it = j.find(key);
  if (it == j.end() || (it->is_null() && !required)) {
    if (required) fail(errc::corrupt_file, context, ": '", key, "' is missing");
    return std::nullopt;
  }
  if (!it->is_number_unsigned() || it->get<std::size_t>() == 0) {
    fail(errc::corrupt_file, context, ": '", key, "' is ", json_excerpt(*it), ", not a positive integer");
  }
  return it->get<std::size_t>();
}

inline std::optional<double> positive_number(const nlohmann::json& j, const char* key, std::string_view context) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number() || !(it->get<double>() > 0)) {
    fail(errc::corrupt_file, context, ": '", key, "' is ", json_excerpt(*it), ", not a positive number");
  }
  return it->get<double>();
}

}  // namespace detail

/// Parses the text of a Llama `config.json`; `context` prefixes messages.
/// Missing or non-positive required fields, heads not dividing the hidden
/// size, or query heads not a multiple of key/value heads are
/// `[ternq.corrupt_file]`; a `head_dim` other than `hidden_size /
/// num_attention_heads` is `[ternq.unsupported]`.
inline hf_llama_config parse_hf_llama_config(std::string_view text, std::string_view context) {
  const nlohmann::json j = detail::parse_json(text, context);
  if (!j.is_object()) fail(errc::corrupt_file, context, ": the config is a JSON ", j.type_name(), ", not an object");
  hf_llama_config c;
  c.hidden_size = *detail::positive_field(j, "hidden_size", context, true);
  c.intermediate_size = *detail::positive_field(j, "intermediate_size", context, true);
  c.num_hidden_layers = *detail::positive_field(j, "num_hidden_layers", context, true);
  c.num_attention_heads = *detail::positive_field(j, "num_attention_heads", context, true);
  c.num_key_value_heads =
      detail::positive_field(j, "num_key_value_heads", context, false).value_or(c.num_attention_heads);
  c.vocab_size = *detail::positive_field(j, "vocab_size", context, true);
  c.max_position_embeddings =
      detail::positive_field(j, "max_position_embeddings", context, false).value_or(c.max_position_embeddings);
  c.rms_norm_eps = detail::positive_number(j, "rms_norm_eps", context).value_or(c.rms_norm_eps);
  c.rope_theta = detail::positive_number(j, "rope_theta", context).value_or(c.rope_theta);
  if (const auto it = j.find("tie_word_embeddings"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean())
      fail(errc::corrupt_file, context, ": 'tie_word_embeddings' is ", detail::json_excerpt(*it), ", not a boolean");
    c.tie_word_embeddings = it->get<bool>();
  }
  if (const auto it = j.find("model_type"); it != j.end() && it->is_string()) c.model_type = it->get<std::string>();
  if (c.hidden_size % c.num_attention_heads != 0) {
    fail(errc::corrupt_file, context, ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
         c.num_attention_heads);
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    fail(errc::corrupt_file, context, ": num_attention_heads ", c.num_attention_heads,
         " is not a multiple of num_key_value_heads ", c.num_key_value_heads);
  }
  if (const auto head_dim = detail::positive_field(j, "head_dim", context, false);
      head_dim && *head_dim != c.head_dim()) {
    fail(errc::unsupported, context, ": head_dim ", *head_dim,
         " differs from hidden_size / num_attention_heads = ", c.head_dim());
  }
  return c;
}

/// Reads and parses a `config.json` file.
inline hf_llama_config read_hf_llama_config(const std::filesystem::path& path) {
  const mapped_file map(path);
  return parse_hf_llama_config(std::string_view(reinterpret_cast<const char*>(map.bytes().data()), map.size()),
                               "config '" + path.string() + "'");
}

/// What a tensor is for: the quantizers replace `linear` ones.
enum class hf_tensor_role { embedding, norm, linear, classifier };

/// A tensor a Llama model must (or, for a tied `lm_head.weight`, may) hold.
struct hf_tensor_spec {
  std::string name;
  std::vector<std::size_t> shape;  ///< `out x in` for matrices
  hf_tensor_role role = hf_tensor_role::linear;
  bool required = true;
};

/// Every tensor of a Llama model of `c`, in the order transformers names
/// them: the embedding, per layer the two norms and seven projections, the
/// final norm, and `lm_head.weight` (optional when embeddings are tied).
inline std::vector<hf_tensor_spec> hf_llama_tensors(const hf_llama_config& c) {
  const std::size_t h = c.hidden_size;
  const std::size_t q = c.num_attention_heads * c.head_dim();
  const std::size_t kv = c.kv_dim();
  const std::size_t ff = c.intermediate_size;
  std::vector<hf_tensor_spec> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, hf_tensor_role::embedding});
  for (std::size_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out.push_back({p + "input_layernorm.weight", {h}, hf_tensor_role::norm});
    out.push_back({p + "self_attn.q_proj.weight", {q, h}});
    out.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    out.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    out.push_back({p + "self_attn.o_proj.weight", {h, q}});
    out.push_back({p + "post_attention_layernorm.weight", {h}, hf_tensor_role::norm});
    out.push_back({p + "mlp.gate_proj.weight", {ff, h}});
    out.push_back({p + "mlp.up_proj.weight", {ff, h}});
    out.push_back({p + "mlp.down_proj.weight", {h, ff}});
  }
  out.push_back({"model.norm.weight", {h}, hf_tensor_role::norm});
  out.push_back({"lm_head.weight", {c.vocab_size, h}, hf_tensor_role::classifier, !c.tie_word_embeddings});
  return out;
}

/// A Hugging Face Llama model directory: `config.json` plus
/// `model.safetensors` or an indexed set of shards. Opening validates every
/// tensor the config implies: present (`[ternq.corrupt_file]` naming the
/// first one missing), F32/F16/BF16 (`[ternq.unsupported]`), and of the
/// implied shape (`[ternq.shape_mismatch]`). Other tensors are ignored.
class hf_llama_model {
 public:
  explicit hf_llama_model(const std::filesystem::path& directory)
      : config_(read_hf_llama_config(directory / "config.json")),
        tensors_(directory),
        specs_(bounded_specs(config_, tensors_, "hf_llama '" + directory.string() + "'")) {
    const std::string context = "hf_llama '" + directory.string() + "'";
    for (const hf_tensor_spec& s : specs_) {
      const tensor_info* t = tensors_.find(s.name);
      if (t == nullptr) {
        if (s.required) fail(errc::corrupt_file, context, ": missing tensor '", s.name, "'");
        continue;
      }
      if (!is_float_dtype(t->type)) {
        fail(errc::unsupported, context, ": tensor '", s.name, "' has dtype ", dtype_name(t->type),
             "; ternq reads F32, F16 and BF16");
      }
      if (t->shape != s.shape) {
        fail(errc::shape_mismatch, context, ": tensor '", s.name, "' has shape ", shape_string(t->shape),
             ", config.json implies ", shape_string(s.shape));
      }
    }
  }

  [[nodiscard]] const hf_llama_config& config() const noexcept { return config_; }
  /// The model's tensors by name (views, float copies), across shards.
  [[nodiscard]] const safetensors_shards& tensors() const noexcept { return tensors_; }
  /// The tensors the config implies, validated.
  [[nodiscard]] std::span<const hf_tensor_spec> specs() const noexcept { return specs_; }
  /// The output matrix's tensor: `lm_head.weight`, or the embedding when tied and absent.
  [[nodiscard]] std::string_view classifier_name() const noexcept {
    return tensors_.contains("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight";
  }

 private:
  /// The specs of `c`, after checking that the files can hold them: a layer
  /// count from config.json is bounded by the tensors present (nine per
  /// layer) before anything is listed, so a hostile count cannot allocate
  /// without limit.
  static std::vector<hf_tensor_spec> bounded_specs(const hf_llama_config& c, const safetensors_shards& t,
                                                   const std::string& context) {
    const std::size_t available = t.tensor_count();
    if (c.num_hidden_layers > available / 9) {
      fail(errc::corrupt_file, context, ": config.json declares ", c.num_hidden_layers,
           " layers (9 tensors each), but the safetensors files hold only ", available, " tensors");
    }
    return hf_llama_tensors(c);
  }

  hf_llama_config config_;
  safetensors_shards tensors_;
  std::vector<hf_tensor_spec> specs_;
};

}  // namespace ternq::io
