// SPDX-License-Identifier: MIT
// Where each tensor of a GGUF goes: format choice and default group, fallback chain, refusal of a format that packs
// nothing, --keep rules, file type, special tokens as llama.cpp's converter writes them, and the summary figures.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/llama2c_tokenizer.hpp>
#include <ternq/pack/q8_0.hpp>

#include "cli/methods.hpp"
#include "cli/storage.hpp"
#include "cli/suggest.hpp"
#include "llama/gguf_io.hpp"
#include "llama/sequential.hpp"
#include "tokenize/llama2c.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using pack::format;
using pack::ggml_type;

/// Every linear layer quantized with the exact symmetric optimum at `group`, scales rounded to fp16 (as
/// ternq-quantize does for a ternary GGUF); the model's weights replaced by the dequantized values.
std::map<std::pair<std::size_t, llama::linear>, ternary_matrix> ternarize(llama::model& m, std::size_t group) {
  std::map<std::pair<std::size_t, llama::linear>, ternary_matrix> out;
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    for (const auto which : llama::all_linears) {
      llama::matrix& w = m.layers[l].weight(which);
      ternary_matrix q = quantize(w, optimal_symmetric{.group_size = group});
      for (float& s : q.scales()) s = fp16_bits_to_fp32(fp32_to_fp16_bits(s));
      ternq::dequantize(q, w);
      out.emplace(std::pair{l, which}, std::move(q));
    }
  }
  return out;
}

llama::config shape(std::size_t dim, std::size_t hidden) {
  return {.dim = dim, .hidden_dim = hidden, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 48,
          .seq_len = 32};
}

/// A tokenizer with llama2.c's spelling of the special tokens, byte pieces, an empty piece and words.
io::llama2c_tokenizer small_tokenizer(std::size_t vocab) {
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", "<0x41>", ""};
  while (pieces.size() < vocab) pieces.push_back(" w" + std::to_string(pieces.size()));
  std::vector<float> scores(pieces.size());
  for (std::size_t k = 0; k < scores.size(); ++k) scores[k] = -static_cast<float>(k);
  return {pieces, scores};
}

}  // namespace

TEST_CASE("--format auto follows the speed advice, and the group size defaults to the format's block") {
  const std::vector<std::size_t> big = {256, 256, 512, 320};
  const std::vector<std::size_t> small = {64, 64, 172};
  CHECK(cli::parse_storage("auto", big).name == "tq2_0");
  CHECK(cli::parse_storage("auto", small).name == "q2_0");
  CHECK(cli::parse_storage("auto", small).ternary == format::q2_0);
  CHECK(cli::parse_storage("tq1_0", small).ternary == format::tq1_0);
  CHECK_FALSE(cli::parse_storage("f16", small).ternary.has_value());
  CHECK_THROWS_WITH_AS(cli::parse_storage("q4_k", small), doctest::Contains("--format 'q4_k' is not one of auto|"),
                       ternq::error);
  CHECK(cli::default_group_size(cli::parse_storage("tq2_0", big)) == 256);
  CHECK(cli::default_group_size(cli::parse_storage("tq1_0", big)) == 256);
  CHECK(cli::default_group_size(cli::parse_storage("q2_0", big)) == 64);
  CHECK(cli::default_group_size(cli::parse_storage("pq2_0", big)) == 128);
  CHECK(cli::default_group_size(cli::parse_storage("ptq1_0", big)) == 128);
  CHECK(cli::default_group_size(cli::parse_storage("i2_s", big)) == 0);
  CHECK(cli::default_group_size(cli::parse_storage("f16", big)) == 128);
  // Every format's default group fills its blocks, so the default run is storable.
  for (const auto f : pack::all_formats) {
    if (pack::per_tensor_scale(f)) continue;
    CHECK(cli::default_group_size({f, cli::option_name(f)}) % pack::traits_of(f).block_elements == 0);
  }
  CHECK(cli::fallback_chain(format::tq2_0) == std::vector{format::q2_0});
  CHECK(cli::fallback_chain(format::tq1_0) == std::vector{format::q2_0});
  CHECK(cli::fallback_chain(format::q2_0).empty());
  CHECK(cli::fallback_chain(format::pq2_0).empty());
}

TEST_CASE("a mistyped --method or --format is answered with the nearest name") {
  CHECK(cli::edit_distance("", "abc") == 3);
  CHECK(cli::edit_distance("kitten", "sitting") == 3);
  CHECK(cli::edit_distance("tq2_0", "tq2_0") == 0);
  CHECK(cli::did_you_mean("optimall", cli::method_names()) == "did you mean 'optimal'?");
  CHECK(cli::did_you_mean("nonsense", cli::method_names()).empty());
  CHECK_THROWS_WITH_AS(cli::parse_method("gptq_itf_ag", 64, 0),
                       doctest::Contains("unknown method 'gptq_itf_ag': did you mean 'gptq_itf_aga'? (known: absmean,"),
                       ternq::error);
  CHECK_THROWS_WITH_AS(cli::parse_method("gtpq_act_optimal", 64, 0),
                       doctest::Contains("did you mean 'gptq_act_optimal'?"), ternq::error);
  CHECK_THROWS_WITH_AS(cli::parse_method("nonsense", 64, 0),
                       doctest::Contains("unknown method 'nonsense' (known: absmean,"), ternq::error);
  CHECK_THROWS_WITH_AS(
      cli::parse_storage("tq2", {}),
      doctest::Contains("--format 'tq2' is not one of auto|tq2_0|tq1_0|q2_0|pq2_0|ptq1_0|i2_s|f16|f32: "
                        "did you mean 'tq2_0'?"),
      ternq::error);
  CHECK_THROWS_WITH_AS(cli::parse_storage("Q2_0", {}), doctest::Contains("did you mean 'q2_0'?"), ternq::error);
}

TEST_CASE("a format that packs none of the linear layers is refused with the widths and the formats that fit") {
  const std::vector<std::size_t> widths = {64, 64, 64, 172};
  const cli::storage tq2{format::tq2_0, "tq2_0"};
  try {
    cli::require_some_packed(tq2, widths, false);
    FAIL("not refused");
  } catch (const ternq::error& e) {
    const std::string m = e.what();
    CHECK(m.find("--format tq2_0 packs none of the 4 linear layers") != std::string::npos);
    CHECK(m.find("in_features 64 (3 layers), 172 (1 layer)") != std::string::npos);
    CHECK(m.find("256-element block") != std::string::npos);
    CHECK(m.find("q2_0 (64-element blocks, 3 of 4 layers; slow on x86 in llama.cpp)") != std::string::npos);
    CHECK(m.find("tq1_0") == std::string::npos);  // 256 too: it fits nothing either
    CHECK(m.find("f16 (dequantized, any width)") != std::string::npos);
    CHECK(m.find("--allow-fallback") != std::string::npos);
  }
  CHECK_NOTHROW(cli::require_some_packed(tq2, widths, true));                               // asked for
  CHECK_NOTHROW(cli::require_some_packed(tq2, std::vector<std::size_t>{256, 172}, false));  // packs some
  CHECK_NOTHROW(cli::require_some_packed({std::nullopt, "f16"}, widths, false));
  CHECK_THROWS_AS(cli::require_some_packed({format::q2_0, "q2_0"}, std::vector<std::size_t>{100}, false),
                  ternq::error);
}

TEST_CASE("--keep: glob patterns over GGUF names, with or without .weight; types q8_0, f16, bf16, f32") {
  CHECK(cli::glob_match("blk.*.ffn_down.weight", "blk.12.ffn_down.weight"));
  CHECK(cli::glob_match("blk.?.attn_*", "blk.3.attn_output.weight"));
  CHECK_FALSE(cli::glob_match("blk.?.attn_*", "blk.13.attn_q.weight"));
  CHECK(cli::glob_match("*", ""));
  CHECK_FALSE(cli::glob_match("blk.0.ffn_down", "blk.0.ffn_down.weight"));
  CHECK(cli::glob_match("a*b*c", "aXbYbZc"));
  CHECK_FALSE(cli::glob_match("a*b*c", "aXbYbZ"));

  const std::vector<cli::keep_rule> rules = {cli::parse_keep("blk.0.ffn_down=q8_0"), cli::parse_keep("blk.*=F16"),
                                             cli::parse_keep("output=f32")};
  CHECK(cli::kept_type(rules, "blk.0.ffn_down.weight") == ggml_type::q8_0);  // the first matching rule
  CHECK(cli::kept_type(rules, "blk.1.ffn_down.weight") == ggml_type::f16);
  CHECK(cli::kept_type(rules, "output.weight") == ggml_type::f32);
  CHECK_FALSE(cli::kept_type(rules, "token_embd.weight").has_value());
  CHECK(cli::parse_keep("x=bf16").type == ggml_type::bf16);
  CHECK_THROWS_WITH_AS(cli::parse_keep("blk.0.ffn_down"), doctest::Contains("is not PATTERN=TYPE"), ternq::error);
  CHECK_THROWS_WITH_AS(cli::parse_keep("blk.0.ffn_down=q4_0"), doctest::Contains("type 'q4_0' is not one of"),
                       ternq::error);

  const llama::model m = tools_test::random_model(3, shape(64, 96));
  const auto kept = cli::resolve_keep(rules, m);
  CHECK(kept.size() == 2 * 7 + 1);  // every block tensor (F16 or Q8_0) and the output
  CHECK(kept.at("blk.0.ffn_down.weight") == ggml_type::q8_0);
  CHECK_THROWS_WITH_AS(cli::resolve_keep(std::vector{cli::parse_keep("blk.9.*=q8_0")}, m),
                       doctest::Contains("--keep 'blk.9.*=q8_0' matches no tensor"), ternq::error);

  // Rounding to the kept type: Q8_0 is ggml's reference blocks, decoded; F16 every value an fp16 value.
  llama::matrix w = m.layers[0].w2;
  const llama::matrix original = w;
  cli::round_to_type(w, ggml_type::q8_0, "blk.0.ffn_down.weight");
  const auto bytes = pack::quantize_q8_0(std::span<const float>(original.data(), original.size()), 64, 96);
  CHECK(pack::to_float(ggml_type::q8_0, bytes, 64, 96) ==
        std::vector<float>(w.data(), w.data() + w.size()));
  CHECK(w != original);
  llama::matrix h = original;
  cli::round_to_type(h, ggml_type::f16, "h");
  CHECK(llama::exactly_fp16(h));
  llama::matrix odd = tools_test::random_model(4, shape(64, 100)).layers[0].w2;  // 100 columns
  CHECK_THROWS_WITH_AS(cli::round_to_type(odd, ggml_type::q8_0, "blk.0.ffn_down.weight"),
                       doctest::Contains("not a multiple of Q8_0's 32-element block"), ternq::error);
}

TEST_CASE("fallback chain: TQ2_0 where the width allows, Q2_0 where 64 divides it, else F16 (exact, never F32)") {
  tools_test::temp_dir dir("tools-storage-chain");
  // attention and gate/up read 256 columns (TQ2_0), ffn_down reads 320 (Q2_0) in the first model;
  // the second has 64-column layers (Q2_0) and a 100-column ffn_down (F16).
  for (const auto& shape_pair : {std::pair<std::size_t, std::size_t>{256, 320}, {64, 100}}) {
    // Named copies, not a structured binding: Clang 14 cannot capture bindings (CAPTURE is a lambda).
    const std::size_t dim = shape_pair.first, hidden = shape_pair.second;
    CAPTURE(dim);
    llama::model m = tools_test::random_model(7, shape(dim, hidden));
    const auto ternary = ternarize(m, 256);
    const auto path = dir.path() / ("m" + std::to_string(dim) + ".gguf");
    llama::gguf_storage where{.format = format::tq2_0, .fallbacks = cli::fallback_chain(format::tq2_0)};
    where.keep["output.weight"] = ggml_type::q8_0;
    llama::model stored_model = m;
    cli::round_to_type(*stored_model.classifier, ggml_type::q8_0, "output.weight");
    const auto stored = llama::save_gguf(stored_model, ternary, where, nullptr, path, "chain");

    const io::gguf_reader r = io::gguf_reader::open(path);
    const auto type_of = [&](const std::string& n) { return r.tensor(n).type; };
    if (dim == 256) {
      CHECK(type_of("blk.0.attn_q.weight") == ggml_type::tq2_0);
      CHECK(type_of("blk.1.ffn_up.weight") == ggml_type::tq2_0);
      CHECK(type_of("blk.0.ffn_down.weight") == ggml_type::q2_0);
      CHECK(r.metadata().get<std::uint32_t>("general.file_type") == 37);  // LLAMA_FTYPE_MOSTLY_TQ2_0
    } else {
      CHECK(type_of("blk.0.attn_q.weight") == ggml_type::q2_0);
      CHECK(type_of("blk.1.ffn_down.weight") == ggml_type::f16);
      CHECK(r.metadata().get<std::uint32_t>("general.file_type") == 41);  // LLAMA_FTYPE_MOSTLY_Q2_0
    }
    CHECK(type_of("output.weight") == ggml_type::q8_0);
    CHECK(type_of("token_embd.weight") == ggml_type::f32);  // the original floats: not fp16-exact
    for (const auto& s : stored) {
      if (s.linear) CHECK(s.ggml != ggml_type::f32);
      if (s.name.find("ffn_down") != std::string::npos) {
        CHECK(s.reason.find("pack TQ2_0: in_features " + std::to_string(hidden) + " is not a multiple") == 0);
      }
    }
    // The file is the model: every weight decodes to the fake-quantized value.
    const llama::model back = llama::load_gguf(path);
    CHECK(*back.classifier == *stored_model.classifier);
    for (std::size_t l = 0; l < m.layers.size(); ++l) {
      for (const auto which : llama::all_linears) CHECK(back.layers[l].weight(which) == m.layers[l].weight(which));
    }

    // The summary's figures, recomputed from the file.
    const auto summary = cli::summarize(stored, "TQ2_0", std::filesystem::file_size(path));
    std::uint64_t linear_bytes = 0, linear_weights = 0, weights = 0;
    for (const auto& t : r.tensors()) {
      weights += t.rows() * t.cols();
      const bool linear = t.name.starts_with("blk.") && t.name.find("norm") == std::string::npos;
      if (!linear) continue;
      linear_bytes += t.size;
      linear_weights += t.rows() * t.cols();
    }
    CHECK(summary.linear == 14);
    CHECK(summary.packed == (dim == 256 ? 12 : 0));
    CHECK(summary.linear_bytes == linear_bytes);
    CHECK(summary.linear_weights == linear_weights);
    CHECK(summary.weights == weights);
    CHECK(summary.file_bytes == std::filesystem::file_size(path));
    CHECK(summary.linear_bits_per_weight() ==
          doctest::Approx(8.0 * static_cast<double>(linear_bytes) / static_cast<double>(linear_weights)));
    const std::string line = cli::summary_line(summary);
    CAPTURE(line);
    if (dim == 256) {
      CHECK(line.find("summary: 12 of 14 linear layers packed as TQ2_0; 2 fell back, 2 to Q2_0 (pack TQ2_0: "
                      "in_features 320 is not a multiple of the 256-element block)") == 0);
    } else {
      CHECK(line.find("summary: 0 of 14 linear layers packed as TQ2_0; 14 fell back, 12 to Q2_0 (") == 0);
      CHECK(line.find(", 2 to F16 (pack TQ2_0: in_features 100 is not a multiple") != std::string::npos);
    }
    CHECK(line.find("file " + std::to_string(std::filesystem::file_size(path)) + " bytes") != std::string::npos);
    CHECK(cli::partial_warning(summary).find("WARNING: only " + std::to_string(summary.packed) + " of 14") == 0);
  }
}

TEST_CASE("kept layers are rounded, not quantized, in sequential calibration, and stored at their type") {
  llama::model m = tools_test::random_model(11, shape(64, 128));
  const llama::model original = m;
  const auto choice = cli::parse_method("gptq_optimal", 64, 0);
  std::size_t quantized = 0;
  const llama::layer_quantizer quantizer = [&](const llama::matrix& w, const Eigen::MatrixXd& c, std::size_t,
                                               llama::linear) {
    ++quantized;
    ternary_matrix q = cli::run_method(cpu_exec{}, choice, w, c);
    for (float& s : q.scales()) s = fp16_bits_to_fp32(fp32_to_fp16_bits(s));
    return q;
  };
  const llama::layer_keeper keeper = [](llama::matrix& w, std::size_t layer, llama::linear which) {
    if (layer != 0 || which != llama::linear::down) return false;
    cli::round_to_type(w, ggml_type::q8_0, "blk.0.ffn_down.weight");
    return true;
  };
  const auto calib = tools_test::random_batch(4, 16, m.cfg.vocab_size, 5);
  const auto results = llama::quantize_sequential(m, calib, quantizer, {}, keeper);
  REQUIRE(results.size() == 14);
  CHECK(quantized == 13);
  std::map<std::pair<std::size_t, llama::linear>, ternary_matrix> ternary;
  for (const auto& r : results) {
    const bool kept = r.layer == 0 && r.which == llama::linear::down;
    CHECK(r.kept == kept);
    if (kept) {
      // The rounding's own error: small, but not zero.
      CHECK(r.relative_weight_error > 0.0);
      CHECK(r.relative_weight_error < 1e-3);
      CHECK(r.relative_output_error > 0.0);
      CHECK(r.relative_output_error < 1e-3);
    } else {
      ternary.emplace(std::pair{r.layer, r.which}, r.quantized);
    }
  }
  llama::matrix expected = original.layers[0].w2;
  cli::round_to_type(expected, ggml_type::q8_0, "x");
  CHECK(m.layers[0].w2 == expected);

  tools_test::temp_dir dir("tools-storage-keep");
  llama::gguf_storage where{.format = format::q2_0};
  where.keep["blk.0.ffn_down.weight"] = ggml_type::q8_0;
  const auto stored = llama::save_gguf(m, ternary, where, nullptr, dir.path() / "k.gguf", "keep");
  const io::gguf_reader r = io::gguf_reader::open(dir.path() / "k.gguf");
  CHECK(r.tensor("blk.0.ffn_down.weight").type == ggml_type::q8_0);
  CHECK(r.tensor("blk.1.ffn_down.weight").type == ggml_type::q2_0);
  CHECK(llama::load_gguf(dir.path() / "k.gguf").layers[0].w2 == expected);
  const auto summary = cli::summarize(stored, "Q2_0", std::filesystem::file_size(dir.path() / "k.gguf"));
  CHECK(summary.kept == 1);
  CHECK(summary.packed == 13);
  CHECK(cli::partial_warning(summary).empty());
  CHECK(cli::summary_line(summary).find("13 of 14 linear layers packed as Q2_0; 0 fell back; 1 kept by --keep") !=
        std::string::npos);
}

TEST_CASE("special tokens are written as llama.cpp's converter writes a llama2.c vocabulary") {
  // Expected values from llama.cpp's documented format: include/llama.h's llama_token_type (1 normal, 2 unknown,
  // 3 control, 6 byte) and examples/convert-llama2c-to-ggml (ids 0, 1, 2 as <unk>, <s>, </s>).
  CHECK(io::token_type::normal == 1);
  CHECK(io::token_type::unknown == 2);
  CHECK(io::token_type::control == 3);
  CHECK(io::token_type::byte == 6);
  const io::llama_vocab vocab = tokenizers::vocab_of(small_tokenizer(48));
  tools_test::temp_dir dir("tools-storage-vocab");
  llama::model m = tools_test::random_model(2, shape(64, 96));
  const auto path = dir.path() / "v.gguf";
  (void)llama::save_gguf(m, {}, {}, &vocab, path, "vocab");
  const io::gguf_reader r = io::gguf_reader::open(path);
  const auto& md = r.metadata();
  CHECK(md.get<std::string>("tokenizer.ggml.model") == "llama");
  const auto tokens = md.get<io::gguf_array>("tokenizer.ggml.tokens").get<std::string>();
  const auto types = md.get<io::gguf_array>("tokenizer.ggml.token_type").get<std::int32_t>();
  REQUIRE(tokens.size() == 48);
  REQUIRE(types.size() == 48);
  CHECK(tokens[0] == "<unk>");
  CHECK(tokens[1] == "<s>");
  CHECK(tokens[2] == "</s>");
  CHECK(types[0] == 2);
  CHECK(types[1] == 3);
  CHECK(types[2] == 3);
  CHECK(tokens[3] == "<0x0A>");
  CHECK(types[3] == 6);
  CHECK(types[4] == 6);
  CHECK(types[5] == 3);  // an empty piece
  CHECK(tokens[6] == "\xE2\x96\x81w6");
  for (std::size_t k = 6; k < 48; ++k) CHECK(types[k] == 1);
  CHECK(md.get<std::uint32_t>("tokenizer.ggml.unknown_token_id") == 0);
  CHECK(md.get<std::uint32_t>("tokenizer.ggml.bos_token_id") == 1);
  CHECK(md.get<std::uint32_t>("tokenizer.ggml.eos_token_id") == 2);
  // No padding or separator token in a llama2.c vocabulary: left out (llama.cpp: none), never an out-of-range id.
  CHECK_FALSE(md.contains("tokenizer.ggml.padding_token_id"));
  CHECK_FALSE(md.contains("tokenizer.ggml.seperator_token_id"));
  CHECK(md.get<std::uint32_t>("general.file_type") == 0);  // no ternary layers: all F32
}
