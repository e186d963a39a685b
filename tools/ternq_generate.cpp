// SPDX-License-Identifier: MIT
// ternq-generate: greedy generation from a prompt with a key/value cache, through the packed runtime (a GGUF's
// ternary layers multiplied from their blocks) or the dequantized one, with the speed of the prompt's pass and of
// each decode step.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/checks.hpp"
#include "cli/json_text.hpp"
#include "cli/memory.hpp"
#include "cli/runtime_report.hpp"
#include "llama/decode.hpp"
#include "llama/packed_model.hpp"
#include "llama/source.hpp"
#include "tokenize/detokenize.hpp"
#include "tokenize/open.hpp"

namespace {

struct options {
  std::string model_path;
  std::string tokenizer_path;
  std::string prompt;
  std::string prompt_ids;
  std::size_t tokens = 64;
  unsigned threads = 0;  // 0: all
  bool json = false;
  ternq::cli::runtime_options runtime;
};

/// Token ids written as whitespace-separated numbers.
std::vector<std::int32_t> parse_ids(const std::string& text) {
  std::vector<std::int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    if (word.find_first_not_of("0123456789") != std::string::npos || word.size() > 9) {
      ternq::fail(ternq::errc::invalid_argument, "--prompt-ids: '", word, "' is not a token id");
    }
    ids.push_back(static_cast<std::int32_t>(std::stol(word)));
  }
  return ids;
}

double per_second(std::size_t n, double seconds) { return seconds > 0.0 ? static_cast<double>(n) / seconds : 0.0; }

int run(const options& opt) {
  using clock = std::chrono::steady_clock;
  const auto kind = ternq::llama::detect_model_kind(opt.model_path);
  const std::unique_ptr<ternq::tokenizers::tokenizer> tok =
      !opt.tokenizer_path.empty() ? ternq::tokenizers::open_tokenizer(opt.tokenizer_path)
                                  : ternq::tokenizers::model_tokenizer(opt.model_path);
  std::vector<std::int32_t> prompt;
  if (!opt.prompt_ids.empty()) {
    prompt = parse_ids(opt.prompt_ids);
  } else {
    if (!tok) {
      ternq::fail(ternq::errc::invalid_argument, "the model '", opt.model_path,
                  "' brings no tokenizer: give --tokenizer (a llama2.c .bin, tokenizer.json, tokenizer.model or "
                  "GGUF) or the prompt as --prompt-ids");
    }
    prompt = tok->encode(opt.prompt);
  }
  if (prompt.empty()) {
    ternq::fail(ternq::errc::invalid_argument,
                "the prompt has no tokens (the tokenizer adds no BOS to an empty text): give --prompt or --prompt-ids");
  }

  const auto t_load = clock::now();
  const std::unique_ptr<ternq::llama::model_source> source = ternq::llama::open_source(opt.model_path, kind);
  const ternq::llama::config& cfg = source->cfg();
  if (tok) ternq::tokenizers::require_fits(*tok, cfg.vocab_size);
  for (const std::int32_t id : prompt) (void)ternq::llama::token_row(id, cfg.vocab_size);
  const ternq::cpu_exec exec{.threads = opt.threads == 0 ? std::nullopt : std::optional<unsigned>(opt.threads)};
  ternq::cli::runtime_path path;
  path.activations = opt.runtime.precision();
  const auto* gguf = dynamic_cast<const ternq::llama::gguf_source*>(source.get());
  ternq::llama::generation g;
  double load_seconds = 0.0;
  if (gguf != nullptr && opt.runtime.weights == "packed") {
    path.path = "packed";
    const ternq::llama::packed_model m = ternq::llama::load_packed_model(*gguf, path.activations);
    for (const auto& l : m.layers) path.tally.add(l);
    load_seconds = std::chrono::duration<double>(clock::now() - t_load).count();
    g = ternq::llama::generate_greedy(m, prompt, opt.tokens, exec);
  } else {
    path.path = gguf != nullptr ? "dequantized" : "dense";
    const ternq::llama::model m = ternq::llama::materialize(*source);
    load_seconds = std::chrono::duration<double>(clock::now() - t_load).count();
    g = ternq::llama::generate_greedy(m, prompt, opt.tokens, exec);
  }

  std::vector<std::int32_t> all = prompt;
  all.insert(all.end(), g.tokens.begin(), g.tokens.end());
  std::optional<std::string> text, continuation;
  if (tok) {
    const ternq::io::llama_vocab vocab = tok->gguf_vocab();
    text = ternq::tokenizers::detokenize(vocab, all);
    continuation = text->substr(std::min(text->size(), ternq::tokenizers::detokenize(vocab, prompt).size()));
  }
  const double prompt_rate = per_second(g.prompt_tokens, g.prompt_seconds);
  const double decode_rate = per_second(g.decode_steps, g.decode_seconds);
  if (opt.json) {
    nlohmann::json out = {{"model", opt.model_path},
                          {"format", std::string(ternq::llama::kind_name(kind))},
                          {"prompt_ids", prompt},
                          {"ids", g.tokens},
                          {"prompt_tokens", g.prompt_tokens},
                          {"generated_tokens", g.tokens.size()},
                          {"load_seconds", load_seconds},
                          {"prompt_seconds", g.prompt_seconds},
                          {"prompt_tokens_per_second", prompt_rate},
                          {"decode_steps", g.decode_steps},
                          {"decode_seconds", g.decode_seconds},
                          {"decode_tokens_per_second", decode_rate},
                          {"peak_resident_bytes", ternq::cli::peak_resident_bytes()}};
    out["text"] = text ? nlohmann::json(*text) : nlohmann::json(nullptr);
    out["continuation"] = continuation ? nlohmann::json(*continuation) : nlohmann::json(nullptr);
    path.add_to(out);
    std::printf("%s\n", ternq::cli::json_text(out).c_str());
    return 0;
  }
  if (text) {
    std::printf("%s\n\n", text->c_str());
  } else {
    for (const std::int32_t id : all) std::printf("%d ", id);
    std::printf("\n\n");
  }
  std::printf("model      %s (%s)\n", opt.model_path.c_str(), std::string(ternq::llama::kind_name(kind)).c_str());
  std::printf("weights    %s\n", path.describe().c_str());
  std::printf("load       %.3f s\n", load_seconds);
  std::printf("prompt     %zu tokens in %.4f s: %.1f tokens/s (one batch)\n", g.prompt_tokens, g.prompt_seconds,
              prompt_rate);
  std::printf("generation %zu tokens; %zu decode steps of one token in %.4f s: %.1f tokens/s\n", g.tokens.size(),
              g.decode_steps, g.decode_seconds, decode_rate);
  std::printf("memory     peak resident %s\n", ternq::cli::format_bytes(ternq::cli::peak_resident_bytes()).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{
      "Greedy generation from a prompt with a key/value cache (the prompt in one batch, then one token per step), "
      "printing the text and the tokens per second of the prompt and of the decode steps."};
  app.add_option("--model", opt.model_path, "GGUF, llama2.c checkpoint or Hugging Face directory")->required();
  app.add_option("--tokenizer", opt.tokenizer_path,
                 "llama2.c .bin, tokenizer.json, tokenizer.model or GGUF (default: the model's own)");
  auto* text = app.add_option("--prompt", opt.prompt, "prompt text (encoded with BOS when the tokenizer adds one)");
  app.add_option("--prompt-ids", opt.prompt_ids, "the prompt as whitespace-separated token ids")->excludes(text);
  app.add_option("--tokens", opt.tokens, "tokens to generate (fewer when the model's context fills)")
      ->check(ternq::cli::positive_count());
  ternq::cli::add_runtime_options(app, opt.runtime);
  app.add_option("--threads", opt.threads, "worker threads (0: all)")->check(ternq::cli::whole_number());
  app.add_flag("--json", opt.json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ternq-generate: %s\n", e.what());
    return 1;
  }
}
