// SPDX-License-Identifier: MIT
// The outputs of a finished run stream the vocabulary-sized matrices (embedding, classifier) a slice of rows at a
// time: the GGUF, the fake GGUF and the fake Hugging Face model are byte for byte the files of the whole-matrix
// assembly, for every kind of source, storage and slice size.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/half.hpp>
#include <ternq/io/safetensors_shards.hpp>

#include "cli/storage.hpp"
#include "llama/assemble.hpp"
#include "llama/checkpoint.hpp"
#include "llama/gguf_io.hpp"
#include "llama/save.hpp"
#include "llama/source.hpp"
#include "synth/synthetic_llama.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
namespace llama = ternq::llama;
using pack::ggml_type;

std::vector<char> bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// 40 tokens: not a multiple of the 7-row slices below.
llama::config small_config() {
  llama::config cfg;
  cfg.dim = 64;
  cfg.hidden_dim = 80;
  cfg.n_layers = 2;
  cfg.n_heads = 4;
  cfg.n_kv_heads = 2;
  cfg.vocab_size = 40;
  cfg.seq_len = 16;
  return cfg;
}

void round_to_fp16(llama::matrix& m) {
  for (Eigen::Index k = 0; k < m.size(); ++k) m.data()[k] = fp16_bits_to_fp32(fp32_to_fp16_bits(m.data()[k]));
}

/// The assembly as it was before it streamed, the reference of these tests: the embedding and classifier read
/// whole, rounded whole, planned by `plan_matrix` of the whole matrices.
struct whole_matrices {
  llama::matrix embedding;
  llama::vector final_norm;
  std::optional<llama::matrix> classifier;

  whole_matrices(const llama::model_source& s, const llama::matrix_rounding& round)
      : embedding(s.embedding()), final_norm(s.final_norm()), classifier(s.classifier()) {
    round("token_embd.weight", embedding);
    if (classifier) round("output.weight", *classifier);
  }
  [[nodiscard]] std::vector<llama::planned_tensor> plans(const llama::config& cfg,
                                                         const llama::gguf_storage& storage) const {
    std::vector<llama::planned_tensor> out;
    out.push_back(llama::plan_matrix("token_embd.weight", embedding, storage));
    out.push_back(llama::plan_norm("output_norm.weight", final_norm));
    if (classifier) out.push_back(llama::plan_matrix("output.weight", *classifier, storage));
    if (!cfg.rope_factors.empty()) out.push_back(llama::plan_rope_factors(cfg));
    return out;
  }
};

/// A model to assemble from, with the `--keep` rules of the run.
struct source_case {
  std::string label;
  std::filesystem::path path;
  std::map<std::string, ggml_type> keep;
  std::string embedding_type;   ///< the type the GGUF stores the embedding as (empty: not checked)
  std::string classifier_type;  ///< the classifier's ("none" when tied; empty: not checked)
};

/// A finished run's checkpoint for `source`: every block as `block_entries` stores it dense (F32).
void finish_run(const std::filesystem::path& dir, const llama::model_source& source) {
  llama::checkpoint ck(dir, {{"test", "assemble"}}, false);
  const llama::gguf_storage dense{.f16_when_lossless = false};
  for (std::size_t l = 0; l < source.cfg().n_layers; ++l) {
    ck.commit_block(l, llama::block_entries(l, source.block(l), source.cfg(), {}, dense, true), nullptr,
                    llama::activation_precision::f32, {{"rows", nlohmann::json::array()}});
  }
}

/// Every case's outputs, streamed in slices of one row, of seven rows and of the default size, against the
/// whole-matrix reference.
void check_streamed_outputs(const source_case& c, const std::filesystem::path& dir) {
  CAPTURE(c.label);
  const auto kind = llama::detect_model_kind(c.path);
  const auto source = llama::open_source(c.path, kind);
  const llama::config& cfg = source->cfg();
  const llama::matrix_rounding round = [&](const std::string& name, llama::matrix& values) {
    if (const auto it = c.keep.find(name); it != c.keep.end()) cli::round_to_type(values, it->second, name);
  };
  const llama::gguf_storage storage{.keep = c.keep};
  const auto ck_dir = dir / "ck";
  finish_run(ck_dir, *source);
  const llama::checkpoint ck(ck_dir, {{"test", "assemble"}}, true);
  const llama::block_files blocks(ck, cfg.n_layers);

  // The references: the whole-matrix plans written by the same writer.
  const whole_matrices whole(*source, round);
  std::vector<llama::planned_tensor> plans = whole.plans(cfg, storage);
  for (auto& p : llama::block_plans(cfg, blocks)) plans.push_back(std::move(p));
  const auto expected = llama::write_llama_gguf(cfg, plans, nullptr, dir / "whole.gguf", "t");
  std::vector<llama::planned_tensor> fake_plans = whole.plans(cfg, llama::gguf_storage{});
  for (auto& p : llama::fake_block_plans(cfg, blocks)) fake_plans.push_back(std::move(p));
  (void)llama::write_llama_gguf(cfg, fake_plans, nullptr, dir / "whole-fake.gguf", "t");
  REQUIRE(expected.size() >= 2);
  if (!c.embedding_type.empty()) CHECK(expected[0].type == c.embedding_type);
  if (!c.classifier_type.empty()) {
    CHECK((expected[2].name == "output.weight" ? expected[2].type : std::string("none")) == c.classifier_type);
  }
  // A Hugging Face source also gets a fake Hugging Face output: one slice of the whole matrix is the previous
  // computation (read whole, rounded whole, written whole), and its values are checked against the whole matrices.
  const bool hf = kind == llama::model_kind::hugging_face;
  if (hf) {
    llama::assemble_fake_hf(*source, cfg, blocks, round, c.path, dir / "whole-hf", cfg.vocab_size * cfg.dim);
    const io::safetensors_shards out(dir / "whole-hf");
    CHECK(out.values("model.embed_tokens.weight") ==
          std::vector<float>(whole.embedding.data(), whole.embedding.data() + whole.embedding.size()));
    CHECK(out.contains("lm_head.weight") == whole.classifier.has_value());
    if (whole.classifier) {
      CHECK(out.values("lm_head.weight") ==
            std::vector<float>(whole.classifier->data(), whole.classifier->data() + whole.classifier->size()));
    }
  }

  for (const std::size_t rows : {std::size_t{1}, std::size_t{7}, llama::slice_values / cfg.dim}) {
    CAPTURE(rows);
    const std::size_t max_values = rows * cfg.dim;
    const auto stored =
        llama::assemble_gguf(*source, cfg, blocks, storage, round, nullptr, dir / "streamed.gguf", "t", max_values);
    CHECK(bytes_of(dir / "streamed.gguf") == bytes_of(dir / "whole.gguf"));
    REQUIRE(stored.size() == expected.size());
    for (std::size_t i = 0; i < stored.size(); ++i) {
      CHECK(stored[i].name == expected[i].name);
      CHECK(stored[i].type == expected[i].type);
      CHECK(stored[i].bytes == expected[i].bytes);
      CHECK(stored[i].kept == expected[i].kept);
    }
    llama::assemble_fake_gguf(*source, cfg, blocks, round, nullptr, dir / "streamed-fake.gguf", "t", max_values);
    CHECK(bytes_of(dir / "streamed-fake.gguf") == bytes_of(dir / "whole-fake.gguf"));
    if (hf) {
      llama::assemble_fake_hf(*source, cfg, blocks, round, c.path, dir / "streamed-hf", max_values);
      CHECK(bytes_of(dir / "streamed-hf/model.safetensors") == bytes_of(dir / "whole-hf/model.safetensors"));
      CHECK(bytes_of(dir / "streamed-hf/config.json") == bytes_of(dir / "whole-hf/config.json"));
    }
  }
}

}  // namespace

TEST_CASE("the row slices of a matrix cover it once, in order, the last one short") {
  llama::matrix m(10, 3);
  for (Eigen::Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<float>(k);
  llama::row_reader r{.rows = 10, .cols = 3, .read = [&](std::size_t first, llama::matrix& out) {
                        out = m.middleRows(static_cast<Eigen::Index>(first), out.rows());
                      }};
  std::vector<Eigen::Index> heights;
  llama::matrix joined(0, 3);
  llama::for_each_slice(r, 12, [&](const llama::matrix& slice) {
    heights.push_back(slice.rows());
    joined.conservativeResize(joined.rows() + slice.rows(), 3);
    joined.bottomRows(slice.rows()) = slice;
    return true;
  });
  CHECK(heights == std::vector<Eigen::Index>{4, 4, 2});
  CHECK(joined == m);
  heights.clear();
  llama::for_each_slice(r, 1, [&](const llama::matrix& slice) {  // fewer values than a row: a row at a time
    heights.push_back(slice.rows());
    return heights.size() < 3;  // and it stops when asked
  });
  CHECK(heights == std::vector<Eigen::Index>{1, 1, 1});
  // Whether F16 is lossless is decided over every slice: a value in the last row decides it.
  round_to_fp16(m);
  CHECK(llama::exactly_fp16(r, 6));
  m(9, 2) = 1.0F + 1e-6F;
  CHECK_FALSE(llama::exactly_fp16(r, 6));
}

TEST_CASE("the streamed GGUF, fake GGUF and fake Hugging Face outputs are the files of the whole-matrix assembly") {
  const tools_test::temp_dir dir("assemble");
  const auto d = dir.path();
  std::vector<source_case> cases;

  // Hugging Face, F32, untied: F32 storage; and with --keep q8_0 on both.
  {
    llama::model m = tools_test::random_model(21, small_config());
    m.cfg.rope = llama::rope_style::interleaved;
    std::filesystem::create_directories(d / "hf-src");
    std::ofstream(d / "hf-src" / "config.json") << tools_test::hf_config(m).dump();
    llama::save_hf(m, d / "hf-src", d / "hf-f32");
    cases.push_back({"hf f32", d / "hf-f32", {}, "F32", "F32"});
    cases.push_back({"hf f32, --keep q8_0",
                     d / "hf-f32",
                     {{"token_embd.weight", ggml_type::q8_0}, {"output.weight", ggml_type::q8_0}},
                     "Q8_0",
                     "Q8_0"});
  }
  // Hugging Face shards in BF16 and in F16 (250 tokens): F16 is lossless for the F16 model; --keep q8_0 and bf16.
  for (const auto type : {io::dtype::bf16, io::dtype::f16}) {
    synth::options o;
    o.config = synth::preset_config("tiny");
    o.config.num_hidden_layers = 1;
    o.config.vocab_size = 250;
    o.type = type;
    o.seed = 3;
    o.threads = 1;
    o.shard_size = 100'000;
    const auto path = d / (std::string("hf-") + std::string(io::dtype_name(type)));
    synth::write_synthetic_llama(path, o);
    REQUIRE(std::filesystem::exists(path / "model.safetensors.index.json"));
    const bool f16 = type == io::dtype::f16;
    cases.push_back({"hf " + std::string(io::dtype_name(type)), path, {}, f16 ? "F16" : "", f16 ? "F16" : ""});
    cases.push_back({"hf " + std::string(io::dtype_name(type)) + ", --keep q8_0 and bf16",
                     path,
                     {{"token_embd.weight", ggml_type::q8_0}, {"output.weight", ggml_type::bf16}},
                     "Q8_0",
                     "BF16"});
  }
  // GGUF, F16, tied: F16 storage, no output.weight.
  {
    llama::model m = tools_test::random_model(22, small_config());
    m.classifier.reset();
    round_to_fp16(m.embedding);
    (void)llama::save_gguf(m, {}, {}, nullptr, d / "f16-tied.gguf", "t");
    cases.push_back({"gguf f16, tied", d / "f16-tied.gguf", {}, "F16", "none"});
    cases.push_back(
        {"gguf f16, tied, --keep q8_0", d / "f16-tied.gguf", {{"token_embd.weight", ggml_type::q8_0}}, "Q8_0", "none"});
  }
  // GGUF with a Q8_0 embedding and a classifier of fp16 values but for one in its last row: F32, decided by the
  // last slice.
  {
    llama::model m = tools_test::random_model(23, small_config());
    round_to_fp16(*m.classifier);
    (*m.classifier)(39, 63) = 1.0F + 1e-6F;
    (void)llama::save_gguf(m, {}, {.keep = {{"token_embd.weight", ggml_type::q8_0}}}, nullptr, d / "q8_0.gguf", "t");
    REQUIRE(llama::gguf_source(d / "q8_0.gguf").reader().tensor("token_embd.weight").type == ggml_type::q8_0);
    cases.push_back({"gguf q8_0 embedding, one non-fp16 classifier value", d / "q8_0.gguf", {}, "", "F32"});
  }
  // llama2.c, tied (shared classifier), the embedding kept as F16.
  {
    llama::model m = tools_test::random_model(24, small_config());
    m.classifier.reset();
    llama::save_llama2c(m, d / "tied.bin");
    cases.push_back({"llama2.c, tied", d / "tied.bin", {}, "F32", "none"});
    cases.push_back(
        {"llama2.c, tied, --keep f16", d / "tied.bin", {{"token_embd.weight", ggml_type::f16}}, "F16", "none"});
  }

  for (std::size_t k = 0; k < cases.size(); ++k) check_streamed_outputs(cases[k], d / ("case-" + std::to_string(k)));
}
