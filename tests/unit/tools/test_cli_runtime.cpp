// SPDX-License-Identifier: MIT
// ternq-eval and ternq-generate on ternary GGUFs of the shared stories260K model: the packed runtime by default, its
// perplexity and its greedy tokens those of the dequantized path (f32 activations), the path said in the report,
// bad input refused with the tensor's name.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/io/gguf_reader.hpp>
#include <ternq/pack/blocks.hpp>

#include "tokenize/detokenize.hpp"
#include "tokenize/llama2c.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::have_shared;
using tools_test::quote;
using tools_test::run;
using tools_test::shared_dir;

const std::string quantize_exe = TERNQ_QUANTIZE_EXE;
const std::string eval_exe = TERNQ_EVAL_EXE;
const std::string generate_exe = TERNQ_GENERATE_EXE;

/// stories260K ternarized (the exact symmetric optimum, data-free) into `format` as a GGUF in `dir`.
std::filesystem::path stories_gguf(const std::filesystem::path& dir, const std::string& format) {
  const auto out = dir / ("stories_" + format + ".gguf");
  const auto o = run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") + " --tokenizer " +
                     quote(shared_dir() / "models/tok512.bin") + " --method optimal --format " + format +
                     " --allow-fallback --threads 1 --out-gguf " + quote(out));
  REQUIRE_MESSAGE(o.status == 0, o.output);
  return out;
}

nlohmann::json json_of(const std::string& command) {
  const auto o = run(command + " --json 2>/dev/null");
  REQUIRE_MESSAGE(o.status == 0, command << "\n" << o.output);
  return nlohmann::json::parse(o.output);
}

const std::string prompt =
    "Once upon a time, there was a little boy named Tim. Tim had a big red ball. He loved to play with it every "
    "day. One day, Tim went to the park with his mom.";

}  // namespace

TEST_CASE("ternq-eval runs a GGUF through the packed runtime by default; --weights dequantized is the reference") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("cli-runtime-eval");
  const auto gguf = stories_gguf(dir.path(), "q2_0");
  const std::string text = " --tokenizer " + quote(shared_dir() / "models/tok512.bin") + " --text " +
                           quote(shared_dir() / "text/tinystories_validation_head.txt") +
                           " --tokens 1024 --window 128 --threads 1";
  const std::string on_gguf = eval_exe + " --model " + quote(gguf) + text;

  const nlohmann::json packed = json_of(on_gguf);
  const nlohmann::json exact = json_of(on_gguf + " --activations f32");
  const nlohmann::json dequantized = json_of(on_gguf + " --weights dequantized");
  CHECK(packed["weights"] == "packed");
  CHECK(packed["activations"] == "int8");
  CHECK(packed["linear_layers"]["packed"] == 35);
  CHECK(packed["linear_layers"]["dense"] == 0);
  CHECK(packed["linear_layers"]["copied"] == 0);  // views into the mapped file
  CHECK(packed["linear_layers"]["types"] == nlohmann::json{{"Q2_0", 35}});
  CHECK(packed["linear_layers"]["dense_bytes"] == 0);
  CHECK(exact["weights"] == "packed");
  CHECK(exact["activations"] == "f32");
  CHECK(dequantized["weights"] == "dequantized");
  CHECK(dequantized["activations"].is_null());
  CHECK_FALSE(dequantized.contains("linear_layers"));
  const double reference = dequantized["ppl"].get<double>();
  // f32 activations: the same model up to the order of float sums.
  CHECK(std::abs(exact["ppl"].get<double>() - reference) <= 1e-5 * reference);
  // int8 activations: every layer input rounded to 8 bits per block moves the perplexity a little.
  CHECK(std::abs(packed["ppl"].get<double>() - reference) <= 2e-2 * reference);
  CHECK(packed["tokens"] == dequantized["tokens"]);

  const auto words = run(on_gguf);
  REQUIRE_MESSAGE(words.status == 0, words.output);
  CHECK(words.output.find("weights    packed runtime, int8 activations: linear layers 35 packed (Q2_0 35), 0 dense") !=
        std::string::npos);
  const auto words_dequantized = run(on_gguf + " --weights dequantized");
  CHECK(words_dequantized.output.find("weights    dequantized: every tensor widened to fp32") != std::string::npos);

  // A llama2.c checkpoint runs dense; the reference's path is reported too.
  const nlohmann::json with_reference =
      json_of(on_gguf + " --reference " + quote(shared_dir() / "models/stories260K.bin"));
  CHECK(with_reference["weights"] == "packed");
  CHECK(with_reference["reference_weights"] == "dense");
  CHECK(with_reference["ppl"] == packed["ppl"]);

  const auto bad = run(on_gguf + " --weights fast");
  CHECK(bad.status != 0);
  CHECK(bad.output.find("--weights: fast not in {packed,dequantized}") != std::string::npos);
}

TEST_CASE("ternq-generate: greedy tokens of the packed runtime (f32 activations) equal the dequantized path's") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("cli-runtime-generate");
  const std::string tok = " --tokenizer " + quote(shared_dir() / "models/tok512.bin");
  for (const std::string format : {"q2_0", "tq2_0"}) {  // TQ2_0 falls back to Q2_0 for these widths
    CAPTURE(format);
    const auto gguf = stories_gguf(dir.path(), format);
    const std::string common =
        generate_exe + " --model " + quote(gguf) + tok + " --prompt '" + prompt + "' --tokens 40 --threads 1";
    const nlohmann::json exact = json_of(common + " --activations f32");
    const nlohmann::json dequantized = json_of(common + " --weights dequantized");
    CHECK(exact["prompt_tokens"].get<std::size_t>() >= 40);
    CHECK(exact["weights"] == "packed");
    CHECK(exact["linear_layers"]["packed"] == 35);
    CHECK(dequantized["weights"] == "dequantized");
    REQUIRE(exact["ids"].size() == 40);
    CHECK(exact["ids"] == dequantized["ids"]);
    CHECK(exact["continuation"] == dequantized["continuation"]);
    const auto ids = exact["ids"].get<std::vector<std::int32_t>>();
    CHECK(std::set<std::int32_t>(ids.begin(), ids.end()).size() >= 5);  // more than one token repeated
    CHECK(exact["decode_steps"] == 39);
    CHECK(exact["decode_tokens_per_second"].get<double>() > 0.0);
    CHECK(exact["prompt_tokens_per_second"].get<double>() > 0.0);

    const auto words = run(common);
    REQUIRE_MESSAGE(words.status == 0, words.output);
    CHECK(words.output.rfind(prompt, 0) == 0);  // the text first: prompt and continuation
    CHECK(words.output.find("weights    packed runtime, int8 activations: linear layers 35 packed (Q2_0 35)") !=
          std::string::npos);
    CHECK(words.output.find(" tokens in ") != std::string::npos);
    CHECK(words.output.find("decode steps of one token in ") != std::string::npos);
    CHECK(words.output.find(" tokens/s") != std::string::npos);
  }
}

TEST_CASE("ternq-generate continues from BOS as the reference output of stories260K; bad input is refused") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("cli-runtime-bos");
  const std::string tok = " --tokenizer " + quote(shared_dir() / "models/tok512.bin");
  const std::string model = generate_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") + tok;
  const nlohmann::json bos = json_of(model + " --tokens 30");
  CHECK(bos["weights"] == "dense");
  CHECK(bos["prompt_tokens"] == 1);
  CHECK(bos["text"].get<std::string>().rfind("Once upon a time, there was a little girl named Lily.", 0) == 0);

  const auto outside = run(model + " --prompt-ids '1 600'");
  CHECK(outside.status != 0);
  CHECK(outside.output.find("token id 600 outside the vocabulary of 512") != std::string::npos);
  const auto not_ids = run(model + " --prompt-ids '1 x'");
  CHECK(not_ids.output.find("--prompt-ids: 'x' is not a token id") != std::string::npos);
  const auto both = run(model + " --prompt a --prompt-ids 1");
  CHECK(both.status != 0);

  // A packed tensor with an Inf scale: refused with its name, before any token.
  const auto gguf = stories_gguf(dir.path(), "q2_0");
  std::uint64_t at = 0;
  {
    const io::gguf_reader r = io::gguf_reader::open(gguf);
    const io::gguf_tensor_info& info = r.tensor("blk.2.attn_v.weight");
    at = r.data_offset() + info.offset + offsetof(pack::block_q2_0, d);
  }
  {
    std::fstream f(gguf, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(at));
    const unsigned char nan[2] = {0x00, 0x7E};  // fp16 NaN
    f.write(reinterpret_cast<const char*>(nan), 2);
  }
  const auto broken = run(generate_exe + " --model " + quote(gguf) + tok + " --prompt Hello");
  CHECK(broken.status != 0);
  CHECK(broken.output.find("ternq-generate: [ternq.non_finite] gguf '" + gguf.string() +
                           "': tensor 'blk.2.attn_v.weight': packed Q2_0 matrix: the scale of row 0, block 0 is not "
                           "finite") != std::string::npos);
  const auto evaluated = run(eval_exe + " --model " + quote(gguf) + tok + " --text " +
                             quote(shared_dir() / "text/tinystories_validation_head.txt") + " --tokens 256");
  CHECK(evaluated.status != 0);
  CHECK(evaluated.output.find("tensor 'blk.2.attn_v.weight': packed Q2_0 matrix") != std::string::npos);
}

TEST_CASE("detokenize: ids back to the text they encode; ids beyond the tokenizer in brackets") {
  if (!have_shared("models/tok512.bin")) return;
  const tokenizers::llama2c tok(shared_dir() / "models/tok512.bin");
  const io::llama_vocab vocab = tok.gguf_vocab();
  const std::string text = "Once upon a time, Tim said: \"Hello!\"\nThe end.";
  std::vector<std::int32_t> ids = tok.encode(text);
  CHECK(ids.front() == 1);  // BOS, which gives no text
  CHECK(tokenizers::detokenize(vocab, ids) == text);
  ids.push_back(600);  // a model's padding row beyond the 512 pieces
  CHECK(tokenizers::detokenize(vocab, ids) == text + "[600]");
  // Byte-level BPE spells bytes in GPT-2's alphabet: a space is U+0120, a newline U+010A, the bytes C3 B6 of "ö"
  // U+00C3 U+00B6; control tokens give nothing.
  io::llama_vocab bpe;
  bpe.model = "gpt2";
  bpe.tokens = {"Hello", "\xC4\xA0w\xC3\x83\xC2\xB6rld", "\xC4\x8A", "<|endoftext|>"};
  bpe.token_types = {io::token_type::normal, io::token_type::normal, io::token_type::normal, io::token_type::control};
  CHECK(tokenizers::detokenize(bpe, std::vector<std::int32_t>{0, 1, 2, 3}) == "Hello w\xC3\xB6rld\n");
  io::llama_vocab none;
  none.model = "no_vocab";
  CHECK(tokenizers::detokenize(none, std::vector<std::int32_t>{3, 14}) == "[3][14]");
}
