// SPDX-License-Identifier: MIT
// The tools with real tokenizers: --tokenizer takes any kind, a model's own tokenizer is used without it, the
// output GGUF carries the vocabulary, and text without a tokenizer is refused.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include <ternq/io/gguf_reader.hpp>

#include "llama/gguf_io.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::quote;
using tools_test::run;
using tools_test::tokenizer_data;

const std::string quantize_exe = TERNQ_QUANTIZE_EXE;
const std::string eval_exe = TERNQ_EVAL_EXE;
const std::string synth_exe = TERNQ_SYNTH_EXE;

/// A random model of 700 tokens (more than the test tokenizers' 657 to 660: padding rows) as a GGUF without a
/// vocabulary.
std::filesystem::path bare_gguf(const tools_test::temp_dir& dir) {
  const llama::config cfg{
      .dim = 64, .hidden_dim = 128, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 700, .seq_len = 64};
  const auto path = dir.path() / "bare.gguf";
  (void)llama::save_gguf(tools_test::random_model(9, cfg), {}, {}, nullptr, path, "bare");
  return path;
}

}  // namespace

TEST_CASE("ternq-quantize and ternq-eval: --tokenizer tokenizer.json, then the output GGUF's own vocabulary") {
  tools_test::temp_dir dir("tools-tokenizer-cli");
  const auto model = bare_gguf(dir);
  const auto text = tokenizer_data() / "multilingual.txt";
  const auto out = dir.path() / "q.gguf";
  const std::string calibration =
      " --method gptq_optimal --format q2_0 --calib-text " + quote(text) + " --calib-len 32 --calib-seqs 4";
  const auto q = run(quantize_exe + " --model " + quote(model) + calibration + " --tokenizer " +
                     quote(tokenizer_data() / "llama3/tokenizer.json") + " --out-gguf " + quote(out));
  REQUIRE_MESSAGE(q.status == 0, q.output);
  CHECK(q.output.find("no_vocab") == std::string::npos);
  {
    const io::gguf_reader r = io::gguf_reader::open(out);
    const auto& md = r.metadata();
    CHECK(md.get<std::string>("tokenizer.ggml.model") == "gpt2");
    CHECK(md.get<std::string>("tokenizer.ggml.pre") == "llama-bpe");
    const auto& tokens = md.get<io::gguf_array>("tokenizer.ggml.tokens").get<std::string>();
    REQUIRE(tokens.size() == 700);
    CHECK(tokens[656] == "<|begin_of_text|>");
    CHECK(tokens[699] == "[PAD699]");
    CHECK(md.get<io::gguf_array>("tokenizer.ggml.merges").size() == 400);
    CHECK(md.get<std::uint32_t>("tokenizer.ggml.bos_token_id") == 656);
    CHECK(md.get<bool>("tokenizer.ggml.add_bos_token"));
  }
  // The quantized GGUF brings its tokenizer: ternq-eval needs no --tokenizer, and gives what it gives with one.
  // 256 of the text's 377 tokens: whole windows, so nothing but the JSON is printed.
  const std::string eval =
      eval_exe + " --model " + quote(out) + " --text " + quote(text) + " --tokens 256 --window 32 --json";
  const auto own = run(eval);
  REQUIRE_MESSAGE(own.status == 0, own.output);
  const auto given = run(eval + " --tokenizer " + quote(tokenizer_data() / "llama3/tokenizer.json"));
  REQUIRE_MESSAGE(given.status == 0, given.output);
  const auto a = nlohmann::json::parse(own.output);
  const auto b = nlohmann::json::parse(given.output);
  CHECK(a["tokens"] == 8 * 31);
  CHECK(a["tokens"] == b["tokens"]);
  CHECK(a["nll"] == b["nll"]);
  CHECK(a["whitespace_collapsed"] == false);
  // And ternq-quantize takes it from a GGUF input the same way: the vocabulary passes through to the output.
  const auto again = dir.path() / "again.gguf";
  const auto q2 = run(quantize_exe + " --model " + quote(out) + calibration + " --out-gguf " + quote(again));
  REQUIRE_MESSAGE(q2.status == 0, q2.output);
  const io::gguf_reader r1 = io::gguf_reader::open(out);
  const io::gguf_reader r2 = io::gguf_reader::open(again);
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                          "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id"}) {
    CAPTURE(key);
    REQUIRE(r2.metadata().find(key) != nullptr);
    CHECK(*r2.metadata().find(key) == *r1.metadata().find(key));
  }
}

TEST_CASE(
    "a Hugging Face directory brings its tokenizer.json: calibration text and the GGUF vocabulary need no "
    "--tokenizer") {
  tools_test::temp_dir dir("tools-tokenizer-cli-hf");
  const auto model = dir.path() / "qwen";
  const auto made = run(synth_exe + " --preset tiny --layers 1 --vocab 700 --dtype f32 --seed 2 --out " + quote(model));
  REQUIRE_MESSAGE(made.status == 0, made.output);
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(tokenizer_data() / "qwen2" / file, model / file);
  }
  const auto out = dir.path() / "q.gguf";
  const auto q =
      run(quantize_exe + " --model " + quote(model) + " --method gptq_optimal --format q2_0 --calib-text " +
          quote(tokenizer_data() / "multilingual.txt") + " --calib-len 32 --calib-seqs 4 --out-gguf " + quote(out));
  REQUIRE_MESSAGE(q.status == 0, q.output);
  const io::gguf_reader r = io::gguf_reader::open(out);
  CHECK(r.metadata().get<std::string>("tokenizer.ggml.model") == "gpt2");
  CHECK(r.metadata().get<std::string>("tokenizer.ggml.pre") == "qwen2");
  CHECK(r.metadata().get<std::uint32_t>("tokenizer.ggml.eos_token_id") == 658);
  CHECK_FALSE(r.metadata().get<bool>("tokenizer.ggml.add_bos_token"));
  CHECK_FALSE(r.metadata().contains("tokenizer.ggml.bos_token_id"));
}

TEST_CASE("--tokenizer takes a SentencePiece model and a GGUF; without any tokenizer, text is refused") {
  tools_test::temp_dir dir("tools-tokenizer-cli-kinds");
  const auto model = bare_gguf(dir);
  const auto text = tokenizer_data() / "multilingual.txt";
  const auto out = dir.path() / "spm.gguf";
  const std::string base = quantize_exe + " --model " + quote(model) + " --method absmean --format q2_0";
  const auto spm = run(base + " --tokenizer " + quote(tokenizer_data() / "sentencepiece/tokenizer.model") +
                       " --out-gguf " + quote(out));
  REQUIRE_MESSAGE(spm.status == 0, spm.output);
  {
    const io::gguf_reader r = io::gguf_reader::open(out);
    CHECK(r.metadata().get<std::string>("tokenizer.ggml.model") == "llama");
    CHECK(r.metadata().get<io::gguf_array>("tokenizer.ggml.scores").size() == 700);
  }
  // Another model's GGUF as --tokenizer: its vocabulary is used.
  const auto e = run(eval_exe + " --model " + quote(model) + " --tokenizer " + quote(out) + " --text " + quote(text) +
                     " --window 32");
  CHECK_MESSAGE(e.status == 0, e.output);

  // No tokenizer anywhere: text calibration and evaluation are refused, a GGUF output is written with a warning.
  const auto calib = run(base + " --calib-text " + quote(text) + " --calib-len 32");
  CHECK(calib.status != 0);
  CHECK(calib.output.find("--calib-text needs a tokenizer, and the model") != std::string::npos);
  const auto eval = run(eval_exe + " --model " + quote(model) + " --text " + quote(text));
  CHECK(eval.status != 0);
  CHECK(eval.output.find("--text needs a tokenizer, and the model") != std::string::npos);
  const auto bare = run(base + " --out-gguf " + quote(dir.path() / "bare-out.gguf"));
  REQUIRE_MESSAGE(bare.status == 0, bare.output);
  CHECK(bare.output.find("warning: the model brings no tokenizer and no --tokenizer was given") != std::string::npos);
  CHECK(io::gguf_reader::open(dir.path() / "bare-out.gguf").metadata().get<std::string>("tokenizer.ggml.model") ==
        "no_vocab");
  // A tokenizer larger than the model is refused before any work.
  const auto small = dir.path() / "small.gguf";
  const llama::config cfg{
      .dim = 64, .hidden_dim = 128, .n_layers = 1, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 300, .seq_len = 64};
  (void)llama::save_gguf(tools_test::random_model(3, cfg), {}, {}, nullptr, small, "small");
  const auto big = run(quantize_exe + " --model " + quote(small) + " --method absmean --format q2_0 --tokenizer " +
                       quote(tokenizer_data() / "gpt2/tokenizer.json") + " --out-gguf " + quote(dir.path() / "x.gguf"));
  CHECK(big.status != 0);
  CHECK(big.output.find("tokens, the model a vocabulary of 300") != std::string::npos);
}
