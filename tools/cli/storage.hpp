// SPDX-License-Identifier: MIT
// Where ternq-quantize puts each tensor of a GGUF: the format (and its default), the fallback chain, the
// refusal of a format that packs nothing, --keep rules, and the end-of-run summary.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>
#include <ternq/core/half.hpp>
#include <ternq/pack/format.hpp>
#include <ternq/pack/q8_0.hpp>

#include "cli/suggest.hpp"
#include "llama/fold.hpp"
#include "llama/gguf_io.hpp"
#include "llama/model.hpp"

namespace ternq::cli {

/// The `--format` values.
inline constexpr std::string_view format_choices = "auto|tq2_0|tq1_0|q2_0|pq2_0|ptq1_0|i2_s|f16|f32";

/// The storage chosen for `--out-gguf`: a ternary block format, or dequantized floats.
struct storage {
  std::optional<pack::format> ternary;  ///< nullopt: f16/f32 (dequantized weights)
  std::string name;                     ///< the resolved name ("tq2_0", "f16"), never "auto"
};

/// A format's name as `--format` spells it ("tq2_0").
inline std::string option_name(pack::format f) {
  std::string lower(pack::name_of(f));
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return lower;
}

/// The input widths (`in_features`) of the linear layers of a model of `cfg`, in layer order.
inline std::vector<std::size_t> linear_widths(const llama::config& cfg) {
  std::vector<std::size_t> widths;
  for (std::size_t l = 0; l < cfg.n_layers; ++l) {
    for (const auto which : llama::all_linears) {
      widths.push_back(which == llama::linear::down ? cfg.hidden_dim : which == llama::linear::o ? cfg.q_dim() : cfg.dim);
    }
  }
  return widths;
}

/// How many of `widths` fill whole blocks of `f`.
inline std::size_t layers_held(pack::format f, std::span<const std::size_t> widths) {
  const std::size_t block = pack::traits_of(f).block_elements;
  return static_cast<std::size_t>(
      std::count_if(widths.begin(), widths.end(), [&](std::size_t w) { return w > 0 && w % block == 0; }));
}

/// Parses `--format`. `auto` follows docs/formats.md's advice: TQ2_0 (the
/// fastest in llama.cpp) when it holds at least one linear layer, else Q2_0
/// (64-element blocks, for small widths).
inline storage parse_storage(const std::string& name, std::span<const std::size_t> widths) {
  if (name == "auto") {
    const pack::format f = layers_held(pack::format::tq2_0, widths) > 0 ? pack::format::tq2_0 : pack::format::q2_0;
    return {f, option_name(f)};
  }
  for (const auto f : pack::all_formats) {
    if (option_name(f) == name) return {f, name};
  }
  if (name == "f16" || name == "f32") return {std::nullopt, name};
  std::vector<std::string> known = {"auto", "f16", "f32"};
  for (const auto f : pack::all_formats) known.push_back(option_name(f));
  const std::string hint = did_you_mean(name, known);
  fail(errc::invalid_argument, "--format '", name, "' is not one of ", format_choices, hint.empty() ? "" : ": ", hint);
}

/// The group size a run uses when `--group-size` is not given: the block
/// of the chosen ternary format (so every block holds one group), one
/// group per row for I2_S (one scale per tensor), 128 for dequantized
/// storage. 0 means per row.
inline std::size_t default_group_size(const storage& s) {
  if (!s.ternary) return 128;
  if (pack::per_tensor_scale(*s.ternary)) return 0;
  return pack::traits_of(*s.ternary).block_elements;
}

/// The ternary formats tried, in order, for a layer `f` cannot hold exactly:
/// the nearest type with a smaller block that the same engine reads. TQ2_0
/// and TQ1_0 (256) fall back to Q2_0 (64); mainline has nothing smaller than
/// Q2_0. The PrismML and bitnet.cpp types have none: ternq does not know
/// that those forks read mainline's Q2_0 the same way.
inline std::vector<pack::format> fallback_chain(pack::format f) {
  switch (f) {
    case pack::format::tq2_0:
    case pack::format::tq1_0:
      return {pack::format::q2_0};
    default:
      return {};
  }
}

/// The FFN hidden width that lets ffn_down (which reads it) pack: `hidden`
/// itself when the format's block divides it, else `hidden` padded up to the
/// block of the format or one of its fallbacks, whichever pads least (the
/// format first on a tie). Without a ternary format, `hidden`.
inline std::size_t ffn_padding(const storage& s, std::size_t hidden) {
  if (!s.ternary) return hidden;
  const auto padded = [&](pack::format f) { return llama::padded_hidden(hidden, pack::traits_of(f).block_elements); };
  std::size_t best = padded(*s.ternary);
  for (const pack::format f : fallback_chain(*s.ternary)) best = std::min(best, padded(f));
  return best;
}

namespace detail {
/// "64 (30 layers), 172 (5 layers)": the distinct widths with their counts.
inline std::string describe_widths(std::span<const std::size_t> widths) {
  std::map<std::size_t, std::size_t> count;
  for (const auto w : widths) ++count[w];
  std::string out;
  for (const auto& [w, n] : count) {
    out += (out.empty() ? "" : ", ") + std::to_string(w) + " (" + std::to_string(n) + (n == 1 ? " layer)" : " layers)");
  }
  return out;
}
}  // namespace detail

/// Refuses, before any work, a ternary format that holds none of the linear
/// layers of widths `widths` (the layers not kept by `--keep`), unless the
/// user asked for the fallback (`--allow-fallback`): the message names the
/// widths and the formats that would hold them.
inline void require_some_packed(const storage& s, std::span<const std::size_t> widths, bool allow_fallback) {
  if (!s.ternary || widths.empty() || allow_fallback) return;
  const pack::format f = *s.ternary;
  if (pack::per_tensor_scale(f) || layers_held(f, widths) > 0) return;
  std::string fits;
  for (const pack::format other : {pack::format::tq2_0, pack::format::tq1_0, pack::format::q2_0, pack::format::pq2_0,
                                   pack::format::ptq1_0}) {
    const std::size_t n = layers_held(other, widths);
    if (other == f || n == 0) continue;
    fits += option_name(other) + " (" + std::to_string(pack::traits_of(other).block_elements) + "-element blocks, " +
            std::to_string(n) + " of " + std::to_string(widths.size()) + " layers";
    if (other == pack::format::q2_0) fits += "; slow on x86 in llama.cpp";
    if (other == pack::format::pq2_0 || other == pack::format::ptq1_0) fits += "; PrismML's llama.cpp fork only";
    fits += "), ";
  }
  std::string chain;
  for (const pack::format c : fallback_chain(f)) chain += std::string(pack::name_of(c)) + " where it holds them, else ";
  fail(errc::unsupported, "--format ", s.name, " packs none of the ", widths.size(),
       " linear layers: their widths (in_features ", detail::describe_widths(widths),
       ") are not multiples of its ", pack::traits_of(f).block_elements, "-element block. Formats that fit: ", fits,
       "f16 (dequantized, any width). Choose one with --format, or pass --allow-fallback to store the layers as ",
       chain, "F16 anyway");
}

// ---------------------------------------------------------------------------------------------------------------
// --keep 'PATTERN=TYPE'

/// One `--keep` rule: tensors whose GGUF name matches `pattern` are stored at `type`, not ternarized.
struct keep_rule {
  std::string pattern;
  pack::ggml_type type = pack::ggml_type::q8_0;
  std::string spec;  ///< as given
};

/// Parses `PATTERN=TYPE`; TYPE is q8_0, f16, bf16 or f32 (any case).
inline keep_rule parse_keep(std::string_view spec) {
  const auto eq = spec.rfind('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == spec.size()) {
    fail(errc::invalid_argument, "--keep '", spec, "' is not PATTERN=TYPE (e.g. 'blk.0.ffn_down=q8_0')");
  }
  std::string type(spec.substr(eq + 1));
  for (auto& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  keep_rule r;
  r.pattern = std::string(spec.substr(0, eq));
  r.spec = std::string(spec);
  if (type == "q8_0") {
    r.type = pack::ggml_type::q8_0;
  } else if (type == "f16") {
    r.type = pack::ggml_type::f16;
  } else if (type == "bf16") {
    r.type = pack::ggml_type::bf16;
  } else if (type == "f32") {
    r.type = pack::ggml_type::f32;
  } else {
    fail(errc::invalid_argument, "--keep '", spec, "': type '", type, "' is not one of q8_0, f16, bf16, f32");
  }
  return r;
}

/// Shell-style glob match of the whole `name`: `*` any run of characters
/// (dots included), `?` one character, anything else itself.
inline bool glob_match(std::string_view pattern, std::string_view name) {
  std::size_t p = 0, n = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

/// The type the first rule matching `name` asks for; a pattern matches the
/// full GGUF name or the name without its `.weight` suffix
/// (`blk.0.ffn_down` matches `blk.0.ffn_down.weight`).
inline std::optional<pack::ggml_type> kept_type(std::span<const keep_rule> rules, std::string_view name) {
  std::string_view stem = name;
  if (stem.ends_with(".weight")) stem.remove_suffix(7);
  for (const auto& r : rules) {
    if (glob_match(r.pattern, name) || glob_match(r.pattern, stem)) return r.type;
  }
  return std::nullopt;
}

/// Replaces the values of `w` (`out x in`, rows the ggml rows) by those the
/// file will hold at `type`: Q8_0 blocks (ggml's reference rule), fp16 or
/// bf16 rounding; F32 leaves them. Throws `shape_mismatch` when Q8_0's
/// 32-element block does not divide the width.
inline void round_to_type(llama::matrix& w, pack::ggml_type type, std::string_view name) {
  const auto rows = static_cast<std::size_t>(w.rows());
  const auto cols = static_cast<std::size_t>(w.cols());
  const std::span<float> values(w.data(), static_cast<std::size_t>(w.size()));
  switch (type) {
    case pack::ggml_type::q8_0: {
      if (cols % pack::block_q8_0::elements != 0) {
        fail(errc::shape_mismatch, "--keep: tensor '", name, "' has in_features ", cols,
             ", not a multiple of Q8_0's 32-element block (keep it as f16 or f32)");
      }
      const auto bytes = pack::quantize_q8_0(values, rows, cols);
      pack::q8_0_to_float(bytes, values);
      break;
    }
    case pack::ggml_type::f16:
      for (float& x : values) x = fp16_bits_to_fp32(fp32_to_fp16_bits(x));
      break;
    case pack::ggml_type::bf16:
      for (float& x : values) x = bf16_bits_to_fp32(fp32_to_bf16_bits(x));
      break;
    default:
      break;
  }
}

/// The tensors of a model of `cfg` (`classifier`: with its own output matrix) that `rules` keep, by GGUF name.
/// Throws `invalid_argument` for a rule that matches no matrix of the model (norms are always F32 and never
/// matched).
inline std::map<std::string, pack::ggml_type> resolve_keep(std::span<const keep_rule> rules, const llama::config& cfg,
                                                           bool classifier) {
  std::vector<std::string> names = {"token_embd.weight"};
  if (classifier) names.emplace_back("output.weight");
  for (std::size_t l = 0; l < cfg.n_layers; ++l) {
    for (const auto which : llama::all_linears) names.push_back(llama::gguf_name(l, which));
  }
  std::map<std::string, pack::ggml_type> keep;
  for (const auto& name : names) {
    if (const auto t = kept_type(rules, name)) keep[name] = *t;
  }
  for (const auto& r : rules) {
    const std::span<const keep_rule> one(&r, 1);
    if (std::none_of(names.begin(), names.end(), [&](const std::string& n) { return kept_type(one, n).has_value(); })) {
      fail(errc::invalid_argument, "--keep '", r.spec, "' matches no tensor of the model (names look like ",
           "token_embd.weight, output.weight, blk.0.attn_q.weight, blk.0.ffn_down.weight)");
    }
  }
  return keep;
}

/// The tensors of `m` that `rules` keep, by GGUF name.
inline std::map<std::string, pack::ggml_type> resolve_keep(std::span<const keep_rule> rules, const llama::model& m) {
  llama::config cfg = m.cfg;
  cfg.n_layers = m.layers.size();
  return resolve_keep(rules, cfg, m.classifier.has_value());
}

// ---------------------------------------------------------------------------------------------------------------
// The end-of-run summary.

/// What a GGUF holds, for the end-of-run summary.
struct file_summary {
  std::string format;              ///< the chosen format's ggml name ("TQ2_0")
  std::size_t linear = 0;          ///< linear layers
  std::size_t packed = 0;          ///< ... stored in the chosen format
  std::size_t kept = 0;            ///< ... kept at a --keep type
  std::vector<std::pair<std::string, std::size_t>> fallbacks;  ///< "Q2_0 (reason)" and how many layers
  std::uint64_t linear_bytes = 0;  ///< tensor data of the linear layers
  std::uint64_t linear_weights = 0;
  std::uint64_t weights = 0;     ///< every tensor's elements
  std::uint64_t file_bytes = 0;  ///< the whole file, metadata included
  std::pair<std::size_t, std::size_t> padded_hidden{};  ///< FFN width of the model and as stored, when padded
  std::uint64_t padding_weights = 0;                    ///< zero weights the padding added to the linear layers

  [[nodiscard]] double linear_bits_per_weight() const {
    return linear_weights == 0 ? 0.0 : 8.0 * static_cast<double>(linear_bytes) / static_cast<double>(linear_weights);
  }
  /// Bits of the linear layers per weight of the model before padding (the padding's bytes count, its zeros not).
  [[nodiscard]] double linear_bits_per_model_weight() const {
    const std::uint64_t n = linear_weights - padding_weights;
    return n == 0 ? 0.0 : 8.0 * static_cast<double>(linear_bytes) / static_cast<double>(n);
  }
  /// Bits of the whole file (metadata and vocabulary included) per weight of the model.
  [[nodiscard]] double file_bits_per_weight() const {
    return weights == 0 ? 0.0 : 8.0 * static_cast<double>(file_bytes) / static_cast<double>(weights);
  }
};

/// The summary as the JSON report's `gguf` object.
inline nlohmann::json to_json(const file_summary& s) {
  nlohmann::json fallbacks = nlohmann::json::object();
  for (const auto& [what, n] : s.fallbacks) fallbacks[what] = n;
  return {{"format", s.format},
          {"linear_layers", s.linear},
          {"packed", s.packed},
          {"kept", s.kept},
          {"fallbacks", fallbacks},
          {"linear_bits_per_weight", s.linear_bits_per_weight()},
          {"linear_bits_per_model_weight", s.linear_bits_per_model_weight()},
          {"padding_weights", s.padding_weights},
          {"file_bits_per_weight", s.file_bits_per_weight()},
          {"weights", s.weights},
          {"file_bytes", s.file_bytes}};
}

/// Summarizes the tensors `save_gguf` stored, the chosen format's ggml name and the file's size.
inline file_summary summarize(const std::vector<llama::stored_tensor>& stored, std::string_view format,
                              std::uint64_t file_bytes) {
  file_summary s;
  s.format = std::string(format);
  s.file_bytes = file_bytes;
  for (const auto& t : stored) {
    s.weights += t.elements;
    if (!t.linear) continue;
    ++s.linear;
    s.linear_bytes += t.bytes;
    s.linear_weights += t.elements;
    if (t.kept) {
      ++s.kept;
    } else if (t.type == format) {
      ++s.packed;
    } else {
      const std::string key = t.type + (t.reason.empty() ? std::string() : " (" + t.reason + ")");
      auto it = std::find_if(s.fallbacks.begin(), s.fallbacks.end(), [&](const auto& f) { return f.first == key; });
      if (it == s.fallbacks.end()) {
        s.fallbacks.emplace_back(key, 1);
      } else {
        ++it->second;
      }
    }
  }
  return s;
}

/// The one summary line: layers packed / fallen back and why, bits per weight, file size.
inline std::string summary_line(const file_summary& s) {
  char figures[160];
  std::snprintf(figures, sizeof figures,
                "%.4f bits per linear weight, %.4f bits per weight in the whole file (%llu weights), file %llu bytes",
                s.linear_bits_per_weight(), s.file_bits_per_weight(), static_cast<unsigned long long>(s.weights),
                static_cast<unsigned long long>(s.file_bytes));
  std::string out = "summary: " + std::to_string(s.packed) + " of " + std::to_string(s.linear) +
                    " linear layers packed as " + s.format;
  std::size_t fallen = 0;
  for (const auto& f : s.fallbacks) fallen += f.second;
  out += "; " + std::to_string(fallen) + " fell back";
  for (const auto& [what, n] : s.fallbacks) out += ", " + std::to_string(n) + " to " + what;
  if (s.kept > 0) out += "; " + std::to_string(s.kept) + " kept by --keep";
  out += std::string("; ") + figures;
  if (s.padding_weights > 0) {
    char padded[160];
    std::snprintf(padded, sizeof padded, "; ffn padded from %zu to %zu: %.4f bits per linear weight of the model",
                  s.padded_hidden.first, s.padded_hidden.second, s.linear_bits_per_model_weight());
    out += padded;
  }
  return out;
}

/// A warning for a file the chosen format does not fill: some linear
/// layers (not kept) are stored in another type. Empty when all are packed.
inline std::string partial_warning(const file_summary& s) {
  const std::size_t wanted = s.linear - s.kept;
  if (s.packed == wanted) return {};
  return "WARNING: only " + std::to_string(s.packed) + " of " + std::to_string(wanted) + " linear layers are " +
         s.format + "; the others fell back to other types (see the summary and the stored-as column)";
}

}  // namespace ternq::cli
