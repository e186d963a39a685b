// SPDX-License-Identifier: MIT
// The command-line tools as a person runs them: tensor mode, model mode with GGUF and report, ternq-eval, bad input.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include <ternq/adapters/eigen.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/safetensors_reader.hpp>
#include <ternq/io/safetensors_writer.hpp>

#include "llm_like.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::have_shared;
using tools_test::shared_dir;

struct outcome {
  int status = 0;
  std::string output;  // stdout and stderr together
};

/// Runs `command` through the shell and captures its output and exit status.
outcome run(const std::string& command) {
  outcome o;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) o.output += buffer;
  const int status = ::pclose(pipe);
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

std::string quote(const std::filesystem::path& p) {
  // Built with += : GCC 12's -Wrestrict misfires on "literal" + std::string at -O3.
  std::string s(1, '\'');
  s += p.string();
  s += '\'';
  return s;
}

const std::string quantize_exe = TERNQ_QUANTIZE_EXE;
const std::string eval_exe = TERNQ_EVAL_EXE;

}  // namespace

TEST_CASE("ternq-quantize without a model runs the embedded default layer") {
  const auto o = run(quantize_exe + " --method twn --threads 1");
  CHECK(o.status == 0);
  CHECK(o.output.find("embedded LLM-like layer 512x1024") != std::string::npos);
  CHECK(o.output.find("twn") != std::string::npos);
}

TEST_CASE("tensor mode quantizes every 2-D tensor and writes the dequantized matrices under the same names") {
  tools_test::temp_dir dir("tools-cli-tensors");
  const auto w1 = testing::llm_like_weights(16, 64, 1);
  const auto w2 = testing::llm_like_weights(8, 32, 2);
  const auto x1 = testing::llm_like_activations(256, 64, 1);
  const auto x2 = testing::llm_like_activations(256, 32, 2);
  const Eigen::MatrixXf c1 = x1.transpose() * x1, c2 = x2.transpose() * x2;
  const std::vector<float> bias(5, 1.0F);
  {
    io::safetensors_writer w;
    w.add("layer.one", io::dtype::f32, as_const_view(w1));
    w.add("layer.two", io::dtype::bf16, as_const_view(w2));
    w.add("bias", io::dtype::f32, {5}, bias);
    w.write(dir.path() / "w.safetensors");
    io::safetensors_writer c;
    c.add("layer.one", io::dtype::f32, as_const_view(c1));
    c.add("layer.two", io::dtype::f32, as_const_view(c2));
    c.write(dir.path() / "c.safetensors");
  }
  const auto o = run(quantize_exe + " --tensors " + quote(dir.path() / "w.safetensors") + " --grams " +
                     quote(dir.path() / "c.safetensors") + " --method gptq_itf_aga --group-size 16 --out-fake " +
                     quote(dir.path() / "out.safetensors") + " --report " + quote(dir.path() / "r.json"));
  REQUIRE(o.status == 0);
  const io::safetensors_file out(dir.path() / "out.safetensors");
  CHECK(out.find("layer.one") != nullptr);
  CHECK(out.find("layer.two") != nullptr);
  CHECK(out.find("bias") == nullptr);  // not a matrix
  CHECK(out.matrix("layer.one").rows() == 16);
  const nlohmann::json report = nlohmann::json::parse(std::ifstream(dir.path() / "r.json"));
  REQUIRE(report["layers"].size() == 2);
  CHECK(report["layers"][0]["rel_e_x"].get<double>() < report["layers"][0]["rel_e_w"].get<double>());
  CHECK(std::filesystem::exists(dir.path() / "r.csv"));

  const auto missing = run(quantize_exe + " --tensors " + quote(dir.path() / "w.safetensors") +
                           " --method itf_aga --out-fake " + quote(dir.path() / "o2.safetensors"));
  CHECK(missing.status != 0);
  CHECK(missing.output.find("ternq-quantize: [ternq.invalid_argument] --method itf_aga needs calibration statistics: "
                            "--grams C.safetensors") != std::string::npos);
}

TEST_CASE("stories260K end to end: quantize to GGUF and a fake checkpoint, evaluate, compare methods") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("tools-cli-stories");
  const auto model = shared_dir() / "models/stories260K.bin";
  const auto tok = shared_dir() / "models/tok512.bin";
  const auto text = shared_dir() / "text/tinystories_validation_head.txt";
  const std::string common = " --model " + quote(model) + " --tokenizer " + quote(tok) + " --calib-text " +
                             quote(text) + " --calib-seqs 16 --calib-len 128 --group-size 64";
  std::map<std::string, double> ppl;
  for (const std::string method : {"absmean", "gptq_itf_aga"}) {
    const bool ternary = method == "absmean";
    const auto gguf = dir.path() / (method + ".gguf");
    const auto fake = dir.path() / (method + ".bin");
    const auto q = run(quantize_exe + common + " --method " + method + " --out-gguf " + quote(gguf) +
                       (ternary ? " --format q2_0" : " --format f16") + " --out-fake " + quote(fake) + " --report " +
                       quote(dir.path() / (method + ".json")));
    REQUIRE_MESSAGE(q.status == 0, q.output);
    const nlohmann::json report = nlohmann::json::parse(std::ifstream(dir.path() / (method + ".json")));
    CHECK(report["layers"].size() == 35);
    const io::gguf_reader r = io::gguf_reader::open(gguf);
    CHECK(r.tensors().size() == 47);
    CHECK((r.tensor("blk.0.attn_q.weight").type == pack::ggml_type::q2_0) == ternary);
    // The GGUF and the fake checkpoint are the same model.
    const auto eval = [&](const std::filesystem::path& m) {
      const auto e = run(eval_exe + " --model " + quote(m) + " --tokenizer " + quote(tok) + " --text " + quote(text) +
                         " --offset 400000 --tokens 2048 --reference " + quote(model) + " --json");
      REQUIRE_MESSAGE(e.status == 0, e.output);
      return nlohmann::json::parse(e.output);
    };
    const auto from_gguf = eval(gguf);
    const auto from_fake = eval(fake);
    CHECK(from_gguf["nll"].get<double>() == from_fake["nll"].get<double>());
    CHECK(from_gguf["kl"].get<double>() > 0.0);
    CHECK(from_gguf["tokens"].get<int>() == 2040);
    ppl[method] = from_fake["ppl"].get<double>();
  }
  MESSAGE("held-out perplexity: absmean " << ppl["absmean"] << ", gptq_itf_aga " << ppl["gptq_itf_aga"]);
  CHECK(ppl["gptq_itf_aga"] < ppl["absmean"]);
}

TEST_CASE("the tools refuse bad input with one line naming the problem") {
  tools_test::temp_dir dir("tools-cli-bad");
  const auto nothing = run(eval_exe + " --model " + quote(dir.path() / "none.bin") + " --text x --tokenizer y");
  CHECK(nothing.status != 0);
  CHECK(nothing.output.find("ternq-eval: [ternq.io] model '") != std::string::npos);
  const auto method = run(quantize_exe + " --model " + quote(dir.path()) + " --method nonsense");
  CHECK(method.status != 0);
  CHECK(method.output.find("unknown method 'nonsense'") != std::string::npos);
  {
    std::ofstream truncated(dir.path() / "broken.bin", std::ios::binary);
    truncated << std::string(100, '\x01');
  }
  const auto broken = run(quantize_exe + " --model " + quote(dir.path() / "broken.bin") + " --method absmean");
  CHECK(broken.status != 0);
  CHECK(broken.output.find("[ternq.corrupt_file]") != std::string::npos);
  if (!have_shared("models/stories260K.bin")) return;
  const auto combo = run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") +
                         " --method itf --out-gguf " + quote(dir.path() / "x.gguf") + " --format tq2_0");
  CHECK(combo.status != 0);
  CHECK(combo.output.find("--method itf gives offsets (alpha T + mu), which TQ2_0 cannot store") != std::string::npos);
  const auto calib =
      run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") + " --method gptq_itf_aga");
  CHECK(calib.status != 0);
  CHECK(calib.output.find("needs calibration data: --calib-text or --calib-tokens") != std::string::npos);
}

TEST_CASE("checks at the door: readable numeric limits, unwritable outputs and short calibration data before work") {
  tools_test::temp_dir dir("tools-cli-door");
  const auto zero = run(quantize_exe + " --calib-seqs 0");
  CHECK(zero.status != 0);
  CHECK(zero.output.find("--calib-seqs: must be a whole number >= 1 (got '0')") != std::string::npos);
  CHECK(zero.output.find("e-308") == std::string::npos);
  const auto text = dir.path() / "x.txt";
  std::ofstream(text) << "unused";
  const auto no_dir = run(quantize_exe + " --tensors " + quote(text) + " --method absmean --out-fake " +
                          quote(dir.path() / "missing" / "out.safetensors"));
  CHECK(no_dir.status != 0);
  CHECK(no_dir.output.find("[ternq.io] --out-fake '") != std::string::npos);
  CHECK(no_dir.output.find("' does not exist") != std::string::npos);
  const auto is_dir = run(quantize_exe + " --tensors " + quote(text) + " --method absmean --out-fake " +
                          quote(dir.path()) + " --report " + quote(dir.path() / "r.json"));
  CHECK(is_dir.status != 0);
  CHECK(is_dir.output.find("is a directory, not a file") != std::string::npos);
  if (!have_shared("models/stories260K.bin")) return;
  const auto ids = dir.path() / "ids.txt";
  std::ofstream(ids) << "1 20 30 40 50";
  const auto short_calib = run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") +
                               " --method gptq_itf --calib-tokens " + quote(ids) + " --calib-len 16");
  CHECK(short_calib.status != 0);
  CHECK(short_calib.output.find("the calibration data gives 5 tokens, fewer than one sequence of 16") !=
        std::string::npos);
  std::ofstream(ids) << std::string("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20");
  const auto fewer = run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") +
                         " --method absmean --calib-tokens " + quote(ids) + " --calib-len 8 --calib-seqs 4");
  CHECK(fewer.status == 0);
  CHECK(fewer.output.find("warning: the calibration data gives 20 tokens: 2 sequences of 8, not the 4 asked for") !=
        std::string::npos);
}
