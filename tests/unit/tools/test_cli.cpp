// SPDX-License-Identifier: MIT
// The command-line tools as a person runs them: tensor mode, model mode with GGUF and report, ternq-eval, bad input.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include <ternq/adapters/eigen.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/safetensors_reader.hpp>
#include <ternq/io/safetensors_writer.hpp>

#include "cli/device.hpp"
#include "llama/save.hpp"
#include "llm_like.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::have_shared;
using tools_test::shared_dir;
using tools_test::quote;
using tools_test::run;

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
    // The GGUF and the fake checkpoint are the same model: the file's values, widened to fp32, give the same bits
    // (the packed runtime, ternq-eval's default, is checked against this path in test_cli_runtime.cpp).
    const auto eval = [&](const std::filesystem::path& m) {
      const auto e =
          run(eval_exe + " --model " + quote(m) + " --tokenizer " + quote(tok) + " --text " + quote(text) +
              " --offset 400000 --tokens 2048 --reference " + quote(model) + " --weights dequantized --json");
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

TEST_CASE("stories260K act-order and SSR to Q2_0: orders folded, FFN padded, the file is the fake model") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("tools-cli-fold");
  const auto model = shared_dir() / "models/stories260K.bin";
  const auto tok = shared_dir() / "models/tok512.bin";
  const auto text = shared_dir() / "text/tinystories_validation_head.txt";
  for (const std::string method : {"gptq_act_optimal", "gptq_ssr_optimal_aga"}) {
    const bool fit = method == "gptq_ssr_optimal_aga";  // with --fit-scales
    const auto gguf = dir.path() / (method + ".gguf");
    const auto fake = dir.path() / (method + ".bin");
    const auto report = dir.path() / (method + ".json");
    const auto q = run(quantize_exe + " --model " + quote(model) + " --tokenizer " + quote(tok) + " --calib-text " +
                       quote(text) + " --calib-seqs 8 --calib-len 128 --method " + method + " --format q2_0" +
                       " --out-gguf " + quote(gguf) + " --out-fake " + quote(fake) + " --report " + quote(report) +
                       (fit ? " --fit-scales" : ""));
    REQUIRE_MESSAGE(q.status == 0, q.output);
    CHECK(q.output.find("ffn hidden width padded from 172 to 192") != std::string::npos);
    CHECK(q.output.find("summary: 35 of 35 linear layers packed as Q2_0; 0 fell back") != std::string::npos);
    CHECK(q.output.find("ffn padded from 172 to 192: ") != std::string::npos);
    const io::gguf_reader r = io::gguf_reader::open(gguf);
    CHECK(r.tensor("blk.0.ffn_down.weight").type == pack::ggml_type::q2_0);
    CHECK(r.tensor("blk.0.ffn_down.weight").cols() == 192);
    CHECK(r.metadata().get<std::uint32_t>("llama.feed_forward_length") == 192);
    const nlohmann::json j = nlohmann::json::parse(std::ifstream(report));
    const std::string name = method == "gptq_act_optimal" ? "act-order" : "SSR";
    std::size_t folded_down = 0, by_heads = 0, sequential = 0, fitted = 0;
    for (const auto& layer : j["layers"]) {
      const std::string order = layer["order"];
      fitted += order.find("; scales fitted (") != std::string::npos ? 1 : 0;
      const std::string tensor = layer["layer"];
      if (tensor.find("ffn_down") != std::string::npos) {
        folded_down += order.starts_with(name + ", folded into ffn_gate/ffn_up rows") ? 1 : 0;
      } else if (tensor.find("attn_output") != std::string::npos) {
        by_heads += order.starts_with(name + " by whole heads, folded into attn_q/attn_k/attn_v rows") ? 1 : 0;
      } else {
        sequential += order.starts_with("sequential (reads the residual stream") ? 1 : 0;
      }
    }
    CHECK(folded_down == 5);
    CHECK(by_heads == 5);
    CHECK(sequential == 25);
    CHECK(fitted == (fit ? 35U : 0U));
    CHECK(j["summary"]["ffn_hidden"]["model"] == 172);
    CHECK(j["summary"]["ffn_hidden"]["stored"] == 192);
    // The file computes what the fake-quantized model (folded and padded, in floating point) computes.
    const auto eval = [&](const std::filesystem::path& m) {
      const auto e = run(eval_exe + " --model " + quote(m) + " --tokenizer " + quote(tok) + " --text " + quote(text) +
                         " --offset 400000 --tokens 1024 --weights dequantized --json");
      REQUIRE_MESSAGE(e.status == 0, e.output);
      return nlohmann::json::parse(e.output);
    };
    CHECK(eval(gguf)["nll"].get<double>() == eval(fake)["nll"].get<double>());
  }
  // --fit-scales needs a symmetric grid and calibration data
  const auto asym = run(quantize_exe + " --model " + quote(model) + " --method gptq_itf_aga --fit-scales " +
                        "--calib-tokens " + quote(dir.path() / "none.txt"));
  CHECK(asym.status != 0);
  CHECK(asym.output.find("--fit-scales needs a symmetric method and calibration data (--method gptq_itf_aga has "
                         "offsets)") != std::string::npos);
}

TEST_CASE("the tools refuse bad input with one line naming the problem") {
  tools_test::temp_dir dir("tools-cli-bad");
  const auto nothing = run(eval_exe + " --model " + quote(dir.path() / "none.bin") + " --text x --tokenizer y");
  CHECK(nothing.status != 0);
  CHECK(nothing.output.find("ternq-eval: [ternq.io] model '") != std::string::npos);
  const auto method = run(quantize_exe + " --model " + quote(dir.path()) + " --method nonsense");
  CHECK(method.status != 0);
  CHECK(method.output.find("unknown method 'nonsense'") != std::string::npos);
  // A typo is answered with the nearest name, before the model is read (the directory here is no model).
  const auto typo = run(quantize_exe + " --model " + quote(dir.path()) + " --method gptq_optmal");
  CHECK(typo.status != 0);
  CHECK(typo.output.find("unknown method 'gptq_optmal': did you mean 'gptq_optimal'?") != std::string::npos);
  const auto format = run(quantize_exe + " --model " + quote(dir.path()) + " --method absmean --format tq2_");
  CHECK(format.status != 0);
  CHECK(format.output.find("--format 'tq2_' is not one of") != std::string::npos);
  CHECK(format.output.find("did you mean 'tq2_0'?") != std::string::npos);
  {
    std::ofstream truncated(dir.path() / "broken.bin", std::ios::binary);
    truncated << std::string(100, '\x01');
  }
  const auto broken = run(quantize_exe + " --model " + quote(dir.path() / "broken.bin") + " --method absmean");
  CHECK(broken.status != 0);
  CHECK(broken.output.find("[ternq.corrupt_file]") != std::string::npos);
  // A text file given as --model (a llama2.c path by its lack of GGUF magic) is named as text.
  std::ofstream(dir.path() / "story.txt") << "Once upon a time, there was a little girl named Lily.\n";
  const auto text = run(eval_exe + " --model " + quote(dir.path() / "story.txt") + " --text " +
                        quote(dir.path() / "story.txt") + " --tokenizer y");
  CHECK(text.status != 0);
  CHECK(
      text.output.find("not a llama2.c checkpoint: the file begins with text (\"Once upon a time, there was ...\")") !=
      std::string::npos);
  CHECK(text.output.find("is not a multiple of n_heads") == std::string::npos);
  if (!have_shared("models/stories260K.bin")) return;
  const auto combo = run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") +
                         " --method itf --out-gguf " + quote(dir.path() / "x.gguf") + " --format tq2_0");
  CHECK(combo.status != 0);
  CHECK(combo.output.find("--method itf gives offsets (alpha T + mu), which TQ2_0 cannot store") != std::string::npos);
  const auto calib =
      run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") + " --method gptq_itf_aga");
  CHECK(calib.status != 0);
  CHECK(calib.output.find("needs calibration data: --calib-text, --calib-jsonl or --calib-tokens") != std::string::npos);
}

TEST_CASE("ternq-quantize --device: parsed and checked before any work; cuda gives the CPU's bytes where it runs") {
  tools_test::temp_dir dir("tools-cli-device");
  const auto bad = run(quantize_exe + " --device gpu --method itf");
  CHECK(bad.status != 0);
  CHECK(bad.output.find("--device 'gpu' is not one of cpu, cuda, cuda:N") != std::string::npos);
  const auto ordinal = run(quantize_exe + " --device cuda:-1 --method itf");
  CHECK(ordinal.status != 0);
  CHECK(ordinal.output.find("--device 'cuda:-1' is not one of") != std::string::npos);
  // Every method has a CUDA specialization: the device itself is checked, in every build, before the model is read.
  const auto method =
      run(quantize_exe + " --model " + quote(dir.path()) + " --device cuda --method gptq_ssr_optimal_aga");
  CHECK(method.status != 0);
  if (!cli::cuda_built()) {
    CHECK(method.output.find("[ternq.device] --device cuda:0: these tools were built without CUDA") !=
          std::string::npos);
  } else {  // no usable device, or (where one runs) the empty model directory
    CHECK((method.output.find("[ternq.device] --device cuda:0: ") != std::string::npos ||
           method.output.find(dir.path().string()) != std::string::npos));
  }
  CHECK(method.output.find("no CUDA specialization") == std::string::npos);
  const auto typo = run(quantize_exe + " --device cuda --method gptq_itf_agaa");
  CHECK(typo.status != 0);
  CHECK(typo.output.find("gptq_itf_agaa") != std::string::npos);  // the bad name first, whatever the device
  CHECK(run(quantize_exe + " --device cpu --method twn --threads 1").status == 0);

  // Tensor mode on the device and on the CPU: the same fake-quantized file, byte for byte, where a device runs it.
  const auto w1 = testing::llm_like_weights(16, 300, 1);
  {
    io::safetensors_writer w;
    w.add("layer.one", io::dtype::f32, as_const_view(w1));
    w.write(dir.path() / "w.safetensors");
  }
  const std::string tensors = quantize_exe + " --tensors " + quote(dir.path() / "w.safetensors") + " --method itf";
  const auto gpu = run(tensors + " --device cuda --out-fake " + quote(dir.path() / "gpu.safetensors"));
  if (!cli::cuda_built()) {
    CHECK(gpu.status != 0);
    CHECK(gpu.output.find("[ternq.device] --device cuda:0: these tools were built without CUDA") != std::string::npos);
    return;
  }
  if (gpu.status != 0) {  // a CUDA build on a machine without a usable device
    CHECK(gpu.output.find("[ternq.device] --device cuda:0: ") != std::string::npos);
    MESSAGE("no CUDA device here: the device run of --device cuda is not checked (" << gpu.output << ")");
    return;
  }
  const auto cpu = run(tensors + " --out-fake " + quote(dir.path() / "cpu.safetensors"));
  REQUIRE(cpu.status == 0);
  const auto bytes = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  CHECK(bytes(dir.path() / "gpu.safetensors") == bytes(dir.path() / "cpu.safetensors"));
}

namespace {

/// A random llama2.c checkpoint of width `dim` (hidden `hidden`), written to `path`.
void write_random_llama2c(const std::filesystem::path& path, std::size_t dim, std::size_t hidden) {
  const llama::config cfg{
      .dim = dim, .hidden_dim = hidden, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 64, .seq_len = 32};
  llama::model m = tools_test::random_model(21, cfg);
  m.classifier.reset();  // llama2.c's shared classifier
  llama::save_llama2c(m, path);
}

/// The numbers of "summary: P of N linear layers packed as X; ...; B bits per linear weight, F bits per weight in
/// the whole file (W weights), file S bytes".
struct summary_figures {
  std::size_t packed = 0, linear = 0;
  double linear_bpw = 0.0, file_bpw = 0.0;
  unsigned long long weights = 0, bytes = 0;
};
summary_figures parse_summary(const std::string& output) {
  const auto at = output.rfind("summary: ");
  REQUIRE(at != std::string::npos);
  const std::string line = output.substr(at, output.find('\n', at) - at);
  CAPTURE(line);
  summary_figures f;
  REQUIRE(std::sscanf(line.c_str(), "summary: %zu of %zu linear layers", &f.packed, &f.linear) == 2);
  const auto figures = line.rfind("; ");
  REQUIRE(std::sscanf(line.c_str() + figures,
                      "; %lf bits per linear weight, %lf bits per weight in the whole file (%llu weights), file %llu "
                      "bytes",
                      &f.linear_bpw, &f.file_bpw, &f.weights, &f.bytes) == 4);
  return f;
}

}  // namespace

TEST_CASE("ternq-quantize: a format that packs nothing is refused; --allow-fallback, auto, --keep, the summary") {
  tools_test::temp_dir dir("tools-cli-formats");
  const auto small = dir.path() / "small.bin";  // 64-wide layers, ffn_down 128 wide
  write_random_llama2c(small, 64, 128);
  const std::string base = quantize_exe + " --model " + quote(small) + " --method absmean --out-gguf ";

  const auto refused = run(base + quote(dir.path() / "r.gguf") + " --format tq2_0");
  CHECK(refused.status != 0);
  CHECK(refused.output.find("--format tq2_0 packs none of the 14 linear layers: their widths (in_features 64 (12 "
                            "layers), 128 (2 layers)) are not multiples of its 256-element block") != std::string::npos);
  CHECK(refused.output.find("q2_0 (64-element blocks, 14 of 14 layers") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "r.gguf"));

  // Asked for: the layers fall back to Q2_0, and the run says so prominently.
  const auto fallback = dir.path() / "f.gguf";
  const auto allowed =
      run(base + quote(fallback) + " --format tq2_0 --allow-fallback --report " + quote(dir.path() / "f.json"));
  REQUIRE_MESSAGE(allowed.status == 0, allowed.output);
  {
    // The report gives the storage as fields: the type, and why it is not the chosen format.
    const nlohmann::json j = nlohmann::json::parse(std::ifstream(dir.path() / "f.json"));
    const auto& row = j["layers"][0];
    CHECK(row["layer"] == "blk.0.attn_q.weight");
    CHECK(row["format"] == "Q2_0");
    CHECK(row["format_reason"].get<std::string>().find("pack TQ2_0: in_features 64 is not a multiple") == 0);
    CHECK(row["refit_change"].is_null());
  }
  CHECK(allowed.output.find("WARNING: only 0 of 14 linear layers are TQ2_0") != std::string::npos);
  CHECK(allowed.output.find("14 fell back, 12 to Q2_0 (pack TQ2_0: in_features 64 is not a multiple") !=
        std::string::npos);
  {
    const io::gguf_reader r = io::gguf_reader::open(fallback);
    CHECK(r.tensor("blk.0.attn_q.weight").type == pack::ggml_type::q2_0);
    CHECK(r.metadata().get<std::uint32_t>("general.file_type") == 41);
  }

  // The default format for these widths is Q2_0 with its 64-element groups; the summary's figures are the file's.
  const auto automatic = dir.path() / "a.gguf";
  const auto report = dir.path() / "a.json";
  const auto a = run(base + quote(automatic) + " --report " + quote(report) + " --keep 'blk.1.ffn_*=q8_0' --keep " +
                     "token_embd=f16");
  REQUIRE_MESSAGE(a.status == 0, a.output);
  CHECK(a.output.find("format q2_0 (auto), group size 64") != std::string::npos);
  CHECK(a.output.find("WARNING") == std::string::npos);
  CHECK(a.output.find("; 0 fell back; 3 kept by --keep;") != std::string::npos);
  const summary_figures f = parse_summary(a.output);
  const io::gguf_reader r = io::gguf_reader::open(automatic);
  CHECK(r.tensor("blk.0.ffn_down.weight").type == pack::ggml_type::q2_0);
  CHECK(r.tensor("blk.1.ffn_down.weight").type == pack::ggml_type::q8_0);
  CHECK(r.tensor("blk.1.ffn_up.weight").type == pack::ggml_type::q8_0);
  CHECK(r.tensor("blk.1.attn_q.weight").type == pack::ggml_type::q2_0);
  CHECK(r.tensor("token_embd.weight").type == pack::ggml_type::f16);
  CHECK(r.metadata().get<std::uint32_t>("general.file_type") == 41);
  std::uint64_t linear_bytes = 0, linear_weights = 0, weights = 0;
  for (const auto& t : r.tensors()) {
    weights += t.rows() * t.cols();
    if (t.ne.size() == 2 && t.name.starts_with("blk.")) {
      linear_bytes += t.size;
      linear_weights += t.rows() * t.cols();
    }
  }
  const auto file_bytes = std::filesystem::file_size(automatic);
  CHECK(f.packed == 11);
  CHECK(f.linear == 14);
  CHECK(f.weights == weights);
  CHECK(f.bytes == file_bytes);
  CHECK(f.linear_bpw == doctest::Approx(8.0 * linear_bytes / linear_weights).epsilon(1e-4));
  CHECK(f.file_bpw == doctest::Approx(8.0 * file_bytes / weights).epsilon(1e-4));
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(report));
  CHECK(j["summary"]["format"] == "q2_0");
  for (const auto& row : j["layers"]) {
    const bool kept = row["layer"].get<std::string>().starts_with("blk.1.ffn_");
    CHECK(row["format"] == (kept ? "Q8_0" : "Q2_0"));
    CHECK(row["format_reason"] == (kept ? nlohmann::json("--keep") : nlohmann::json()));
  }
  CHECK(j["summary"]["group_size"] == 64);
  CHECK(j["summary"]["gguf"]["kept"] == 3);
  CHECK(j["summary"]["gguf"]["file_bytes"] == file_bytes);

  // Widths of 256: auto is TQ2_0 with 256-element groups.
  const auto wide = dir.path() / "wide.bin";
  write_random_llama2c(wide, 256, 512);
  const auto w = run(quantize_exe + " --model " + quote(wide) + " --method twn --out-gguf " +
                     quote(dir.path() / "w.gguf"));
  REQUIRE_MESSAGE(w.status == 0, w.output);
  CHECK(w.output.find("format tq2_0 (auto), group size 256") != std::string::npos);
  CHECK(parse_summary(w.output).packed == 14);
  CHECK(io::gguf_reader::open(dir.path() / "w.gguf").metadata().get<std::uint32_t>("general.file_type") == 37);

  // --refit: each re-fitted layer's relative change is a field of its row, and the table says it in words.
  const auto refit =
      run(quantize_exe + " --model " + quote(small) + " --method itf --out-gguf " + quote(dir.path() / "refit.gguf") +
          " --format q2_0 --refit --report " + quote(dir.path() / "refit.json"));
  REQUIRE_MESSAGE(refit.status == 0, refit.output);
  CHECK(refit.output.find("Q2_0; re-fitted (relative change ") != std::string::npos);
  // A named report: in C++20 a range-for over a member of a temporary reads it after its destruction.
  const nlohmann::json refit_report = nlohmann::json::parse(std::ifstream(dir.path() / "refit.json"));
  REQUIRE(!refit_report.at("layers").empty());
  for (const auto& row : refit_report.at("layers")) {
    CHECK(row["format"] == "Q2_0");
    CHECK(row["refit_change"].get<double>() > 0.0);
  }

  const auto bad_keep = run(base + quote(dir.path() / "k.gguf") + " --keep 'blk.7.*=q8_0'");
  CHECK(bad_keep.status != 0);
  CHECK(bad_keep.output.find("--keep 'blk.7.*=q8_0' matches no tensor") != std::string::npos);
}

TEST_CASE("ternq-quantize --help shows every default and the format advice") {
  const auto o = run(quantize_exe + " --help");
  CHECK(o.status == 0);
  CHECK(o.output.find("--format TEXT=auto") != std::string::npos);
  CHECK(o.output.find("default: the block of the chosen format") != std::string::npos);
  CHECK(o.output.find("COUNT >= 1") != std::string::npos);  // --calib-seqs
  CHECK(o.output.find("TQ2_0 is the fastest") != std::string::npos);
  CHECK(o.output.find("--allow-fallback") != std::string::npos);
  CHECK(o.output.find("--keep") != std::string::npos);
}

TEST_CASE("checks at the door: readable numeric limits, unwritable outputs and short calibration data before work") {
  tools_test::temp_dir dir("tools-cli-door");
  const auto zero = run(quantize_exe + " --calib-seqs 0");
  CHECK(zero.status != 0);
  CHECK(zero.output.find("--calib-seqs: must be a whole number >= 1 (got '0')") != std::string::npos);
  CHECK(zero.output.find("e-308") == std::string::npos);
  // An unsigned option given a sign is refused, not wrapped to 18446744073709551615.
  const auto negative = run(quantize_exe + " --method twn --group-size -1");
  CHECK(negative.status != 0);
  CHECK(negative.output.find("--group-size: must be a whole number >= 0 (got '-1')") != std::string::npos);
  CHECK(negative.output.find("18446744073709551615") == std::string::npos);
  const auto window = run(eval_exe + " --model m --text t --window -8");
  CHECK(window.status != 0);
  CHECK(window.output.find("--window: must be a whole number >= 0 (got '-8')") != std::string::npos);
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
  const auto ck_in_file = run(quantize_exe + " --tensors " + quote(text) + " --method absmean --out-fake " +
                              quote(dir.path() / "o.safetensors") + " --checkpoint-dir " + quote(text / "ck"));
  CHECK(ck_in_file.status != 0);
  CHECK(ck_in_file.output.find("[ternq.io] --checkpoint-dir '") != std::string::npos);
  CHECK(ck_in_file.output.find("x.txt' is not a directory") != std::string::npos);
  if (!have_shared("models/stories260K.bin")) return;
  // Model mode: a GGUF or report under a missing directory is refused before the model is quantized.
  for (const std::string option : {"--out-gguf", "--out-fake", "--report"}) {
    const std::string good = option == "--out-gguf" ? "" : " --out-gguf " + quote(dir.path() / "ok.gguf");
    const auto missing = run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") +
                             " --method absmean" + good + " " + option + " " + quote(dir.path() / "missing" / "out"));
    CHECK(missing.status != 0);
    CHECK(missing.output.find("[ternq.io] " + option + " '") != std::string::npos);
    CHECK(missing.output.find("' does not exist") != std::string::npos);
    CHECK(missing.output.find("blk.0") == std::string::npos);  // no layer was quantized
    CHECK_FALSE(std::filesystem::exists(dir.path() / "ok.gguf"));
  }
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
