// SPDX-License-Identifier: MIT
// ternq-quantize: ternarize every linear layer of a model (sequentially calibrated) or every matrix of a tensor file.
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <ternq/adapters/eigen.hpp>
#include <ternq/core/half.hpp>
#include <ternq/io/safetensors_reader.hpp>
#include <ternq/io/safetensors_writer.hpp>
#include <ternq/pack/compatibility.hpp>
#include <ternq/pack/format.hpp>
#include <ternq/pack/refit.hpp>
#include <ternq/ternq.hpp>

#include "cli/calibration_documents.hpp"
#include "cli/checks.hpp"
#include "cli/default_job.hpp"
#include "cli/memory.hpp"
#include "cli/methods.hpp"
#include "cli/progress_bar.hpp"
#include "cli/report.hpp"
#include "cli/storage.hpp"
#include "cli/text_slice.hpp"
#include "llama/assemble.hpp"
#include "llama/checkpoint.hpp"
#include "llama/fold.hpp"
#include "llama/gguf_io.hpp"
#include "llama/save.hpp"
#include "llama/sequential.hpp"
#include "llama/source.hpp"
#include "tokenize/open.hpp"

namespace {

using ternq::errc;
using ternq::fail;
namespace cli = ternq::cli;
namespace llama = ternq::llama;

struct options {
  std::string model_path;
  std::string tokenizer_path;
  std::string tensors_path;
  std::string grams_path;
  std::string method;
  std::optional<std::size_t> group_size;  // 0: per row; unset: the chosen format's block (128 without one)
  std::uint64_t seed = 0;
  unsigned threads = 0;
  std::string calib_text;
  std::size_t calib_offset = 0;
  std::string calib_tokens;
  std::string calib_jsonl;
  std::size_t calib_seqs = 32;
  std::size_t calib_len = 0;  // 0: min(context, 256)
  std::string out_gguf;
  std::string format = "auto";
  bool refit = false;
  bool allow_fallback = false;
  std::vector<std::string> keep;
  std::string out_fake;
  std::string report;
  std::string collapse = "auto";
  std::string pad_ffn = "auto";
  bool fit_scales = false;
  bool fp_target = false;
  std::string checkpoint_dir;  // empty: a temporary directory beside the first output
  bool resume = false;
  bool keep_checkpoint = false;
  std::string calib_activations = "f32";
  std::size_t stop_after_blocks = 0;  // 0: run to the end
  std::string device = "cpu";
};

/// Refuses, before any work, a method whose results the chosen ternary format cannot hold.
void require_storable(const cli::method_choice& m, const cli::storage& s, ternq::group_size_option g, bool refit) {
  if (!s.ternary || refit) return;
  const auto f = *s.ternary;
  const std::size_t block = ternq::pack::traits_of(f).block_elements;
  const std::string fmt(ternq::pack::name_of(f));
  const char* hint =
      ": pass --refit to re-fit each block symmetrically for the format (reported per tensor), or "
      "--format f16 / f32 to store the dequantized weights";
  if (m.asymmetric)
    fail(errc::unsupported, "--method ", m.name, " gives offsets (alpha T + mu), which ", fmt, " cannot store", hint);
  // A column order is no obstacle: see `storable_orders` in run_model.
  if (ternq::pack::per_tensor_scale(f))
    fail(errc::unsupported, fmt, " needs one scale per tensor, which no method gives", hint);
  if (g && *g % block != 0) {
    fail(errc::unsupported, "--group-size ", *g, " does not fill whole ", block, "-element blocks of ", fmt,
         " (use a multiple of ", block, " or 0 for per-row)", hint);
  }
}

/// The damping of --fp-target's retarget: the driver's own, so the shifted weights and the driver see the same
/// damped Gram matrix.
double fp_damping(const cli::method_choice& m) {
  if (const auto* g = std::get_if<ternq::gptq>(&m.method)) return g->damping;
  return ternq::gptq{}.damping;
}

/// Scales and offsets rounded to fp16, the precision every ternary block stores, so a packed tensor decodes
/// to exactly the weights of the fake-quantized model.
void round_grids_to_fp16(ternq::ternary_matrix& q) {
  const auto round = [](float& x) { x = ternq::fp16_bits_to_fp32(ternq::fp32_to_fp16_bits(x)); };
  for (float& s : q.scales()) round(s);
  for (float& o : q.offsets()) round(o);
}

ternq::cpu_exec exec_of(const options& opt) {
  return {.threads = opt.threads == 0 ? std::nullopt : std::optional<unsigned>(opt.threads)};
}

/// The CPU threads and the --device of the quantizers (the device checked by `run` before any work).
cli::executor executor_of(const options& opt) { return {exec_of(opt), cli::parse_device(opt.device)}; }

ternq::group_size_option group_of(std::size_t group_size) {
  return group_size == 0 ? ternq::per_row : ternq::group_size_option(group_size);
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor mode: every 2-D tensor of a safetensors file on its own.

int run_tensors(const options& opt, const cli::method_choice& choice) {
  if (opt.out_fake.empty()) fail(errc::invalid_argument, "--tensors needs --out-fake OUT.safetensors");
  const ternq::io::safetensors_file weights(opt.tensors_path);
  std::optional<ternq::io::safetensors_file> grams;
  if (!opt.grams_path.empty()) grams.emplace(opt.grams_path);
  if (choice.needs_gram && !grams) {
    fail(errc::invalid_argument, "--method ", choice.name, " needs calibration statistics: --grams C.safetensors");
  }
  std::vector<ternq::io::float_matrix> results;  // kept alive until the writer runs
  std::vector<cli::report_row> rows;
  std::vector<std::string> names;
  for (const auto& info : weights.tensors()) {
    if (info.shape.size() != 2) continue;
    names.push_back(info.name);
  }
  results.reserve(names.size());
  cli::progress_bar bar("ternq-quantize");
  for (const auto& name : names) {
    const ternq::io::float_matrix w = weights.matrix(name);
    std::optional<ternq::io::float_matrix> c;
    if (grams) {
      if (!grams->find(name)) fail(errc::corrupt_file, "--grams has no tensor '", name, "'");
      c = grams->matrix(name);
      if (c->rows() != w.cols() || c->cols() != w.cols()) {
        fail(errc::shape_mismatch, "gram '", name, "' is ", c->rows(), "x", c->cols(), ", the weights have ", w.cols(),
             " columns");
      }
    }
    const auto start = std::chrono::steady_clock::now();
    const ternq::ternary_matrix q =
        c ? cli::run_method(executor_of(opt), choice, w, *c) : cli::run_data_free(executor_of(opt), choice, w);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    results.emplace_back(w.rows(), w.cols());
    ternq::dequantize(q, results.back().view());
    cli::report_row r;
    r.layer = name;
    r.rows = w.rows();
    r.cols = w.cols();
    r.method = choice.name;
    r.relative_weight_error = ternq::relative_weight_error(w, q);
    r.relative_output_error = c ? ternq::relative_output_error(w, q, *c) : -1.0;
    r.seconds = seconds;
    r.format = "F32";
    rows.push_back(r);
    bar.update(rows.size(), names.size(), name);
  }
  ternq::io::safetensors_writer writer;
  for (std::size_t k = 0; k < names.size(); ++k) writer.add(names[k], ternq::io::dtype::f32, results[k].view());
  writer.write(opt.out_fake);
  if (!opt.report.empty()) {
    cli::write_report(opt.report, rows, {{"mode", "tensors"}, {"method", choice.name}, {"tensors", opt.tensors_path}});
  }
  std::printf("%-40s %10s %10s\n", "tensor", "rel E_w", "rel E_x");
  for (const auto& r : rows) {
    std::printf("%-40s %10.5f %10s\n", r.layer.c_str(), r.relative_weight_error,
                r.relative_output_error >= 0 ? std::to_string(r.relative_output_error).c_str() : "-");
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Model mode.

/// The calibration batch of a model run, from `--calib-tokens`, `--calib-text` (consecutive windows from
/// `--calib-offset`) or `--calib-jsonl` (windows sampled from the documents by `--seed`); `described` says what was
/// used, for the report.
llama::batch calibration_batch(const options& opt, const llama::config& cfg, const ternq::tokenizers::tokenizer* tok,
                               nlohmann::json& described) {
  const std::size_t len = opt.calib_len != 0 ? opt.calib_len : std::min<std::size_t>(cfg.seq_len, 256);
  if (len > cfg.seq_len) fail(errc::invalid_argument, "--calib-len ", len, " exceeds the context of ", cfg.seq_len);
  const auto check_ids = [&](const std::vector<std::int32_t>& tokens) {
    for (const auto t : tokens) {
      if (static_cast<std::size_t>(t) >= cfg.vocab_size) {
        fail(errc::invalid_argument, "calibration token ", t, " is outside the vocabulary of ", cfg.vocab_size);
      }
    }
  };
  if (opt.calib_tokens.empty() && tok == nullptr) {
    fail(errc::invalid_argument, opt.calib_jsonl.empty() ? "--calib-text" : "--calib-jsonl",
         " needs a tokenizer, and the model '", opt.model_path,
         "' brings none: give --tokenizer (a llama2.c .bin, tokenizer.json, tokenizer.model or GGUF), or "
         "--calib-tokens");
  }
  const bool collapse =
      tok != nullptr && (opt.collapse == "on" || (opt.collapse == "auto" && tok->needs_whitespace_collapse()));
  if (!opt.calib_jsonl.empty()) {
    std::vector<std::vector<std::int32_t>> documents;
    std::size_t dropped = 0;
    for (std::string& text : cli::read_jsonl_documents(opt.calib_jsonl)) {
      const std::size_t bytes = text.size();
      cli::tokenized t = cli::tokenize(*tok, std::move(text), bytes + 1, collapse);
      dropped += t.dropped;
      check_ids(t.tokens);
      documents.push_back(std::move(t.tokens));
    }
    cli::document_sample sample = cli::sample_windows(documents, len, opt.calib_seqs, opt.seed);
    if (sample.concatenated) {
      std::fprintf(stderr,
                   "ternq-quantize: warning: no calibration document has %zu tokens (--calib-len); windows are drawn "
                   "from the %zu documents joined\n",
                   len, sample.documents);
    }
    described = {{"source", "jsonl"},
                 {"path", opt.calib_jsonl},
                 {"tokenizer", tok->describe()},
                 {"documents", sample.documents},
                 {"documents_long_enough", sample.eligible},
                 {"document_tokens", sample.tokens},
                 {"sampling", sample.concatenated ? "random windows of the joined documents, by --seed"
                                                  : "a random document and start per window, by --seed"},
                 {"seed", opt.seed},
                 {"whitespace_collapsed", collapse},
                 {"dropped_characters", dropped},
                 {"sequences", sample.batch.sequences},
                 {"length", sample.batch.length}};
    return std::move(sample.batch);
  }
  std::vector<std::int32_t> tokens;
  if (!opt.calib_tokens.empty()) {
    tokens = cli::read_token_file(opt.calib_tokens);
    described = {{"source", "tokens"}, {"path", opt.calib_tokens}};
  } else {
    const cli::tokenized t =
        cli::tokenize(*tok, cli::read_text(opt.calib_text, opt.calib_offset), opt.calib_seqs * len, collapse);
    tokens = t.tokens;
    described = {{"source", "text"},
                 {"path", opt.calib_text},
                 {"offset", opt.calib_offset},
                 {"tokenizer", tok->describe()},
                 {"whitespace_collapsed", collapse},
                 {"dropped_characters", t.dropped}};
  }
  check_ids(tokens);
  if (tokens.size() < len) {
    fail(errc::invalid_argument, "the calibration data gives ", tokens.size(), " tokens, fewer than one sequence of ",
         len, " (--calib-len); give a longer text or a smaller --calib-len");
  }
  const llama::batch b = cli::windows(tokens, len, opt.calib_seqs);
  if (b.sequences < opt.calib_seqs) {
    std::fprintf(stderr,
                 "ternq-quantize: warning: the calibration data gives %zu tokens: %zu sequences of %zu, not the "
                 "%zu asked for (--calib-seqs)\n",
                 tokens.size(), b.sequences, b.length, opt.calib_seqs);
  }
  described["sampling"] = "consecutive windows";
  described["sequences"] = b.sequences;
  described["length"] = b.length;
  return b;
}

/// Where the checkpoint of a run lives: `--checkpoint-dir`, else a temporary directory beside the first output
/// (removed when the run ends).
std::filesystem::path checkpoint_directory(const options& opt) {
  if (!opt.checkpoint_dir.empty()) return opt.checkpoint_dir;
  std::filesystem::path beside;
  for (const std::string* out : {&opt.out_gguf, &opt.out_fake, &opt.report}) {
    if (!out->empty()) {
      beside = std::filesystem::absolute(*out).parent_path();
      break;
    }
  }
  if (beside.empty()) beside = std::filesystem::temp_directory_path();
  return beside / (".ternq-checkpoint-" + std::to_string(::getpid()));
}

/// What identifies a run for its checkpoint: the model's files (names and content fingerprints), everything that
/// changes a block's results or how they are stored, and the calibration tokens. Thread counts and output paths
/// are not in it: they change no byte.
nlohmann::json run_fingerprint(const options& opt, const llama::model_source& source, llama::model_kind kind,
                               const cli::method_choice& choice, std::size_t group, const cli::storage& store,
                               const std::string& stores, const llama::config& cfg, const llama::batch* calib) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : source.files()) {
    files.push_back({{"name", f.filename().string()}, {"fingerprint", llama::file_fingerprint(f)}});
  }
  nlohmann::json calibration = nullptr;
  if (calib != nullptr) {
    const std::uint64_t hash = llama::fnv1a(std::span(reinterpret_cast<const std::uint8_t*>(calib->tokens.data()),
                                                      calib->tokens.size() * sizeof(std::int32_t)));
    calibration = {{"sequences", calib->sequences}, {"length", calib->length}, {"tokens_fnv1a", hash}};
  }
  return {{"model", {{"kind", std::string(llama::kind_name(kind))}, {"files", files}}},
          {"method", choice.name},
          {"group_size", group},
          {"seed", opt.seed},
          {"format", opt.out_gguf.empty() ? std::string() : store.name},
          {"stores", stores},
          {"refit", opt.refit},
          {"fit_scales", opt.fit_scales},
          {"fp_target", opt.fp_target},
          {"ffn_hidden", cfg.hidden_dim},
          {"keep", opt.keep},
          {"calibration", calibration},
          {"activations", opt.calib_activations}};
}

int run_model(const options& opt) {
  const auto run_start = std::chrono::steady_clock::now();
  const auto kind = llama::detect_model_kind(opt.model_path);
  const std::unique_ptr<llama::model_source> source = llama::open_source(opt.model_path, kind);
  llama::config cfg = source->cfg();
  // The format (`auto`: from the model's widths), then the group size it stores, then the method with it.
  const cli::storage store = cli::parse_storage(opt.format, cli::linear_widths(cfg));
  const std::size_t group = opt.group_size.value_or(cli::default_group_size(store));
  const cli::method_choice choice = cli::parse_method(opt.method, group_of(group), opt.seed);
  const bool packing = !opt.out_gguf.empty() && store.ternary.has_value();
  // FFN padding: zero hidden units up to the format's block, so that ffn_down (which reads the hidden width) packs
  // instead of falling back to F16. Exact: the model computes the same function. Applied to each block as it is
  // loaded.
  const std::size_t unpadded_hidden = cfg.hidden_dim;
  if (packing && opt.pad_ffn == "auto") {
    cfg.hidden_dim = cli::ffn_padding(store, cfg.hidden_dim);
    if (cfg.hidden_dim != unpadded_hidden) {
      std::printf("ffn hidden width padded from %zu to %zu with zero units (the model computes the same)\n",
                  unpadded_hidden, cfg.hidden_dim);
    }
  }
  // --keep: the named tensors are stored at their type, rounded to it here so that the fake model is the file.
  std::vector<cli::keep_rule> rules;
  for (const auto& k : opt.keep) rules.push_back(cli::parse_keep(k));
  const std::map<std::string, ternq::pack::ggml_type> kept = cli::resolve_keep(rules, cfg, source->has_classifier());
  const llama::matrix_rounding round_kept = [&](const std::string& name, llama::matrix& values) {
    if (const auto it = kept.find(name); it != kept.end()) cli::round_to_type(values, it->second, it->first);
  };
  const llama::layer_keeper keeper = [&](llama::matrix& w, std::size_t layer, llama::linear which) {
    const std::string name = llama::gguf_name(layer, which);
    const auto it = kept.find(name);
    if (it == kept.end()) return false;
    cli::round_to_type(w, it->second, name);
    return true;
  };
  // The tokenizer: --tokenizer, else the model's own (a Hugging Face directory's files, a GGUF's vocabulary). Its
  // GGUF vocabulary is made now, so a tokenizer llama.cpp could not use stops the run before the work.
  const bool gguf_out = !opt.out_gguf.empty() || (!opt.out_fake.empty() && kind == llama::model_kind::gguf);
  std::unique_ptr<ternq::tokenizers::tokenizer> tok;
  if (!opt.tokenizer_path.empty()) {
    tok = ternq::tokenizers::open_tokenizer(opt.tokenizer_path);
  } else if (!opt.calib_text.empty() || !opt.calib_jsonl.empty() || gguf_out) {
    tok = ternq::tokenizers::model_tokenizer(opt.model_path);
  }
  if (tok) ternq::tokenizers::require_fits(*tok, cfg.vocab_size);
  std::optional<ternq::io::llama_vocab> vocab;
  if (tok && gguf_out) vocab = tok->gguf_vocab();
  if (!tok && gguf_out) {
    std::fprintf(stderr,
                 "ternq-quantize: warning: the model brings no tokenizer and no --tokenizer was given: the GGUF output "
                 "gets tokenizer.ggml.model = no_vocab, which llama.cpp loads but cannot tokenize text with\n");
  }
  const bool calibrated = !opt.calib_text.empty() || !opt.calib_tokens.empty() || !opt.calib_jsonl.empty();
  if (opt.fit_scales && (choice.asymmetric || !calibrated)) {
    fail(errc::invalid_argument, "--fit-scales needs a symmetric method and calibration data (--method ", choice.name,
         choice.asymmetric ? " has offsets)" : ", no --calib-text, --calib-jsonl or --calib-tokens)");
  }
  if (opt.fp_target && !calibrated) {
    fail(errc::invalid_argument, "--fp-target needs calibration data (--calib-text, --calib-jsonl or --calib-tokens)");
  }
  if (choice.needs_gram && !calibrated) {
    fail(errc::invalid_argument, "--method ", choice.name, " needs calibration data: --calib-text, --calib-jsonl or --calib-tokens");
  }
  if (!opt.out_gguf.empty()) {
    std::vector<std::size_t> widths;  // of the layers to be ternarized
    const std::vector<std::size_t> all_widths = cli::linear_widths(cfg);
    const std::size_t per_block = llama::all_linears.size();
    for (std::size_t k = 0; k < all_widths.size(); ++k) {
      if (!kept.contains(llama::gguf_name(k / per_block, llama::all_linears[k % per_block]))) {
        widths.push_back(all_widths[k]);
      }
    }
    require_storable(choice, store, group_of(group), opt.refit);
    cli::require_some_packed(store, widths, opt.allow_fallback);
    std::printf("format %s%s, group size %s\n", store.name.c_str(), opt.format == "auto" ? " (auto)" : "",
                group == 0 ? "per row" : std::to_string(group).c_str());
  }

  // The per-layer quantizer: the method, then (for a ternary GGUF) the format's fp16 grids or an opt-in re-fit.
  std::map<std::pair<std::size_t, llama::linear>, double> refits;  // the relative change of each re-fit
  // Format-aware calibration: the driver rounds each block's grid to the format's fp16 before the block's codes
  // and error are computed, so the later columns compensate for the rounding and the file is the fake model.
  cli::method_choice method = choice;
  if (packing) {
    if (auto* g = std::get_if<ternq::gptq>(&method.method)) g->precision = ternq::grid_precision::fp16;
  }
  // Storable orders: a block format keeps columns in their order, so a reordering method keeps its order only
  // where the model absorbs it (llama/fold.hpp): ffn_down's any order, attn_output's projected to whole heads.
  // The layers that read the residual stream take their columns in sequence. Reported per layer.
  const bool storable_orders = packing && choice.permutes;
  std::map<std::pair<std::size_t, llama::linear>, std::string> orders;
  std::map<std::pair<std::size_t, llama::linear>, ternq::scale_refit_report> fitted;
  // An empty gram: no calibration data (data-free methods only).
  const llama::layer_quantizer quantize = [&](const llama::matrix& w, const Eigen::MatrixXd& gram, std::size_t layer,
                                              llama::linear which) {
    cli::method_choice layer_method = method;
    if (storable_orders && gram.size() != 0) {
      auto& g = std::get<ternq::gptq>(layer_method.method);
      const std::string name = cli::order_name(g.order);
      switch (llama::fold_of(which)) {
        case llama::order_fold::none:
          g.order = ternq::sequential{};
          orders[{layer, which}] = "sequential (reads the residual stream: no exact fold of " + name + ")";
          break;
        case llama::order_fold::ffn_hidden:
          orders[{layer, which}] = name + ", folded into ffn_gate/ffn_up rows";
          break;
        case llama::order_fold::attention_heads: {
          const ternq::ternary_matrix free = cli::run_method(executor_of(opt), layer_method, w, gram);
          std::vector<std::size_t> order(static_cast<std::size_t>(w.cols()));
          for (std::size_t j = 0; j < order.size(); ++j) order[j] = free.original_column(j);
          g.order = ternq::given_order{llama::head_consistent_order(order, cfg)};
          orders[{layer, which}] = name + " by whole heads, folded into attn_q/attn_k/attn_v rows";
          break;
        }
      }
    }
    ternq::ternary_matrix q = gram.size() == 0 ? cli::run_data_free(executor_of(opt), layer_method, w)
                                               : cli::run_method(executor_of(opt), layer_method, w, gram);
    // --fit-scales: the scales of each row re-fitted jointly to the layer's output error, codes fixed.
    if (opt.fit_scales && gram.size() != 0) {
      const auto fit = cli::refit_scales(executor_of(opt), q, w, gram,
                                         packing ? ternq::grid_precision::fp16 : ternq::grid_precision::fp32);
      fitted[{layer, which}] = fit;
    }
    if (!packing) return q;
    // A permutation left here is folded into the model before packing, so it is no conflict: the checks and a
    // re-fit see the codes in their stored order, which is the order the file will have.
    std::vector<std::size_t> folded;
    if (storable_orders && q.has_permutation()) {
      folded.assign(q.permutation().begin(), q.permutation().end());
      q.clear_permutation();
    }
    const auto conflict = ternq::pack::find_conflict(q, *store.ternary);
    if (conflict && conflict->refittable) {
      double change = 0.0;
      q = ternq::pack::refit_symmetric(q, *store.ternary, &change);
      refits[{layer, which}] = change;
    }
    if (!folded.empty()) q.set_permutation(std::move(folded));
    // fp16 grids also for a layer the format cannot hold: it falls back to another ternary type or to F16,
    // which then stores it exactly.
    round_grids_to_fp16(q);
    return q;
  };

  // How each finished block is stored in the checkpoint: as the GGUF will hold it, as exact F32 values when only
  // a fake-quantized model is asked for, or not at all when no file is written.
  llama::gguf_storage where{.format = store.ternary.value_or(ternq::pack::format::tq2_0),
                            .f16_when_lossless = store.name != "f32",
                            .keep = kept};
  if (store.ternary) where.fallbacks = cli::fallback_chain(*store.ternary);
  std::string stores = "gguf";
  if (opt.out_gguf.empty()) {
    where = llama::gguf_storage{.format = ternq::pack::format::tq2_0, .f16_when_lossless = false, .keep = {}};
    stores = opt.out_fake.empty() ? "none" : "f32";
  }
  const auto precision =
      opt.calib_activations == "bf16" ? llama::activation_precision::bf16 : llama::activation_precision::f32;

  std::optional<llama::batch> calib;
  nlohmann::json calibration_data = nullptr;
  if (calibrated) calib = calibration_batch(opt, cfg, tok.get(), calibration_data);
  const std::filesystem::path ck_dir = checkpoint_directory(opt);
  llama::checkpoint ck(ck_dir,
                       run_fingerprint(opt, *source, kind, choice, group, store, stores, cfg, calib ? &*calib : nullptr),
                       opt.resume);
  // A checkpoint the user did not name is removed however the run ends.
  struct temporary_removal {
    llama::checkpoint* ck;
    ~temporary_removal() {
      if (ck != nullptr) ck->remove_all();
    }
  } temporary{opt.checkpoint_dir.empty() ? &ck : nullptr};
  const std::size_t first_block = ck.blocks_done();
  if (first_block > 0) {
    std::printf("resuming from %s: %zu of %zu blocks done\n", ck_dir.string().c_str(), first_block, cfg.n_layers);
  }
  // The calibration hidden state entering the next block: the embeddings, or the checkpoint's.
  llama::matrix h;
  // --fp-target: the unquantized model's hidden state beside it, checkpointed with it as the columns after dim.
  std::optional<llama::fp_reference> reference;
  if (calib) {
    if (first_block > 0) {
      h = ck.activations(calib->size(), opt.fp_target ? 2 * cfg.dim : cfg.dim, precision);
      if (opt.fp_target) {
        const auto d = static_cast<Eigen::Index>(cfg.dim);
        reference = llama::fp_reference{.h = h.rightCols(d), .damping = fp_damping(choice)};
        h = llama::matrix(h.leftCols(d));
      }
    } else {
      h = llama::embed(*source, *calib, round_kept);
      if (opt.fp_target) reference = llama::fp_reference{.h = h, .damping = fp_damping(choice)};
    }
  }

  cli::progress_bar bar("ternq-quantize");
  const std::size_t total = cfg.n_layers * llama::all_linears.size();
  // The ETA follows this run's pace: whole blocks once one is done (a block's layers differ widely in cost),
  // layers before that.
  std::size_t run_blocks = 0;
  double blocks_seconds = 0.0;
  const auto progress = [&](const llama::layer_result& r, std::size_t done, std::size_t) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    const std::size_t run_done = done - first_block * llama::all_linears.size();
    double eta = elapsed / static_cast<double>(run_done) * static_cast<double>(total - done);
    if (run_blocks > 0) {
      const double per_block = blocks_seconds / static_cast<double>(run_blocks);
      const auto left = static_cast<double>(cfg.n_layers - first_block - run_blocks);
      eta = std::max(0.0, per_block * left - (elapsed - blocks_seconds));
    }
    bar.update(done, total,
               "blk." + std::to_string(r.layer) + "/" + std::to_string(cfg.n_layers) + " " +
                   std::string(llama::linear_name(r.which)),
               "elapsed " + cli::format_duration(elapsed) + ", ETA " + cli::format_duration(eta) + ", peak " +
                   cli::format_bytes(cli::peak_resident_bytes()));
  };
  const auto row_of = [&](const llama::layer_result& r, const llama::stored_entry& e) {
    cli::report_row row;
    row.layer = llama::gguf_name(r.layer, r.which);
    row.rows = r.rows;
    row.cols = r.cols;
    row.method = choice.name;
    row.relative_weight_error = r.relative_weight_error;
    row.relative_output_error = calibrated ? r.relative_output_error : -1.0;
    row.seconds = r.seconds;
    if (!opt.out_gguf.empty()) {
      row.format = e.info.type;
      row.format_reason = e.info.reason;
    }
    if (const auto o = orders.find({r.layer, r.which}); o != orders.end()) {
      row.order = o->second;
    } else if (const auto* g = std::get_if<ternq::gptq>(&choice.method)) {
      row.order = cli::order_name(g->order);
    }
    if (const auto rf = refits.find({r.layer, r.which}); rf != refits.end()) row.refit_change = rf->second;
    if (const auto f = fitted.find({r.layer, r.which}); f != fitted.end()) {
      row.order += "; scales fitted (" + std::to_string(f->second.rows_changed) + " rows, E_x " +
                   std::to_string(f->second.output_error_before) + " -> " +
                   std::to_string(f->second.output_error_after) + ")";
    }
    return row;
  };

  // Block by block: load (widened to fp32), quantize from the hidden state entering it, fold orders, store, and
  // pass the hidden state on. Only this block and the calibration activations are ever held in fp32.
  for (std::size_t l = first_block; l < cfg.n_layers; ++l) {
    llama::block_times times;
    auto t0 = std::chrono::steady_clock::now();
    llama::layer w = source->block(l);
    llama::pad_block_ffn(w, cfg.hidden_dim);
    times.load = llama::detail::seconds_since(t0);
    const std::size_t before = l * llama::all_linears.size();
    std::vector<llama::layer_result> results =
        calib ? llama::quantize_block(cfg, l, w, h, *calib, quantize, progress, keeper, exec_of(opt), before, total,
                                      &times, reference ? &*reference : nullptr)
              : llama::quantize_block_data_free(l, w, quantize, progress, keeper, before, total, &times);
    if (calib && precision == llama::activation_precision::bf16) {
      llama::round_to_bf16(h);
      if (reference) llama::round_to_bf16(reference->h);
    }
    t0 = std::chrono::steady_clock::now();
    std::array<const ternq::ternary_matrix*, 7> ternary{};
    if (packing) {
      llama::block_ternaries t;
      for (auto& r : results) {
        if (r.kept) continue;
        ternary[static_cast<std::size_t>(r.which)] = &r.quantized;
        ternq::ternary_matrix* const q = &r.quantized;
        switch (r.which) {
          case llama::linear::q: t.q = q; break;
          case llama::linear::k: t.k = q; break;
          case llama::linear::v: t.v = q; break;
          case llama::linear::o: t.o = q; break;
          case llama::linear::gate: t.gate = q; break;
          case llama::linear::up: t.up = q; break;
          case llama::linear::down: t.down = q; break;
        }
      }
      // Fold the orders calibration chose for ffn_down and attn_output into the layers that feed them.
      if (storable_orders) {
        (void)llama::fold_ffn_down(w, t);
        (void)llama::fold_attention_output(w, cfg, t);
      }
    }
    const std::vector<llama::stored_entry> entries = llama::block_entries(l, w, cfg, ternary, where, stores != "none");
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : results) {
      const std::string name = llama::gguf_name(r.layer, r.which);
      const auto e = std::find_if(entries.begin(), entries.end(), [&](const auto& x) { return x.info.name == name; });
      rows.push_back(cli::to_json(row_of(r, *e)));
    }
    results.clear();  // the ternary matrices: stored now
    times.write = llama::detail::seconds_since(t0);
    const nlohmann::json record = {{"rows", rows},
                                   {"times", {{"load_s", times.load},
                                              {"forward_s", times.forward},
                                              {"gram_s", times.gram},
                                              {"quantize_s", times.quantize},
                                              {"write_s", times.write}}},
                                   {"peak_resident_bytes", cli::peak_resident_bytes()}};
    if (reference) {
      llama::matrix both(h.rows(), h.cols() + reference->h.cols());
      both << h, reference->h;
      ck.commit_block(l, entries, &both, precision, record);
    } else {
      ck.commit_block(l, entries, calib ? &h : nullptr, precision, record);
    }
    ++run_blocks;
    blocks_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    if (opt.stop_after_blocks != 0 && l + 1 == opt.stop_after_blocks && l + 1 < cfg.n_layers) {
      std::fflush(stdout);
      std::fprintf(stderr,
                   "ternq-quantize: stopped after block %zu of %zu as asked (--stop-after-blocks); the checkpoint is in "
                   "%s: run again with --resume to finish\n",
                   l + 1, cfg.n_layers, ck_dir.string().c_str());
      return 3;
    }
  }
  // Nothing of the calibration is needed any more.
  h = llama::matrix();
  reference.reset();

  // The outputs, assembled from the checkpoint's block files and the source, one tensor at a time.
  const llama::block_files blocks(ck, cfg.n_layers);
  std::optional<cli::file_summary> summary;
  std::map<std::string, std::string> stored_as;
  if (!opt.out_gguf.empty()) {
    const auto stored = llama::assemble_gguf(*source, cfg, blocks, where, round_kept, vocab ? &*vocab : nullptr,
                                             opt.out_gguf, "ternq " + choice.name);
    const std::string chosen = store.ternary ? std::string(ternq::pack::name_of(*store.ternary))
                               : store.name == "f32" ? "F32"
                                                     : "F16";
    summary = cli::summarize(stored, chosen, std::filesystem::file_size(opt.out_gguf));
    if (cfg.hidden_dim != unpadded_hidden) {
      summary->padded_hidden = {unpadded_hidden, cfg.hidden_dim};
      summary->padding_weights =
          static_cast<std::uint64_t>(cfg.n_layers) * 3 * cfg.dim * (cfg.hidden_dim - unpadded_hidden);
    }
  }
  if (!opt.out_fake.empty()) {
    switch (kind) {
      case llama::model_kind::llama2c:
        llama::save_llama2c(llama::assemble_fake_model(*source, cfg, blocks, round_kept), opt.out_fake);
        break;
      case llama::model_kind::hugging_face:
        llama::assemble_fake_hf(*source, cfg, blocks, round_kept, opt.model_path, opt.out_fake);
        break;
      case llama::model_kind::gguf:
        llama::assemble_fake_gguf(*source, cfg, blocks, round_kept, vocab ? &*vocab : nullptr, opt.out_fake,
                                  "ternq " + choice.name + " (dequantized)");
        break;
    }
  }

  std::vector<cli::report_row> rows;
  nlohmann::json block_times = nlohmann::json::array();
  llama::block_times sum;
  for (const auto& record : ck.records()) {
    for (const auto& r : record.at("rows")) rows.push_back(cli::row_from_json(r));
    block_times.push_back(record.at("times"));
    const auto& t = record.at("times");
    sum += {t.at("load_s").get<double>(), t.at("forward_s").get<double>(), t.at("gram_s").get<double>(),
            t.at("quantize_s").get<double>(), t.at("write_s").get<double>()};
  }
  const std::uint64_t peak = cli::peak_resident_bytes();
  if (!opt.report.empty()) {
    cli::write_report(opt.report, rows,
                      {{"mode", "model"},
                       {"model", opt.model_path},
                       {"method", choice.name},
                       {"group_size", group},
                       {"calibrated", calibrated},
                       {"fp_target", opt.fp_target},
                       {"calibration_activations", calibrated ? opt.calib_activations : std::string()},
                       {"calibration_data", calibration_data},
                       {"format", opt.out_gguf.empty() ? "" : store.name},
                       {"ffn_hidden", {{"model", unpadded_hidden}, {"stored", cfg.hidden_dim}}},
                       {"resumed_at_block", first_block},
                       {"block_times", block_times},
                       {"peak_resident_bytes", peak},
                       {"gguf", summary ? cli::to_json(*summary) : nlohmann::json()}});
  }
  if (!opt.checkpoint_dir.empty() && !opt.keep_checkpoint) ck.remove_all();
  double ew = 0.0, ex = 0.0, seconds = 0.0;
  std::printf("%-28s %11s %10s %10s %9s  %s\n", "layer", "shape", "rel E_w", "rel E_x", "time s", "stored as");
  for (const auto& r : rows) {
    const std::string shape = std::to_string(r.rows) + "x" + std::to_string(r.cols);
    std::printf("%-28s %11s %10.5f %10s %9.3f  %s\n", r.layer.c_str(), shape.c_str(), r.relative_weight_error,
                r.relative_output_error >= 0 ? std::to_string(r.relative_output_error).c_str() : "-", r.seconds,
                cli::stored_as(r).c_str());
    ew += r.relative_weight_error;
    ex += r.relative_output_error;
    seconds += r.seconds;
  }
  std::printf("%zu layers, mean rel E_w %.5f", rows.size(), ew / static_cast<double>(rows.size()));
  if (calibrated) std::printf(", mean rel E_x %.5f", ex / static_cast<double>(rows.size()));
  std::printf(", %.2f s quantizing\n", seconds);
  std::printf("time per stage over %zu blocks: load %.2f s, forward %.2f s, gram %.2f s, quantize %.2f s, write %.2f s; "
              "peak resident memory %s\n",
              cfg.n_layers, sum.load, sum.forward, sum.gram, sum.quantize, sum.write, cli::format_bytes(peak).c_str());
  if (summary) {
    const std::string warning = cli::partial_warning(*summary);
    if (!warning.empty()) {
      std::fflush(stdout);
      std::fprintf(stderr, "ternq-quantize: %s\n", warning.c_str());
    }
    std::printf("%s\n", cli::summary_line(*summary).c_str());
  }
  return 0;
}

int run(const options& opt) {
  if (!opt.model_path.empty() && !opt.tensors_path.empty())
    fail(errc::invalid_argument, "give --model or --tensors, not both");
  const cli::device_choice device = cli::parse_device(opt.device);
  if (opt.model_path.empty() && opt.tensors_path.empty()) {
    if (!opt.method.empty()) (void)cli::parse_method(opt.method, ternq::per_row, opt.seed);  // a bad name first
    cli::require_device(device);
    return cli::run_default_job(opt.method, opt.group_size.value_or(128), opt.seed, executor_of(opt));
  }
  if (opt.method.empty()) fail(errc::invalid_argument, "--method is required with --model or --tensors");
  if (opt.collapse != "auto" && opt.collapse != "on" && opt.collapse != "off") {
    fail(errc::invalid_argument, "--collapse-whitespace must be auto, on or off (got '", opt.collapse, "')");
  }
  // Tensor mode has no format: group 128 unless given. Model mode parses the method again once the format's
  // default group size is known; parsing here reports a bad name before the model is read.
  const auto choice = cli::parse_method(opt.method, group_of(opt.group_size.value_or(128)), opt.seed);
  cli::require_device(device);
  (void)cli::parse_storage(opt.format, {});  // a mistyped --format, too, before the model is read
  cli::require_writable(opt.out_gguf, "--out-gguf");
  cli::require_writable(
      opt.out_fake, "--out-fake",
      !opt.model_path.empty() && llama::detect_model_kind(opt.model_path) == llama::model_kind::hugging_face);
  cli::require_writable(opt.report, "--report");
  cli::require_writable(opt.checkpoint_dir, "--checkpoint-dir", true);
  return opt.tensors_path.empty() ? run_model(opt) : run_tensors(opt, choice);
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{
      "Ternarize the linear layers of a model (llama2.c checkpoint, Hugging Face directory or GGUF), sequentially "
      "calibrated, or every matrix of a safetensors file. Without --model or --tensors: quantize the embedded "
      "LLM-like layer and print a table."};
  app.option_defaults()->always_capture_default();
  app.footer(
      "Which format (llama.cpp on x86, 4096x4096 matrix-vector product, 2 threads): TQ2_0 is the fastest (168 us; "
      "widths multiple of 256), TQ1_0 the smallest (1.6875 bits per weight, 369 us), Q2_0 the one for small widths "
      "(multiples of 64) but slow on x86 in llama.cpp (3,623 us: no SIMD path); F16 681 us. --format auto picks "
      "TQ2_0 when some linear layer's width is a multiple of 256, else Q2_0. Layers the format cannot hold go to Q2_0 "
      "(from TQ2_0/TQ1_0), else F16; a format that holds none of them is refused unless --allow-fallback. See "
      "docs/formats.md.");
  app.add_option("--model", opt.model_path, "llama2.c checkpoint, Hugging Face Llama directory, or GGUF");
  app.add_option("--tokenizer", opt.tokenizer_path,
                 "tokenizer for --calib-text and the GGUF vocabulary: llama2.c .bin, tokenizer.json, tokenizer.model "
                 "or GGUF (default: the model's own)");
  app.add_option("--tensors", opt.tensors_path, "safetensors file: quantize every 2-D tensor on its own");
  app.add_option("--grams", opt.grams_path, "safetensors file with the Gram matrix of each tensor, by name");
  app.add_option("--method", opt.method,
                 "absmean|twn|optimal|optimal_aga|itf|itf_aga|gptq_[act_|ssr_|random_]<grid>|catq[_std][_paper]");
  app.add_option("--group-size", opt.group_size,
                 "columns per group (0: one group per row); default: the block of the chosen format (256 tq2_0/tq1_0, "
                 "64 q2_0, 128 pq2_0/ptq1_0, per row i2_s), 128 for f16/f32, tensor mode and the embedded layer")
      ->check(cli::whole_number());
  app.add_option("--seed", opt.seed, "seed (random block order; the embedded default layer)")
      ->check(cli::whole_number());
  app.add_option("--threads", opt.threads, "worker threads (0: all)")->check(cli::whole_number());
  app.add_option("--device", opt.device,
                 "cpu, or cuda[:N]: run the quantizer on CUDA device N (every method; the CPU's results, bit for "
                 "bit or to rounding: docs/cuda.md; needs a build with the CUDA toolkit)");
  auto* text = app.add_option("--calib-text", opt.calib_text, "calibration text (UTF-8)");
  app.add_option("--calib-offset", opt.calib_offset, "byte offset of the calibration slice")
      ->check(cli::whole_number())
      ->needs(text);
  auto* toks = app.add_option("--calib-tokens", opt.calib_tokens, "calibration token ids (whitespace-separated)");
  auto* jsonl = app.add_option("--calib-jsonl", opt.calib_jsonl,
                               "calibration documents: JSONL, one {\"text\": ...} per line; --calib-seqs windows "
                               "sampled from them by --seed (a random document long enough, a random start)");
  text->excludes(toks);
  jsonl->excludes(text);
  jsonl->excludes(toks);
  app.add_option("--calib-seqs", opt.calib_seqs, "calibration sequences")->check(cli::positive_count());
  app.add_option("--calib-len", opt.calib_len, "tokens per calibration sequence (default: min(context, 256))")
      ->check(cli::whole_number());
  auto* gguf = app.add_option("--out-gguf", opt.out_gguf, "write a GGUF that llama.cpp loads");
  app.add_option("--format", opt.format,
                 "auto|tq2_0|tq1_0|q2_0|pq2_0|ptq1_0|i2_s, or f16|f32 (dequantized); auto: tq2_0 where widths allow, "
                 "else q2_0 (see below)");
  app.add_flag("--allow-fallback", opt.allow_fallback,
               "write the GGUF even when --format holds none of the linear layers (they fall back to Q2_0 / F16)")
      ->needs(gguf);
  app.add_option("--keep", opt.keep,
                 "'PATTERN=TYPE' (repeatable): store tensors whose GGUF name matches the glob at TYPE (q8_0, f16, "
                 "bf16, f32) instead of ternarizing them, e.g. 'blk.0.ffn_down=q8_0', 'token_embd=q8_0'");
  app.add_option("--pad-ffn", opt.pad_ffn,
                 "auto: when packing, pad the FFN hidden width with zero units to the format's block where it is "
                 "not a multiple (so ffn_down packs; exact), off: never")
      ->check(CLI::IsMember({"auto", "off"}));
  app.add_flag("--fit-scales", opt.fit_scales,
               "after calibration, re-fit the scales of each row jointly to the layer's output error with the codes "
               "fixed (symmetric grids; E_x never increases)");
  app.add_flag("--fp-target", opt.fp_target,
               "calibrate each layer toward the unquantized model's output (its inputs from an unquantized forward "
               "pass carried beside the quantized one), not toward its own weights on the quantized model's inputs; "
               "costs a second forward pass and the block's unquantized activations");
  app.add_flag("--refit", opt.refit, "re-fit tensors symmetrically per block where the format needs it");
  app.add_option("--out-fake", opt.out_fake, "write the fake-quantized model in the input's format");
  auto* ckdir = app.add_option("--checkpoint-dir", opt.checkpoint_dir,
                               "keep each finished block (its stored tensors and the calibration activations after it) "
                               "in this directory, so that an interrupted run continues with --resume; removed when "
                               "the run ends unless --keep-checkpoint (default: a temporary directory beside the "
                               "output, always removed)");
  app.add_flag("--resume", opt.resume,
               "continue the run checkpointed in --checkpoint-dir from its last finished block (a checkpoint of "
               "another model, method, options or calibration is refused; an empty directory starts from block 0); "
               "the files are byte-identical to an uninterrupted run's")
      ->needs(ckdir);
  app.add_flag("--keep-checkpoint", opt.keep_checkpoint, "do not remove --checkpoint-dir when the run ends")
      ->needs(ckdir);
  app.add_option("--calib-activations", opt.calib_activations,
                 "precision of the calibration hidden state kept between blocks (and in the checkpoint): f32, or "
                 "bf16 (half the memory and disk; rounds the residual stream at block boundaries; stated in the "
                 "report)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--stop-after-blocks", opt.stop_after_blocks,
                 "stop (exit code 3) once this many blocks are checkpointed, as a kill would; for tests and for "
                 "measuring a few blocks of a large model (0: run to the end)")
      ->check(cli::whole_number())
      ->needs(ckdir);
  app.add_option("--report", opt.report, "per-layer report (JSON; a CSV is written beside it)");
  app.add_option("--collapse-whitespace", opt.collapse, "auto, on, off (for tokenizers without a newline)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ternq-quantize: %s\n", e.what());
    return 1;
  }
}
