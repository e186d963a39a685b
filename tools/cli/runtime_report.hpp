// SPDX-License-Identifier: MIT
// --weights and --activations of the tools that run a model (ternq-eval, ternq-generate), and how they report the
// forward path that ran.
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <ternq/kernels.hpp>
#include <ternq/pack/ggml_types.hpp>

#include "llama/packed_model.hpp"

namespace ternq::cli {

/// The forward-path options.
struct runtime_options {
  std::string weights = "packed";   ///< packed | dequantized
  std::string activations = "int8";  ///< int8 | f32 (the packed products)

  [[nodiscard]] kernels::activation_precision precision() const noexcept {
    return activations == "f32" ? kernels::activation_precision::f32 : kernels::activation_precision::int8;
  }
};

inline void add_runtime_options(CLI::App& app, runtime_options& opt) {
  app.add_option("--weights", opt.weights,
                 "packed: a GGUF's ternary layers multiplied straight from their packed blocks (default); "
                 "dequantized: every tensor widened to fp32 first (the reference path). Other model files run "
                 "dense.")
      ->check(CLI::IsMember({"packed", "dequantized"}));
  app.add_option("--activations", opt.activations,
                 "activations of the packed products: int8 (quantized per weight block; default) or f32")
      ->check(CLI::IsMember({"int8", "f32"}));
}

inline const char* precision_name(kernels::activation_precision a) noexcept {
  return a == kernels::activation_precision::f32 ? "f32" : "int8";
}

/// The forward path that ran: `path` is "packed" (the packed runtime, with `tally` its linear layers), "dequantized"
/// (a GGUF widened to fp32) or "dense" (a model stored in floats).
struct runtime_path {
  std::string path;
  kernels::activation_precision activations = kernels::activation_precision::int8;
  llama::weight_tally tally;

  [[nodiscard]] bool packed() const noexcept { return path == "packed"; }

  /// `weights`, `activations` (null unless packed) and, when packed, `linear_layers` (counts per stored type and
  /// the bytes their weights take), each key prefixed by `prefix`.
  void add_to(nlohmann::json& out, const std::string& prefix = {}) const {
    out[prefix + "weights"] = path;
    out[prefix + "activations"] = nullptr;
    if (!packed()) return;
    out[prefix + "activations"] = precision_name(activations);
    nlohmann::json types = nlohmann::json::object();
    for (const auto& [type, n] : tally.layers) types[pack::ggml_type_name(type)] = n;
    out[prefix + "linear_layers"] = {{"packed", tally.packed_layers},
                                     {"dense", tally.dense_layers},
                                     {"copied", tally.owned_layers},
                                     {"types", types},
                                     {"packed_bytes", tally.packed_bytes},
                                     {"dense_bytes", tally.dense_bytes}};
  }

  /// In words, for the text report.
  [[nodiscard]] std::string describe() const {
    if (path == "dequantized") return "dequantized: every tensor widened to fp32 as it is read (--weights dequantized)";
    if (path == "dense") return "dense: the model's float tensors widened to fp32 as they are read";
    std::string out = "packed runtime, ";
    out += precision_name(activations);
    out += " activations: linear layers ";
    out += tally.describe();
    return out;
  }
};

}  // namespace ternq::cli
