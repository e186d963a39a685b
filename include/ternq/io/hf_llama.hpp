// SPDX-License-Identifier: MIT
// Hugging Face Llama-family models (Llama 1/2/3, Mistral, Qwen2/2.5, Qwen3): config.json, the expected tensor
// names and shapes, and a validated model directory.
#pragma once

#include <algorithm>
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

/// The `model_type`s whose decoder block ternq runs; every other one (MoE included) is refused by name.
inline constexpr std::string_view hf_supported_model_types[] = {"llama", "mistral", "qwen2", "qwen3"};

/// Llama-3's `rope_scaling` (`rope_type: "llama3"`): RoPE frequencies below a band are divided by `factor`, those
/// above kept, those inside interpolated.
struct hf_llama3_rope_scaling {
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::size_t original_max_position_embeddings = 8192;
};

/// The fields of a Llama-family `config.json` that fix the tensors and the forward
/// pass. Optional fields take transformers' `LlamaConfig` defaults.
struct hf_llama_config {
  std::size_t hidden_size = 0;
  std::size_t intermediate_size = 0;
  std::size_t num_hidden_layers = 0;
  std::size_t num_attention_heads = 0;
  std::size_t num_key_value_heads = 0;  ///< default: num_attention_heads
  std::size_t vocab_size = 0;
  std::size_t max_position_embeddings = 2048;            ///< default 2048
  double rms_norm_eps = 1e-6;                            ///< default 1e-6
  double rope_theta = 10000.0;                           ///< default 10000
  bool tie_word_embeddings = false;                      ///< default false: lm_head.weight is its own tensor
  std::string model_type;                                ///< as written ("llama"), empty when absent (read as "llama")
  std::size_t declared_head_dim = 0;                     ///< `head_dim` when given (Qwen3, Mistral NeMo); 0: absent
  std::optional<hf_llama3_rope_scaling> rope_scaling{};  ///< Llama-3 RoPE scaling, when configured
  std::size_t sliding_window = 0;                        ///< attention window (Mistral); 0: none

  /// Qwen2/2.5: q/k/v projections carry biases.
  [[nodiscard]] bool qkv_bias() const noexcept { return model_type == "qwen2"; }
  /// Qwen3: RMSNorm per head on q and k.
  [[nodiscard]] bool qk_norm() const noexcept { return model_type == "qwen3"; }
  [[nodiscard]] std::size_t head_dim() const noexcept {
    return declared_head_dim != 0 ? declared_head_dim : hidden_size / num_attention_heads;
  }
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
  if (c.model_type.empty()) c.model_type = "llama";
  if (std::find(std::begin(hf_supported_model_types), std::end(hf_supported_model_types), c.model_type) ==
      std::end(hf_supported_model_types)) {
    fail(
        errc::unsupported, context, ": model_type '", c.model_type,
        "' is not supported; ternq runs llama, mistral, qwen2 and qwen3 (dense decoder blocks; no mixture of experts)");
  }
  c.declared_head_dim = detail::positive_field(j, "head_dim", context, false).value_or(0);
  const auto flag = [&](const char* key) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return false;
    if (!it->is_boolean())
      fail(errc::corrupt_file, context, ": '", key, "' is ", detail::json_excerpt(*it), ", not a boolean");
    return it->get<bool>();
  };
  if (flag("attention_bias") && !c.qkv_bias()) {
    fail(errc::unsupported, context, ": attention_bias (biases on all four attention projections) is not supported");
  }
  if (flag("mlp_bias"))
    fail(errc::unsupported, context, ": mlp_bias (biases on the feed-forward projections) is not supported");
  if (c.model_type == "mistral") {
    c.sliding_window = detail::positive_field(j, "sliding_window", context, false).value_or(0);
  } else if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    if (flag("use_sliding_window")) {
      fail(errc::unsupported, context, ": use_sliding_window (attention windows on some layers) is not supported");
    }
  }
  if (const auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    if (!it->is_object())
      fail(errc::corrupt_file, context, ": 'rope_scaling' is ", detail::json_excerpt(*it), ", not an object");
    std::string type;
    for (const char* key : {"rope_type", "type"}) {
      if (const auto t = it->find(key); t != it->end() && t->is_string()) {
        type = t->get<std::string>();
        break;
      }
    }
    if (type == "llama3") {
      hf_llama3_rope_scaling r;
      const std::string sub = std::string(context) + " rope_scaling";
      r.factor = detail::positive_number(*it, "factor", sub).value_or(r.factor);
      r.low_freq_factor = detail::positive_number(*it, "low_freq_factor", sub).value_or(r.low_freq_factor);
      r.high_freq_factor = detail::positive_number(*it, "high_freq_factor", sub).value_or(r.high_freq_factor);
      r.original_max_position_embeddings = detail::positive_field(*it, "original_max_position_embeddings", sub, false)
                                               .value_or(r.original_max_position_embeddings);
      if (!(r.high_freq_factor > r.low_freq_factor)) {
        fail(errc::corrupt_file, context, ": rope_scaling high_freq_factor ", r.high_freq_factor,
             " must exceed low_freq_factor ", r.low_freq_factor);
      }
      c.rope_scaling = r;
    } else if (type != "default") {
      fail(errc::unsupported, context, ": rope_scaling type '", type,
           "' is not supported (\"llama3\" is; linear, dynamic, yarn and longrope are not)");
    }
  }
  if (c.declared_head_dim == 0 && c.hidden_size % c.num_attention_heads != 0) {
    fail(errc::corrupt_file, context, ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
         c.num_attention_heads);
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    fail(errc::corrupt_file, context, ": num_attention_heads ", c.num_attention_heads,
         " is not a multiple of num_key_value_heads ", c.num_key_value_heads);
  }
  if (c.head_dim() % 2 != 0)
    fail(errc::corrupt_file, context, ": the head width ", c.head_dim(), " is odd (RoPE rotates pairs)");
  return c;
}

/// Reads and parses a `config.json` file.
inline hf_llama_config read_hf_llama_config(const std::filesystem::path& path) {
  const mapped_file map(path);
  return parse_hf_llama_config(std::string_view(reinterpret_cast<const char*>(map.bytes().data()), map.size()),
                               "config '" + path.string() + "'");
}

/// What a tensor is for: the quantizers replace `linear` ones.
enum class hf_tensor_role { embedding, norm, linear, classifier, bias };

/// A tensor a Llama model must (or, for a tied `lm_head.weight`, may) hold.
struct hf_tensor_spec {
  std::string name;
  std::vector<std::size_t> shape;  ///< `out x in` for matrices
  hf_tensor_role role = hf_tensor_role::linear;
  bool required = true;
};

/// The tensors of one decoder layer of `c`: 9, plus 3 biases (Qwen2) or 2 q/k norms (Qwen3).
inline std::size_t hf_tensors_per_layer(const hf_llama_config& c) noexcept {
  return 9 + (c.qkv_bias() ? 3 : 0) + (c.qk_norm() ? 2 : 0);
}

/// Every tensor of a Llama-family model of `c`, in the order transformers names
/// them: the embedding, per layer the two norms and seven projections (with the q/k/v biases of Qwen2 after their
/// weights, the q/k norms of Qwen3 after o_proj), the
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
    if (c.qkv_bias()) out.push_back({p + "self_attn.q_proj.bias", {q}, hf_tensor_role::bias});
    out.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    if (c.qkv_bias()) out.push_back({p + "self_attn.k_proj.bias", {kv}, hf_tensor_role::bias});
    out.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (c.qkv_bias()) out.push_back({p + "self_attn.v_proj.bias", {kv}, hf_tensor_role::bias});
    out.push_back({p + "self_attn.o_proj.weight", {h, q}});
    if (c.qk_norm()) {
      out.push_back({p + "self_attn.q_norm.weight", {c.head_dim()}, hf_tensor_role::norm});
      out.push_back({p + "self_attn.k_norm.weight", {c.head_dim()}, hf_tensor_role::norm});
    }
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
  /// count from config.json is bounded by the tensors present (nine or more per
  /// layer) before anything is listed, so a hostile count cannot allocate
  /// without limit.
  static std::vector<hf_tensor_spec> bounded_specs(const hf_llama_config& c, const safetensors_shards& t,
                                                   const std::string& context) {
    const std::size_t available = t.tensor_count();
    const std::size_t per_layer = hf_tensors_per_layer(c);
    if (c.num_hidden_layers > available / per_layer) {
      fail(errc::corrupt_file, context, ": config.json declares ", c.num_hidden_layers, " layers (", per_layer,
           " tensors each), but the safetensors files hold only ", available, " tensors");
    }
    return hf_llama_tensors(c);
  }

  hf_llama_config config_;
  safetensors_shards tensors_;
  std::vector<hf_tensor_spec> specs_;
};

}  // namespace ternq::io
