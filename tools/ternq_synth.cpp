// SPDX-License-Identifier: MIT
// ternq-synth: writes a synthetic Hugging Face Llama directory of real shapes (tiny, TinyLlama 1.1B, Llama 2 7B)
// with LLM-like weight statistics, streamed in bounded memory, for testing the pipeline at real sizes.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/checks.hpp"
#include "synth/synthetic_llama.hpp"

namespace {

struct options {
  std::string out;
  std::string preset = "tiny";
  std::optional<std::size_t> dim, hidden, layers, heads, kv_heads, vocab, context;
  std::string dtype = "bf16";
  std::uint64_t seed = 0;
  unsigned threads = 0;  // 0: all
  std::uint64_t shard_size = 5'000'000'000;
  bool force = false;
};

int run(const options& opt) {
  ternq::synth::options s;
  s.config = ternq::synth::preset_config(opt.preset);
  auto& c = s.config;
  if (opt.dim) c.hidden_size = *opt.dim;
  if (opt.hidden) c.intermediate_size = *opt.hidden;
  if (opt.layers) c.num_hidden_layers = *opt.layers;
  if (opt.heads) c.num_attention_heads = *opt.heads;
  if (opt.kv_heads) c.num_key_value_heads = *opt.kv_heads;
  if (opt.vocab) c.vocab_size = *opt.vocab;
  if (opt.context) c.max_position_embeddings = *opt.context;
  s.type = opt.dtype == "f32"   ? ternq::io::dtype::f32
           : opt.dtype == "f16" ? ternq::io::dtype::f16
                                : ternq::io::dtype::bf16;
  s.seed = opt.seed;
  s.threads = opt.threads;
  s.shard_size = opt.shard_size;
  s.overwrite = opt.force;
  s.on_file = [](const std::filesystem::path& path, std::uint64_t bytes) {
    std::fprintf(stderr, "wrote %s (%.1f MB)\n", path.string().c_str(), static_cast<double>(bytes) / 1e6);
  };
  std::printf("ternq-synth: %s: %s, dim %zu, hidden %zu, %zu layers, %zu heads (%zu kv), vocab %zu, context %zu, %s\n",
              opt.preset.c_str(), c.model_type.c_str(), c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
              c.num_key_value_heads, c.vocab_size, c.max_position_embeddings, opt.dtype.c_str());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const ternq::synth::summary r = ternq::synth::write_synthetic_llama(opt.out, s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("ternq-synth: %s: %zu tensors, %.1f M parameters, %.1f MB in %zu file%s, %.1f s (%.0f MB/s)\n",
              opt.out.c_str(), r.tensors, static_cast<double>(r.parameters) / 1e6,
              static_cast<double>(r.total_size) / 1e6, r.files.size(), r.files.size() == 1 ? "" : "s", seconds,
              static_cast<double>(r.total_size) / 1e6 / seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{
      "Writes a synthetic Hugging Face Llama directory (config.json + safetensors) of real shapes, with LLM-like "
      "weight statistics (per-row scales, heavy tails, outlier input channels), in bounded memory."};
  app.add_option("--out", opt.out, "output directory (created; must hold no model files unless --force)")->required();
  std::vector<std::string> preset_names;
  for (const auto& p : ternq::synth::presets()) preset_names.emplace_back(p.name);
  app.add_option("--preset", opt.preset, "model shape and family (see docs/tools.md)")
      ->check(CLI::IsMember(preset_names));
  const auto count = [&](const char* name, std::optional<std::size_t>& field, const char* what) {
    app.add_option(name, field, what)->check(ternq::cli::positive_count());
  };
  count("--dim", opt.dim, "hidden size (overrides the preset)");
  count("--hidden", opt.hidden, "FFN intermediate size");
  count("--layers", opt.layers, "transformer blocks");
  count("--heads", opt.heads, "attention heads");
  count("--kv-heads", opt.kv_heads, "key/value heads");
  count("--vocab", opt.vocab, "vocabulary size");
  count("--context", opt.context, "max_position_embeddings");
  app.add_option("--dtype", opt.dtype, "weight type: bf16 (default), f16, f32")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  app.add_option("--seed", opt.seed, "seed; the same seed writes the same bytes whatever --threads")
      ->check(ternq::cli::whole_number());
  app.add_option("--threads", opt.threads, "generating threads (0: all)")->check(ternq::cli::whole_number());
  app.add_option("--shard-size", opt.shard_size,
                 "largest shard (bytes of tensor data; 5GB, 500MB, 64KiB ...); larger models are written as shards "
                 "with model.safetensors.index.json")
      ->transform(CLI::AsSizeValue(true));
  app.add_flag("--force", opt.force, "replace the model files of an earlier run in --out");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ternq-synth: %s\n", e.what());
    return 1;
  }
}
