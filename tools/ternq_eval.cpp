// SPDX-License-Identifier: MIT
// ternq-eval: perplexity of a model on a text slice, and KL divergence / top-1 agreement against a reference model;
// a GGUF runs through the packed runtime (ternary layers multiplied from their blocks) unless --weights dequantized.
#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/checks.hpp"
#include "cli/json_text.hpp"
#include "cli/runtime_report.hpp"
#include "cli/text_slice.hpp"
#include "llama/forward.hpp"
#include "llama/packed_model.hpp"
#include "llama/source.hpp"
#include "llama/streaming_forward.hpp"
#include "tokenize/open.hpp"

namespace {

using ternq::llama::batch;

struct options {
  std::string model_path;
  std::string tokenizer_path;
  std::string text_path;
  std::size_t offset = 0;
  std::size_t tokens = 4096;
  std::size_t window = 0;  // 0: min(model context, 256)
  std::string reference_path;
  std::string collapse = "auto";
  std::string protocol = "all";
  bool json = false;
  unsigned threads = 0;  // 0: all
  ternq::cli::runtime_options runtime;
};

/// How one model's forward pass runs: a GGUF through the packed runtime (ternary layers multiplied from their
/// blocks in the mapped file) unless `--weights dequantized`; any other model, or a GGUF with `--weights
/// dequantized`, block by block widened to fp32.
struct model_run {
  const ternq::llama::model_source* source = nullptr;
  const ternq::llama::gguf_source* packed = nullptr;  // non-null: the packed runtime
  ternq::cli::runtime_path report;                    // the packed runtime's layers are counted as they are loaded

  /// The final hidden states of `passes`, streamed block by block.
  std::vector<ternq::llama::matrix> hidden(const std::vector<batch>& passes, const ternq::cpu_exec& exec) {
    if (packed == nullptr) return ternq::llama::final_hidden_streaming(*source, passes, exec);
    return ternq::llama::final_hidden_streaming(*source, passes, exec, [&](std::size_t l) {
      ternq::llama::packed_layer w = ternq::llama::packed_block(*packed, l, report.activations);
      report.tally.add(w);
      return w;
    });
  }
  [[nodiscard]] ternq::llama::linear_weight output() const {
    if (packed != nullptr) return ternq::llama::packed_output(*packed, report.activations);
    return ternq::llama::linear_weight::dense(ternq::llama::output_matrix(*source));
  }
};

model_run make_run(const ternq::llama::model_source& source, const ternq::cli::runtime_options& opt) {
  model_run r;
  r.source = &source;
  const auto* g = dynamic_cast<const ternq::llama::gguf_source*>(&source);
  if (g != nullptr && opt.weights == "packed") r.packed = g;
  r.report.path = r.packed != nullptr ? "packed" : g != nullptr ? "dequantized" : "dense";
  r.report.activations = opt.precision();
  return r;
}

/// Which predictions of a window are scored, and what the window starts with.
///  - `all` (the default): every next token of each window, `window - 1` of them, the window's tokens as the
///    slice has them (only the first window starts with BOS).
///  - `llama`: llama.cpp's llama-perplexity: each window's first token is replaced by BOS, and only its second
///    half is scored, the logits at positions `window/2 .. window-2` predicting tokens `window/2+1 .. window-1`,
///    each with at least half a window of context.
struct protocol {
  bool bos_first = false;
  std::size_t first = 0;  ///< the first position whose prediction is scored
};

protocol protocol_of(const std::string& name, std::size_t window) {
  if (name == "llama") return {.bos_first = true, .first = window / 2};
  return {};
}

/// Next-token statistics of a model, optionally against a reference.
struct scores {
  double nll = 0.0;
  double reference_nll = 0.0;
  double kl = 0.0;
  std::size_t top1_agree = 0;
  std::size_t count = 0;
};

/// The windows `[first, first + n)` of `b` as their own batch.
batch slice(const batch& b, std::size_t first, std::size_t n) {
  batch out;
  out.sequences = n;
  out.length = b.length;
  out.tokens.assign(b.tokens.begin() + static_cast<std::ptrdiff_t>(first * b.length),
                    b.tokens.begin() + static_cast<std::ptrdiff_t>((first + n) * b.length));
  return out;
}

/// Streams the model (and the reference) block by block over every pass of at most 8 windows: one block of each
/// model and the passes' hidden states are held, never a whole model. Each pass keeps its own shapes, so the
/// figures equal those of a whole-model forward pass per pass.
scores evaluate(model_run& m, model_run* reference, const batch& all, const protocol& scored,
                const ternq::cpu_exec& exec) {
  scores s;
  constexpr std::size_t windows_per_pass = 8;  // bounds the logits held at once
  std::vector<batch> passes;
  for (std::size_t w0 = 0; w0 < all.sequences; w0 += windows_per_pass) {
    passes.push_back(slice(all, w0, std::min(windows_per_pass, all.sequences - w0)));
  }
  const std::vector<ternq::llama::matrix> hm = m.hidden(passes, exec);
  std::vector<ternq::llama::matrix> hr;
  if (reference != nullptr) hr = reference->hidden(passes, exec);
  const ternq::llama::linear_weight out_m = m.output();
  ternq::llama::linear_weight out_r;
  if (reference != nullptr) out_r = reference->output();
  for (std::size_t p = 0; p < passes.size(); ++p) {
    const batch& b = passes[p];
    const Eigen::MatrixXd lp = ternq::llama::log_softmax(ternq::llama::apply_linear(hm[p], out_m, exec));
    Eigen::MatrixXd lr;
    if (reference != nullptr) lr = ternq::llama::log_softmax(ternq::llama::apply_linear(hr[p], out_r, exec));
    for (std::size_t q = 0; q < b.sequences; ++q) {
      for (std::size_t t = scored.first; t + 1 < b.length; ++t) {
        const auto row = static_cast<Eigen::Index>(q * b.length + t);
        const std::int32_t next = b.tokens[static_cast<std::size_t>(row) + 1];
        s.nll -= lp(row, next);
        ++s.count;
        if (reference == nullptr) continue;
        s.reference_nll -= lr(row, next);
        // KL(P_ref || P_model) = sum p_ref (log p_ref - log p_model)
        s.kl += (lr.row(row).array().exp() * (lr.row(row) - lp.row(row)).array()).sum();
        Eigen::Index a = 0, r = 0;
        lp.row(row).maxCoeff(&a);
        lr.row(row).maxCoeff(&r);
        s.top1_agree += a == r ? 1 : 0;
      }
    }
  }
  return s;
}

int run(const options& opt) {
  const auto kind = ternq::llama::detect_model_kind(opt.model_path);
  const auto source = ternq::llama::open_source(opt.model_path, kind);
  const ternq::llama::config& cfg = source->cfg();
  std::unique_ptr<ternq::llama::model_source> reference;
  if (!opt.reference_path.empty()) {
    reference = ternq::llama::open_source(opt.reference_path, ternq::llama::detect_model_kind(opt.reference_path));
    if (reference->cfg().vocab_size != cfg.vocab_size) {
      ternq::fail(ternq::errc::shape_mismatch, "the reference has a vocabulary of ", reference->cfg().vocab_size,
                  ", the model ", cfg.vocab_size);
    }
  }
  // --tokenizer, else the model's own (a Hugging Face directory's files, a GGUF's vocabulary).
  const std::unique_ptr<ternq::tokenizers::tokenizer> tok = opt.tokenizer_path.empty()
                                                                ? ternq::tokenizers::model_tokenizer(opt.model_path)
                                                                : ternq::tokenizers::open_tokenizer(opt.tokenizer_path);
  if (!tok) {
    ternq::fail(ternq::errc::invalid_argument, "--text needs a tokenizer, and the model '", opt.model_path,
                "' brings none: give --tokenizer (a llama2.c .bin, tokenizer.json, tokenizer.model or GGUF)");
  }
  ternq::tokenizers::require_fits(*tok, cfg.vocab_size);
  if (opt.collapse != "auto" && opt.collapse != "on" && opt.collapse != "off") {
    ternq::fail(ternq::errc::invalid_argument, "--collapse-whitespace must be auto, on or off (got '", opt.collapse,
                "')");
  }
  const bool collapse = opt.collapse == "on" || (opt.collapse == "auto" && tok->needs_whitespace_collapse());
  const auto slice = ternq::cli::tokenize(*tok, ternq::cli::read_text(opt.text_path, opt.offset), opt.tokens, collapse);
  const auto& tokens = slice.tokens;
  const std::size_t window = opt.window != 0 ? opt.window : std::min<std::size_t>(cfg.seq_len, 256);
  if (window > cfg.seq_len) {
    ternq::fail(ternq::errc::invalid_argument, "--window ", window, " exceeds the model's context of ", cfg.seq_len);
  }
  // Fewer tokens than asked for: the text ended. Said on stderr with the numbers, as is a tail that fills no
  // window, so that a figure is never read as covering more text than it does.
  if (tokens.size() < opt.tokens) {
    std::fprintf(stderr,
                 "ternq-eval: warning: '%s' from byte %zu gives %zu tokens, fewer than the %zu asked for (--tokens): "
                 "the text ends there\n",
                 opt.text_path.c_str(), opt.offset, tokens.size(), opt.tokens);
  }
  batch all = ternq::cli::windows(tokens, window, tokens.size());
  if (const std::size_t tail = tokens.size() - all.sequences * all.length; tail > 0) {
    std::fprintf(stderr,
                 "ternq-eval: warning: the last %zu of the %zu tokens fill no whole window of %zu and are not "
                 "scored\n",
                 tail, tokens.size(), all.length);
  }
  const protocol scored = protocol_of(opt.protocol, all.length);
  if (scored.first + 1 >= all.length) {
    ternq::fail(ternq::errc::invalid_argument, "windows of ", all.length, " tokens leave no prediction to score",
                opt.protocol == "llama" ? " in their second half" : "", " (--window, --tokens)");
  }
  // llama-perplexity puts BOS first in every window when the tokenizer adds one (Llama's do, Qwen's do not): the
  // token the tokenizer puts before any text.
  const std::vector<std::int32_t> before_text = tok->encode("");
  if (scored.bos_first && !before_text.empty()) {
    for (std::size_t q = 0; q < all.sequences; ++q) all.tokens[q * all.length] = before_text.front();
  }
  const ternq::cpu_exec exec{.threads = opt.threads == 0 ? std::nullopt : std::optional<unsigned>(opt.threads)};
  model_run model = make_run(*source, opt.runtime);
  std::optional<model_run> reference_run;
  if (reference) reference_run = make_run(*reference, opt.runtime);
  const scores s = evaluate(model, reference_run ? &*reference_run : nullptr, all, scored, exec);
  const double nll = s.nll / static_cast<double>(s.count);

  nlohmann::json out = {{"model", opt.model_path},
                        {"format", std::string(ternq::llama::kind_name(kind))},
                        {"protocol", opt.protocol},
                        {"tokens", s.count},
                        {"slice_tokens", tokens.size()},
                        {"windows", all.sequences},
                        {"window", all.length},
                        {"whitespace_collapsed", collapse},
                        {"dropped_characters", slice.dropped},
                        {"nll", nll},
                        {"ppl", std::exp(nll)}};
  model.report.add_to(out);
  if (reference) {
    reference_run->report.add_to(out, "reference_");
    out["reference"] = opt.reference_path;
    out["reference_nll"] = s.reference_nll / static_cast<double>(s.count);
    out["reference_ppl"] = std::exp(out["reference_nll"].get<double>());
    out["kl"] = s.kl / static_cast<double>(s.count);
    out["top1"] = static_cast<double>(s.top1_agree) / static_cast<double>(s.count);
  }
  if (opt.json) {
    std::printf("%s\n", ternq::cli::json_text(out).c_str());
  } else {
    std::printf("model      %s (%s)\n", opt.model_path.c_str(), std::string(ternq::llama::kind_name(kind)).c_str());
    std::printf(
        "text       %s from byte %zu: %zu tokens; whitespace %s; %zu characters the vocabulary lacks "
        "dropped\n",
        opt.text_path.c_str(), opt.offset, tokens.size(), collapse ? "runs collapsed to one space" : "kept",
        slice.dropped);
    std::printf("tokens     %zu predicted in %zu windows of %zu (protocol %s)\n", s.count, all.sequences, all.length,
                opt.protocol.c_str());
    std::printf("weights    %s\n", model.report.describe().c_str());
    if (reference) std::printf("reference  weights %s\n", reference_run->report.describe().c_str());
    std::printf("nll        %.4f nats/token\nperplexity %.4f\n", nll, std::exp(nll));
    if (reference) {
      std::printf("reference  perplexity %.4f (nll %.4f) of %s on the same tokens\n",
                  out["reference_ppl"].get<double>(), out["reference_nll"].get<double>(), opt.reference_path.c_str());
      std::printf("kl         %.5f nats/token against %s\n", out["kl"].get<double>(), opt.reference_path.c_str());
      std::printf("top-1      %.4f agreement\n", out["top1"].get<double>());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"Perplexity of a model on a text slice; KL divergence and top-1 agreement against a reference."};
  app.add_option("--model", opt.model_path, "llama2.c checkpoint, Hugging Face directory, or GGUF")->required();
  app.add_option("--tokenizer", opt.tokenizer_path,
                 "llama2.c .bin, tokenizer.json, tokenizer.model or GGUF (default: the model's own)");
  app.add_option("--text", opt.text_path, "UTF-8 text file")->required();
  app.add_option("--offset", opt.offset, "byte offset of the slice in the text file")
      ->check(ternq::cli::whole_number());
  app.add_option("--tokens", opt.tokens, "tokens of the slice (with BOS)")->check(ternq::cli::positive_count());
  app.add_option("--window", opt.window, "tokens per evaluation window (default: min(context, 256))")
      ->check(ternq::cli::whole_number());
  app.add_option("--protocol", opt.protocol,
                 "all: every next token of each window; llama: as llama-perplexity, each window starts with BOS and "
                 "only its second half is scored (docs/tools.md)")
      ->check(CLI::IsMember({"all", "llama"}));
  app.add_option("--reference", opt.reference_path, "reference model for KL divergence and top-1 agreement");
  app.add_option("--collapse-whitespace", opt.collapse,
                 "auto (when the tokenizer has no newline), on, off: collapse whitespace runs to one space");
  app.add_flag("--json", opt.json, "print one JSON object");
  app.add_option("--threads", opt.threads, "worker threads of the forward pass (0: all; results do not depend on it)")
      ->check(ternq::cli::whole_number());
  ternq::cli::add_runtime_options(app, opt.runtime);
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ternq-eval: %s\n", e.what());
    return 1;
  }
}
