// SPDX-License-Identifier: MIT
// ternq-quantize's streaming pipeline as a person runs it: a run stopped part-way and resumed writes the same bytes
// as an uninterrupted one, for any thread count; mismatched or damaged checkpoints are refused; BF16 calibration
// activations are stated in the report; on synthetic Hugging Face models (BF16 shards) the peak memory does not
// grow with the number of blocks.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llama/gguf_io.hpp"
#include "llama/load.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::have_shared;
using tools_test::quote;
using tools_test::run;
using tools_test::shared_dir;

const std::string quantize_exe = TERNQ_QUANTIZE_EXE;
const std::string synth_exe = TERNQ_SYNTH_EXE;

std::vector<char> bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json json_of(const std::filesystem::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

/// ternq-quantize on stories260K with act-order GPTQ and AGA into Q2_0, on a short calibration slice; the
/// outputs and run options are the caller's.
std::string stories_act_order_command() {
  return quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") + " --tokenizer " +
         quote(shared_dir() / "models/tok512.bin") + " --method gptq_act_optimal_aga --calib-text " +
         quote(shared_dir() / "text/tinystories_validation_head.txt") + " --calib-seqs 8 --calib-len 128 --format q2_0";
}

}  // namespace

TEST_CASE("stories260K: a run stopped after two blocks and resumed writes the bytes of an uninterrupted run") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("cli-resume");
  const auto d = dir.path();
  const std::string common = stories_act_order_command();
  const auto whole = run(common + " --threads 1 --out-gguf " + quote(d / "a.gguf") + " --out-fake " +
                         quote(d / "a.bin") + " --report " + quote(d / "a.json"));
  REQUIRE(whole.status == 0);
  CHECK(whole.output.find("time per stage over 5 blocks: load") != std::string::npos);
  // The temporary checkpoint beside the output is gone.
  for (const auto& e : std::filesystem::directory_iterator(d)) {
    CHECK(e.path().filename().string().find("ternq-checkpoint") == std::string::npos);
  }

  const std::string resumable = common + " --threads 2 --out-gguf " + quote(d / "b.gguf") + " --out-fake " +
                                quote(d / "b.bin") + " --report " + quote(d / "b.json") + " --checkpoint-dir " +
                                quote(d / "ck");
  const auto stopped = run(resumable + " --stop-after-blocks 2");
  CHECK(stopped.status == 3);
  CHECK(stopped.output.find("stopped after block 2 of 5") != std::string::npos);
  CHECK(!std::filesystem::exists(d / "b.gguf"));
  CHECK(std::filesystem::exists(d / "ck/manifest.json"));
  CHECK(json_of(d / "ck/manifest.json")["blocks_done"] == 2);

  // Without --resume the checkpoint is not touched; with another method it is refused.
  const auto again = run(resumable);
  CHECK(again.status != 0);
  CHECK(again.output.find("pass --resume to continue it") != std::string::npos);
  std::string other = resumable;
  other.replace(other.find("gptq_act_optimal_aga"), 20, "gptq_act_optimal");
  const auto mismatch = run(other + " --resume");
  CHECK(mismatch.status != 0);
  CHECK(mismatch.output.find("belongs to another run (it differs in: method") != std::string::npos);
  CHECK(json_of(d / "ck/manifest.json")["blocks_done"] == 2);

  const auto resumed = run(resumable + " --resume");
  REQUIRE(resumed.status == 0);
  CHECK(resumed.output.find("resuming from") != std::string::npos);
  CHECK(bytes_of(d / "a.gguf") == bytes_of(d / "b.gguf"));
  CHECK(bytes_of(d / "a.bin") == bytes_of(d / "b.bin"));
  CHECK(!std::filesystem::exists(d / "ck"));  // removed once the run is complete
  const auto ra = json_of(d / "a.json"), rb = json_of(d / "b.json");
  CHECK(rb["summary"]["resumed_at_block"] == 2);
  REQUIRE(rb["layers"].size() == 35);
  for (std::size_t i = 0; i < 35; ++i) {
    CHECK(ra["layers"][i]["rel_e_x"] == rb["layers"][i]["rel_e_x"]);
    CHECK(ra["layers"][i]["format"] == rb["layers"][i]["format"]);
  }
  REQUIRE(ra["summary"]["block_times"].size() == 5);
  CHECK(ra["summary"]["block_times"][0].contains("forward_s"));
  CHECK(ra["summary"]["peak_resident_bytes"].get<std::uint64_t>() > 0);

  // BF16 activations: another result, and the report says so.
  const auto bf16 = run(common + " --out-gguf " + quote(d / "c.gguf") + " --calib-activations bf16 --report " +
                        quote(d / "c.json"));
  REQUIRE(bf16.status == 0);
  CHECK(json_of(d / "c.json")["summary"]["calibration_activations"] == "bf16");
  CHECK(bytes_of(d / "a.gguf") != bytes_of(d / "c.gguf"));
}

TEST_CASE(
    "stories260K with --fp-target: the unquantized hidden state is checkpointed beside the quantized one, so a "
    "resumed run writes the bytes of an uninterrupted one") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("cli-resume-fp-target");
  const auto d = dir.path();
  const std::string common = stories_act_order_command();
  REQUIRE(run(common + " --out-gguf " + quote(d / "plain.gguf")).status == 0);
  REQUIRE(
      run(common + " --fp-target --threads 1 --out-gguf " + quote(d / "a.gguf") + " --report " + quote(d / "a.json"))
          .status == 0);
  CHECK(json_of(d / "a.json")["summary"]["fp_target"] == true);
  CHECK(bytes_of(d / "a.gguf") != bytes_of(d / "plain.gguf"));

  const std::string resumable =
      common + " --fp-target --threads 2 --out-gguf " + quote(d / "b.gguf") + " --checkpoint-dir " + quote(d / "ck");
  REQUIRE(run(resumable + " --stop-after-blocks 2").status == 3);
  // Without --fp-target the checkpoint belongs to another run.
  std::string plain = resumable;
  plain.erase(plain.find(" --fp-target"), 12);
  const auto mismatch = run(plain + " --resume");
  CHECK(mismatch.status != 0);
  CHECK(mismatch.output.find("differs in: fp_target") != std::string::npos);
  REQUIRE(run(resumable + " --resume").status == 0);
  CHECK(bytes_of(d / "a.gguf") == bytes_of(d / "b.gguf"));

  // It needs calibration data.
  const auto free = run(quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") +
                        " --method optimal --fp-target --out-gguf " + quote(d / "c.gguf"));
  CHECK(free.status != 0);
  CHECK(free.output.find("--fp-target needs calibration data") != std::string::npos);
}

TEST_CASE("data-free methods stream and resume too, and a damaged checkpoint is refused before any work") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("cli-resume-free");
  const auto d = dir.path();
  const std::string common = quantize_exe + " --model " + quote(shared_dir() / "models/stories260K.bin") +
                             " --method optimal --format q2_0 --out-gguf ";
  REQUIRE(run(common + quote(d / "a.gguf")).status == 0);
  const std::string resumable = common + quote(d / "b.gguf") + " --checkpoint-dir " + quote(d / "ck");
  REQUIRE(run(resumable + " --stop-after-blocks 3").status == 3);
  CHECK(!std::filesystem::exists(d / "ck/activations-00003.bin"));  // nothing to carry without calibration
  {
    std::fstream f(d / "ck/block-00001.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7F');
  }
  const auto damaged = run(resumable + " --resume");
  CHECK(damaged.status != 0);
  CHECK(damaged.output.find("block-00001.bin' fails its checksum") != std::string::npos);
  std::filesystem::remove_all(d / "ck");
  REQUIRE(run(resumable + " --stop-after-blocks 3").status == 3);
  REQUIRE(run(resumable + " --resume --keep-checkpoint").status == 0);
  CHECK(bytes_of(d / "a.gguf") == bytes_of(d / "b.gguf"));
  CHECK(std::filesystem::exists(d / "ck/manifest.json"));
}

TEST_CASE("a synthetic Hugging Face model in BF16 shards: resumed runs and thread counts give the same GGUF and fake "
          "model, and the fake model is the GGUF") {
  tools_test::temp_dir dir("cli-synth-resume");
  const auto d = dir.path();
  REQUIRE(run(synth_exe + " --preset tiny --layers 4 --shard-size 200kB --seed 5 --out " + quote(d / "m")).status == 0);
  REQUIRE(std::filesystem::exists(d / "m/model.safetensors.index.json"));
  {
    std::ofstream ids(d / "ids.txt");
    for (int i = 0; i < 8 * 64; ++i) ids << (i * 7919 + 13) % 512 << ' ';
  }
  const std::string common = quantize_exe + " --model " + quote(d / "m") + " --calib-tokens " + quote(d / "ids.txt") +
                             " --calib-seqs 8 --calib-len 64 --method gptq_ssr_optimal_aga --group-size 128";
  const auto whole = run(common + " --threads 1 --out-gguf " + quote(d / "a.gguf") + " --out-fake " + quote(d / "a"));
  REQUIRE(whole.status == 0);
  const std::string resumable = common + " --threads 2 --checkpoint-dir " + quote(d / "ck") + " --out-gguf " +
                                quote(d / "b.gguf") + " --out-fake " + quote(d / "b");
  REQUIRE(run(resumable + " --stop-after-blocks 1").status == 3);
  REQUIRE(run(resumable + " --resume").status == 0);
  CHECK(bytes_of(d / "a.gguf") == bytes_of(d / "b.gguf"));
  CHECK(bytes_of(d / "a/model.safetensors") == bytes_of(d / "b/model.safetensors"));
  const auto config = json_of(d / "a/config.json");
  CHECK(config["torch_dtype"] == "float32");
  // The fake model (Hugging Face layout, F32) holds exactly what the GGUF decodes to.
  const llama::model fake = llama::load_hf(d / "a");
  const llama::model file = llama::load_gguf(d / "a.gguf");
  REQUIRE(fake.layers.size() == 4);
  for (std::size_t l = 0; l < 4; ++l) {
    for (const auto which : llama::all_linears) CHECK(fake.layers[l].weight(which) == file.layers[l].weight(which));
  }
  CHECK(fake.embedding == file.embedding);
}

// AddressSanitizer keeps freed memory in quarantine (up to 256 MB), so under it a peak grows with everything the
// run ever freed: the comparison below is meaningful only without it.
#if defined(__SANITIZE_ADDRESS__)
#define TERNQ_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TERNQ_TEST_ASAN 1
#endif
#endif

namespace {
/// The peak resident memory ternq-quantize reports for a synthetic model of `layers` blocks.
std::uint64_t peak_for(const std::filesystem::path& d, std::size_t layers) {
  const auto m = d / ("m" + std::to_string(layers));
  REQUIRE(run(synth_exe + " --preset tiny --dim 256 --hidden 688 --heads 4 --kv-heads 4 --vocab 512 --layers " +
              std::to_string(layers) + " --out " + quote(m))
              .status == 0);
  const auto report = d / ("r" + std::to_string(layers) + ".json");
  const auto o = run(quantize_exe + " --model " + quote(m) + " --calib-tokens " + quote(d / "ids.txt") +
                     " --calib-seqs 4 --calib-len 64 --method gptq_optimal --threads 1 --out-gguf " +
                     quote(d / "x.gguf") + " --report " + quote(report));
  REQUIRE(o.status == 0);
  return json_of(report)["summary"]["peak_resident_bytes"].get<std::uint64_t>();
}
}  // namespace

TEST_CASE("peak memory does not grow with the number of blocks") {
  // Each block is 3.2 MB in fp32; a pipeline that kept the blocks it had read would hold 12 more of them with 16
  // blocks than with 4, over a third of the 4-block peak.
#ifdef TERNQ_TEST_ASAN
  MESSAGE("skipped under AddressSanitizer: its quarantine keeps freed memory resident");
  return;
#endif
  tools_test::temp_dir dir("cli-synth-memory");
  {
    std::ofstream ids(dir.path() / "ids.txt");
    for (int i = 0; i < 4 * 64; ++i) ids << (i * 104729 + 7) % 512 << ' ';
  }
  const std::uint64_t four = peak_for(dir.path(), 4), sixteen = peak_for(dir.path(), 16);
  MESSAGE("peak resident memory: 4 blocks ", four, " bytes, 16 blocks ", sixteen, " bytes");
  CHECK(static_cast<double>(sixteen) <= 1.1 * static_cast<double>(four));
  CHECK(static_cast<double>(sixteen) >= 0.9 * static_cast<double>(four));
}
