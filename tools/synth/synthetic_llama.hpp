// SPDX-License-Identifier: MIT
// Synthetic Hugging Face Llama directories of real shapes with LLM-like weight statistics, streamed to disk.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <numbers>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>
#include <ternq/core/parallel.hpp>
#include <ternq/io/atomic_output.hpp>
#include <ternq/io/hf_llama.hpp>
#include <ternq/io/safetensors_dtype.hpp>
#include <ternq/io/safetensors_stream_writer.hpp>

#include "llm_like.hpp"

namespace ternq::synth {

/// A named model shape. Every field of the config can be overridden afterwards.
struct preset {
  std::string_view name;
  io::hf_llama_config config;
};

namespace detail {
inline io::hf_llama_config shape(std::size_t dim, std::size_t hidden, std::size_t layers, std::size_t heads,
                                 std::size_t kv_heads, std::size_t vocab, std::size_t context) {
  io::hf_llama_config c;
  c.hidden_size = dim;
  c.intermediate_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.vocab_size = vocab;
  c.max_position_embeddings = context;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = false;
  c.model_type = "llama";
  return c;
}

/// `c` as a model of family `model_type` with RoPE base `theta` and RMSNorm epsilon `eps`.
inline io::hf_llama_config family(io::hf_llama_config c, std::string model_type, double theta, double eps) {
  c.model_type = std::move(model_type);
  c.rope_theta = theta;
  c.rms_norm_eps = eps;
  return c;
}

/// Llama-3.1's RoPE scaling.
inline io::hf_llama_config llama31(io::hf_llama_config c) {
  c = family(std::move(c), "llama", 500000.0, 1e-5);
  c.rope_scaling = io::hf_llama3_rope_scaling{
      .factor = 8.0, .low_freq_factor = 1.0, .high_freq_factor = 4.0, .original_max_position_embeddings = 8192};
  return c;
}

/// Qwen3's explicit head width.
inline io::hf_llama_config qwen3(io::hf_llama_config c, std::size_t head_dim) {
  c = family(std::move(c), "qwen3", 1000000.0, 1e-6);
  c.declared_head_dim = head_dim;
  return c;
}
}  // namespace detail

/// tiny: CI-sized (1.2 M parameters), and tiny shapes of each family; the others: the shapes (and family
/// features) of the models they are named after.
inline std::vector<preset> presets() {
  using detail::family;
  using detail::shape;
  return {{"tiny", shape(128, 344, 4, 4, 2, 512, 256)},
          {"tiny-llama3", detail::llama31(shape(128, 344, 4, 4, 2, 512, 256))},
          {"tiny-qwen2", family(shape(128, 344, 4, 4, 2, 512, 256), "qwen2", 1000000.0, 1e-6)},
          {"tiny-qwen3", detail::qwen3(shape(128, 344, 4, 4, 2, 512, 256), 64)},
          {"tinyllama-1.1b", shape(2048, 5632, 22, 32, 4, 32000, 2048)},
          {"llama2-7b", shape(4096, 11008, 32, 32, 32, 32000, 4096)},
          {"llama3.1-8b", detail::llama31(shape(4096, 14336, 32, 32, 8, 128256, 131072))},
          {"mistral-7b", family(shape(4096, 14336, 32, 32, 8, 32000, 32768), "mistral", 1000000.0, 1e-5)},
          {"qwen2.5-7b", family(shape(3584, 18944, 28, 28, 4, 152064, 32768), "qwen2", 1000000.0, 1e-6)},
          {"qwen3-8b", detail::qwen3(shape(4096, 12288, 36, 32, 8, 151936, 40960), 128)}};
}

/// The config of preset `name`; `[ternq.invalid_argument]` naming the presets for any other name.
inline io::hf_llama_config preset_config(std::string_view name) {
  std::string known;
  for (const preset& p : presets()) {
    if (p.name == name) return p.config;
    known += known.empty() ? "" : ", ";
    known += p.name;
  }
  fail(errc::invalid_argument, "synthetic_llama: no preset named '", name, "' (known: ", known, ")");
}

/// What to write.
struct options {
  io::hf_llama_config config = preset_config("tiny");
  io::dtype type = io::dtype::bf16;          ///< F32, F16 or BF16
  std::uint64_t seed = 0;                    ///< the same seed gives the same bytes, whatever `threads`
  std::uint64_t shard_size = 5'000'000'000;  ///< bytes of tensor data per shard at most (transformers' 5 GB)
  unsigned threads = 0;                      ///< generating threads (0: all)
  bool overwrite = false;                    ///< replace the model files of an earlier run in the directory
  std::function<void(const std::filesystem::path&, std::uint64_t)> on_file;  ///< after each safetensors file
};

/// What was written.
struct summary {
  std::vector<std::filesystem::path> files;  ///< the safetensors files, in order
  std::uint64_t total_size = 0;              ///< bytes of tensor data (the index's `metadata.total_size`)
  std::size_t tensors = 0;
  std::uint64_t parameters = 0;
};

/// The statistics of one tensor's values. Matrices: per row, a log-normal
/// scale and a non-zero mean; per element, Student-t noise (heavy tails);
/// per input column, a gain (outlier channels). Vectors (RMSNorm weights):
/// log-normal values around 1.
struct recipe {
  bool is_norm = false;
  double base_scale = 0.02;        ///< the tensor's overall standard deviation, outlier columns aside
  double row_scale_spread = 0.35;  ///< log-normal spread of the per-row scale
  double row_mean_spread = 0.4;    ///< std of each row's mean, in units of that row's scale
  int tail_dof = 5;                ///< Student-t degrees of freedom (excess kurtosis 6)
  double norm_spread = 0.2;        ///< log-normal spread of norm weights
  std::vector<float> column_gain;  ///< one per input column (empty: all 1)
};

/// The fraction of input channels that are outliers, and how much larger their weights are.
inline constexpr double outlier_fraction = 0.01;
inline constexpr double residual_outlier_gain = 4.0;  ///< columns of q, k, v, gate, up, lm_head (the residual stream)
inline constexpr double inner_outlier_gain = 3.0;     ///< columns of o_proj and down_proj (their own channels)

/// A seed for `(seed, a, b)`: splitmix64 steps, so neighbouring indices give unrelated streams.
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b) noexcept {
  const auto mix = [](std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31U);
  };
  return mix(mix(mix(seed) ^ a) ^ (b * 0xD1B54A32D192ED03ULL));
}

/// The recipe of tensor `index` of `specs` (the order of `io::hf_llama_tensors`). The input channels of
/// the residual stream are outliers in the same columns in every layer that reads it; o_proj and
/// down_proj have their own outlier channels per layer.
inline recipe recipe_of(const io::hf_llama_config& c, const io::hf_tensor_spec& spec, std::size_t index,
                        std::uint64_t seed) {
  recipe r;
  const std::string_view name = spec.name;
  const auto gains = [&](std::size_t cols, std::uint64_t channel_seed, double gain) {
    std::vector<float> g(cols, 1.0F);
    for (const std::size_t j : testing::outlier_channels(cols, outlier_fraction, channel_seed)) {
      g[j] = static_cast<float>(gain);
    }
    return g;
  };
  switch (spec.role) {
    case io::hf_tensor_role::norm:
      r.is_norm = true;
      break;
    case io::hf_tensor_role::bias:
      // Qwen2's q/k/v biases: a vector of moderate values around 0 (drawn as one row, heavy-tailed).
      r.base_scale = 0.1;
      r.row_scale_spread = 0.0;
      r.row_mean_spread = 0.0;
      break;
    case io::hf_tensor_role::embedding:
      // Rows of about unit norm, as trained embeddings have: the first RMSNorm sees O(1) inputs.
      r.base_scale = 1.0 / std::sqrt(static_cast<double>(c.hidden_size));
      r.row_mean_spread = 0.1;
      break;
    case io::hf_tensor_role::classifier:
    case io::hf_tensor_role::linear:
      if (name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight")) {
        const bool down = name.ends_with("down_proj.weight");
        r.base_scale = down ? 0.015 : 0.02;
        r.column_gain = gains(spec.shape[1], derive_seed(seed, index, 0x0C7A11E1ULL), inner_outlier_gain);
      } else {
        r.column_gain = gains(spec.shape[1], derive_seed(seed, 0x8E51D0A1ULL, 0), residual_outlier_gain);
      }
      break;
  }
  return r;
}

/// Draws from a `testing::rng` several times faster than its one-value-per-call double helpers (a 7B
/// model is 6.7 G values): single precision, two 24-bit uniforms per 64-bit draw, Box-Muller normals
/// two at a time, and chi-square variates from products of uniforms (chi2 with 2k degrees of freedom
/// is -2 ln of k uniforms).
class sampler {
 public:
  explicit sampler(std::uint64_t seed) : r_(seed) {}

  /// Uniform in (0, 1).
  float uniform() noexcept {
    if (has_spare_uniform_) {
      has_spare_uniform_ = false;
      return to_unit(spare_uniform_);
    }
    const std::uint64_t bits = r_.next();
    spare_uniform_ = static_cast<std::uint32_t>(bits);
    has_spare_uniform_ = true;
    return to_unit(static_cast<std::uint32_t>(bits >> 32U));
  }

  float normal() noexcept {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return spare_normal_;
    }
    const float radius = std::sqrt(-2.0F * std::log(uniform()));
    const float angle = 2.0F * std::numbers::pi_v<float> * uniform();
    spare_normal_ = radius * std::sin(angle);
    has_spare_normal_ = true;
    return radius * std::cos(angle);
  }

  /// Student-t with `dof` >= 3 degrees of freedom, scaled to unit variance.
  float student_t(int dof) noexcept {
    const float z = normal();
    float product = 1.0F;
    for (int k = 0; k + 1 < dof; k += 2) product *= uniform();
    float chi2 = -2.0F * std::log(product);
    if (dof % 2 != 0) {
      const float g = normal();
      chi2 += g * g;
    }
    return z * std::sqrt(static_cast<float>(dof - 2) / chi2);
  }

 private:
  /// The top 24 bits of `bits` as a float in (0, 1), never 0 (log(0) would be -Inf).
  static float to_unit(std::uint32_t bits) noexcept { return (static_cast<float>(bits >> 8U) + 0.5F) * 0x1.0p-24F; }

  testing::rng r_;
  std::uint32_t spare_uniform_ = 0;
  float spare_normal_ = 0.0F;
  bool has_spare_uniform_ = false;
  bool has_spare_normal_ = false;
};

/// Rows `[first_row, first_row + rows)` of a tensor with `cols` columns and recipe `r`, into `out`
/// (row-major), drawn from a generator seeded with `chunk_seed` alone.
inline void generate_rows(const recipe& r, std::size_t cols, std::size_t rows, std::uint64_t chunk_seed,
                          std::span<float> out) {
  TERNQ_ASSERT(out.size() == rows * cols);
  sampler s(chunk_seed);
  if (r.is_norm) {
    for (float& x : out) x = static_cast<float>(std::exp(r.norm_spread * s.normal()));
    return;
  }
  // Row scales are normalized so the tensor's standard deviation is about base_scale:
  // E[scale^2] = exp(2 spread^2), and a row mean adds mean_spread^2 of the row's variance.
  const double norm = std::sqrt(std::exp(2.0 * r.row_scale_spread * r.row_scale_spread) *
                                (1.0 + r.row_mean_spread * r.row_mean_spread));
  for (std::size_t i = 0; i < rows; ++i) {
    const double scale = r.base_scale * std::exp(r.row_scale_spread * s.normal()) / norm;
    const auto mean = static_cast<float>(r.row_mean_spread * scale * s.normal());
    const auto fscale = static_cast<float>(scale);
    float* row = out.data() + i * cols;
    for (std::size_t j = 0; j < cols; ++j) row[j] = mean + fscale * s.student_t(r.tail_dof);
    if (!r.column_gain.empty()) {
      for (std::size_t j = 0; j < cols; ++j) row[j] *= r.column_gain[j];
    }
  }
}

/// Rows per generated chunk of a tensor with `cols` columns: about 256 Ki values, a function of the
/// shape alone, so the values do not depend on the thread count.
inline std::size_t chunk_rows(std::size_t cols) noexcept {
  constexpr std::size_t chunk_values = std::size_t{1} << 18U;
  return std::max<std::size_t>(1, chunk_values / std::max<std::size_t>(cols, 1));
}

/// Checks that `c` describes a model the runtime can run: positive sizes, heads dividing the width,
/// key/value heads dividing the heads, an even head width (RoPE rotates pairs).
inline void validate(const io::hf_llama_config& c) {
  const auto positive = [](std::size_t v, const char* what) {
    if (v == 0) fail(errc::invalid_argument, "synthetic_llama: ", what, " must be at least 1");
  };
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_hidden_layers, "num_hidden_layers");
  positive(c.num_attention_heads, "num_attention_heads");
  positive(c.num_key_value_heads, "num_key_value_heads");
  positive(c.vocab_size, "vocab_size");
  positive(c.max_position_embeddings, "max_position_embeddings");
  if (c.declared_head_dim == 0 && c.hidden_size % c.num_attention_heads != 0) {
    fail(errc::invalid_argument, "synthetic_llama: hidden_size ", c.hidden_size,
         " is not a multiple of num_attention_heads ", c.num_attention_heads);
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    fail(errc::invalid_argument, "synthetic_llama: num_attention_heads ", c.num_attention_heads,
         " is not a multiple of num_key_value_heads ", c.num_key_value_heads);
  }
  if (c.head_dim() % 2 != 0) {
    fail(errc::invalid_argument, "synthetic_llama: the head width ", c.head_dim(), " is odd; RoPE needs it even");
  }
}

/// The `config.json` of `c` stored as `type`, as transformers writes the config of its family.
inline nlohmann::ordered_json config_json(const io::hf_llama_config& c, io::dtype type) {
  const char* torch_dtype = type == io::dtype::f32 ? "float32" : type == io::dtype::f16 ? "float16" : "bfloat16";
  const std::string architecture = c.model_type == "mistral" ? "MistralForCausalLM"
                                   : c.model_type == "qwen2" ? "Qwen2ForCausalLM"
                                   : c.model_type == "qwen3" ? "Qwen3ForCausalLM"
                                                             : "LlamaForCausalLM";
  nlohmann::ordered_json j;
  j["architectures"] = {architecture};
  j["model_type"] = c.model_type.empty() ? "llama" : c.model_type;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  if (c.declared_head_dim != 0) j["head_dim"] = c.declared_head_dim;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling->factor},
                         {"low_freq_factor", c.rope_scaling->low_freq_factor},
                         {"high_freq_factor", c.rope_scaling->high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling->original_max_position_embeddings}};
  }
  j["tie_word_embeddings"] = false;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  j["torch_dtype"] = torch_dtype;
  return j;
}

namespace detail {

inline bool is_model_file(const std::string& name) {
  return name == "config.json" || name == "model.safetensors" || name == "model.safetensors.index.json" ||
         (name.starts_with("model-") && name.ends_with(".safetensors") && name.find("-of-") != std::string::npos);
}

/// Creates `dir`, or checks that it holds no model files (removing them with `overwrite`): a stale
/// model.safetensors would shadow new shards.
inline void prepare_directory(const std::filesystem::path& dir, bool overwrite) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    fail(errc::io, "synthetic_llama: cannot create the directory '", dir.string(), "': ", ec.message());
  }
  std::vector<std::filesystem::path> found;  // sorted, so the message names the same file every time
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (is_model_file(e.path().filename().string())) found.push_back(e.path());
  }
  std::sort(found.begin(), found.end());
  if (!found.empty() && !overwrite) {
    fail(errc::invalid_argument, "synthetic_llama: '", dir.string(), "' already holds ", found[0].filename().string(),
         "; choose an empty directory, or overwrite its model files (ternq-synth --force)");
  }
  for (const std::filesystem::path& p : found) {
    std::filesystem::remove(p, ec);
    if (ec) fail(errc::io, "synthetic_llama: cannot remove '", p.string(), "': ", ec.message());
  }
}

inline void write_json(const std::filesystem::path& path, const nlohmann::ordered_json& j) {
  io::atomic_output out(path, "synthetic_llama");
  const std::string text = j.dump(2) + "\n";
  out.write(std::as_bytes(std::span(text)));
  out.commit();
}

/// Groups tensors into shards as transformers does: in order, a new shard when the next tensor
/// would take the current one past `limit` bytes (a tensor larger than the limit gets its own).
inline std::vector<std::vector<std::size_t>> plan_shards(const std::vector<std::uint64_t>& bytes, std::uint64_t limit) {
  std::vector<std::vector<std::size_t>> shards(1);
  std::uint64_t used = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (!shards.back().empty() && used + bytes[i] > limit) {
      shards.emplace_back();
      used = 0;
    }
    shards.back().push_back(i);
    used += bytes[i];
  }
  return shards;
}

inline std::string shard_name(std::size_t k, std::size_t n) {
  const auto five = [](std::size_t v) {
    std::string s = std::to_string(v);
    return std::string(s.size() < 5 ? 5 - s.size() : 0, '0') + s;
  };
  return "model-" + five(k + 1) + "-of-" + five(n) + ".safetensors";
}

}  // namespace detail

/// Writes a Hugging Face Llama directory of `opt.config`'s shapes into `dir`: `config.json` and the
/// tensors of `io::hf_llama_tensors` (lm_head untied) as `model.safetensors`, or as shards with
/// `model.safetensors.index.json` when the data exceeds `opt.shard_size`. Values are generated in
/// chunks of rows, each from its own seed `derive_seed(seed, tensor, chunk)`, on `opt.threads`
/// threads, and streamed to disk: memory holds a few chunks per thread, never a whole tensor, and
/// the bytes do not depend on the thread count.
inline summary write_synthetic_llama(const std::filesystem::path& dir, const options& opt) {
  validate(opt.config);
  if (!io::is_float_dtype(opt.type)) {
    fail(errc::unsupported, "synthetic_llama: weights are F32, F16 or BF16, not ", io::dtype_name(opt.type));
  }
  if (opt.shard_size == 0) fail(errc::invalid_argument, "synthetic_llama: the shard size must be at least 1 byte");
  io::hf_llama_config c = opt.config;
  c.tie_word_embeddings = false;
  if (c.model_type.empty()) c.model_type = "llama";
  const std::vector<io::hf_tensor_spec> specs = io::hf_llama_tensors(c);

  summary result;
  std::vector<std::uint64_t> bytes;
  for (const io::hf_tensor_spec& s : specs) {
    std::uint64_t n = 1;
    for (const std::size_t d : s.shape) n *= d;
    result.parameters += n;
    bytes.push_back(n * io::dtype_size(opt.type));
    result.total_size += bytes.back();
  }
  result.tensors = specs.size();

  detail::prepare_directory(dir, opt.overwrite);
  const auto shards = detail::plan_shards(bytes, opt.shard_size);
  const bool sharded = shards.size() > 1;
  const unsigned threads =
      cpu_exec{.threads = opt.threads == 0 ? std::nullopt : std::optional(opt.threads)}.thread_count();
  // Chunks generated at once: a few per thread keeps every thread busy while memory stays at
  // (chunks in flight) x 1 MiB.
  const std::size_t in_flight = 2 * static_cast<std::size_t>(threads);
  std::vector<std::vector<float>> buffers(in_flight);

  nlohmann::json weight_map = nlohmann::json::object();
  for (std::size_t k = 0; k < shards.size(); ++k) {
    const std::string file = sharded ? detail::shard_name(k, shards.size()) : "model.safetensors";
    io::safetensors_stream_writer out;
    out.set_metadata("format", "pt");
    for (const std::size_t i : shards[k]) {
      out.add_tensor(specs[i].name, opt.type, specs[i].shape);
      weight_map[specs[i].name] = file;
    }
    out.open(dir / file);
    for (const std::size_t i : shards[k]) {
      const io::hf_tensor_spec& s = specs[i];
      const recipe r = recipe_of(c, s, i, opt.seed);
      const std::size_t cols = s.shape.back();
      const std::size_t rows = s.shape.size() == 2 ? s.shape[0] : 1;
      const std::size_t per_chunk = chunk_rows(cols);
      const std::size_t chunks = (rows + per_chunk - 1) / per_chunk;
      for (std::size_t first = 0; first < chunks; first += in_flight) {
        const std::size_t count = std::min(in_flight, chunks - first);
        parallel_for(count, threads, [&](std::size_t begin, std::size_t end) {
          for (std::size_t b = begin; b < end; ++b) {
            const std::size_t chunk = first + b;
            const std::size_t row0 = chunk * per_chunk;
            const std::size_t n = std::min(per_chunk, rows - row0);
            buffers[b].resize(n * cols);
            generate_rows(r, cols, n, derive_seed(opt.seed, i, chunk), buffers[b]);
          }
        });
        for (std::size_t b = 0; b < count; ++b) out.write(buffers[b]);
      }
    }
    out.close();
    result.files.push_back(dir / file);
    if (opt.on_file) opt.on_file(dir / file, out.data_size());
  }
  if (sharded) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", result.total_size}};
    index["weight_map"] = weight_map;  // sorted by name, as transformers writes it
    detail::write_json(dir / "model.safetensors.index.json", index);
  }
  // config.json last: a directory with a config is a complete model.
  detail::write_json(dir / "config.json", config_json(c, opt.type));
  return result;
}

}  // namespace ternq::synth
