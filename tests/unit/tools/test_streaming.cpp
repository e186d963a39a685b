// SPDX-License-Identifier: MIT
// The streaming whole-model path: model sources (block by block, embedding rows on demand), per-block
// quantization against the whole-model pass, and the checkpoint files (round trips, damage, mismatched runs).
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/adapters/eigen.hpp>
#include <ternq/core/half.hpp>
#include <ternq/ternq.hpp>

#include "llama/assemble.hpp"
#include "llama/checkpoint.hpp"
#include "llama/gguf_io.hpp"
#include "llama/load.hpp"
#include "llama/save.hpp"
#include "llama/sequential.hpp"
#include "llama/source.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
namespace llama = ternq::llama;

llama::config small_config(std::size_t layers) {
  llama::config cfg;
  cfg.dim = 64;
  cfg.hidden_dim = 80;
  cfg.n_layers = layers;
  cfg.n_heads = 4;
  cfg.n_kv_heads = 2;
  cfg.vocab_size = 40;
  cfg.seq_len = 16;
  return cfg;
}

/// `m` written as a Hugging Face directory (F32) by `save_hf`.
std::filesystem::path write_hf(const llama::model& m, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir / "src");
  std::ofstream(dir / "src" / "config.json") << tools_test::hf_config(m).dump();
  llama::save_hf(m, dir / "src", dir / "model");
  return dir / "model";
}

void check_same_block(const llama::layer& a, const llama::layer& b) {
  for (const auto which : llama::all_linears) CHECK(a.weight(which) == b.weight(which));
  CHECK(a.attn_norm == b.attn_norm);
  CHECK(a.ffn_norm == b.ffn_norm);
}

}  // namespace

TEST_CASE("every model source gives the blocks, embedding rows and classifier of the whole-model loader") {
  const tools_test::temp_dir dir("sources");
  llama::model m = tools_test::random_model(11, small_config(3));
  m.cfg.rope = llama::rope_style::interleaved;
  const auto hf_dir = write_hf(m, dir.path() / "hf");
  llama::save_llama2c(m, dir.path() / "m.bin");
  (void)llama::save_gguf(m, {}, {.f16_when_lossless = false}, nullptr, dir.path() / "m.gguf", "t");
  for (const auto& path : {hf_dir, dir.path() / "m.bin", dir.path() / "m.gguf"}) {
    CAPTURE(path.string());
    const auto source = llama::open_source(path, llama::detect_model_kind(path));
    CHECK(source->cfg().dim == m.cfg.dim);
    CHECK(source->cfg().n_layers == 3);
    for (std::size_t l = 0; l < 3; ++l) check_same_block(source->block(l), m.layers[l]);
    std::vector<float> rows(2 * m.cfg.dim);
    source->embedding_rows(7, rows);
    for (std::size_t j = 0; j < m.cfg.dim; ++j) {
      CHECK(rows[j] == m.embedding(7, static_cast<Eigen::Index>(j)));
      CHECK(rows[m.cfg.dim + j] == m.embedding(8, static_cast<Eigen::Index>(j)));
    }
    REQUIRE(source->has_classifier());
    CHECK(*source->classifier() == *m.classifier);
    CHECK(source->final_norm() == m.final_norm);
    std::vector<float> too_many(3 * m.cfg.dim);
    CHECK_THROWS_AS(source->embedding_rows(m.cfg.vocab_size - 2, too_many), ternq::error);
    CHECK(!llama::file_fingerprint(source->files().back()).empty());
  }
}

TEST_CASE("file fingerprints tell models apart and copies alike") {
  const tools_test::temp_dir dir("fingerprint");
  const llama::model a = tools_test::random_model(1, small_config(2));
  llama::model b = a;
  b.layers[1].w2(3, 5) += 1e-3F;  // one weight in the middle of the file
  llama::save_llama2c(a, dir.path() / "a.bin");
  llama::save_llama2c(b, dir.path() / "b.bin");
  std::filesystem::copy_file(dir.path() / "a.bin", dir.path() / "copy.bin");
  CHECK(llama::file_fingerprint(dir.path() / "a.bin") == llama::file_fingerprint(dir.path() / "copy.bin"));
  // Small files are read whole, so a change anywhere shows.
  CHECK(llama::file_fingerprint(dir.path() / "a.bin") != llama::file_fingerprint(dir.path() / "b.bin"));
}

TEST_CASE("quantizing block by block from a source equals the whole-model sequential pass, bit for bit") {
  const tools_test::temp_dir dir("blockwise");
  const llama::model m = tools_test::random_model(5, small_config(3));
  const auto hf_dir = write_hf(m, dir.path() / "hf");
  const llama::batch calib = tools_test::random_batch(3, 12, m.cfg.vocab_size, 9);
  const llama::layer_quantizer quantize = [](const llama::matrix& w, const Eigen::MatrixXd& gram, std::size_t,
                                             llama::linear) {
    return ternq::quantize(w, ternq::gptq{.grid = ternq::optimal_symmetric{.group_size = 16}}, gram);
  };
  for (const unsigned threads : {1U, 2U}) {
    CAPTURE(threads);
    const cpu_exec exec{.threads = threads};
    llama::model whole = llama::load_hf(hf_dir);
    const auto expected = llama::quantize_sequential(whole, calib, quantize, {}, {}, exec);

    const llama::hf_source source(hf_dir);
    llama::matrix h = llama::embed(source, calib);
    CHECK(h == llama::embed(whole, calib));
    std::size_t k = 0;
    for (std::size_t l = 0; l < 3; ++l) {
      llama::layer w = source.block(l);
      llama::block_times times;
      const auto got = llama::quantize_block(source.cfg(), l, w, h, calib, quantize, {}, {}, exec, 7 * l, 21, &times);
      REQUIRE(got.size() == 7);
      for (const auto& r : got) {
        CHECK(r.relative_output_error == expected[k].relative_output_error);
        const auto a = r.quantized.codes(), b = expected[k].quantized.codes();
        CHECK(std::vector<std::int8_t>(a.begin(), a.end()) == std::vector<std::int8_t>(b.begin(), b.end()));
        ++k;
      }
      check_same_block(w, whole.layers[l]);
      CHECK(times.forward >= 0.0);
      CHECK(times.quantize > 0.0);
    }
  }
}

TEST_CASE("FFN padding of one block keeps its function") {
  llama::model m = tools_test::random_model(3, small_config(1));
  const llama::batch b = tools_test::random_batch(2, 8, m.cfg.vocab_size, 4);
  llama::matrix h0 = llama::embed(m, b), h1 = h0;
  llama::block_forward(m.cfg, 0, m.layers[0], h0, b, llama::no_observer{});
  llama::layer padded = m.layers[0];
  llama::pad_block_ffn(padded, 96);
  CHECK(padded.w1.rows() == 96);
  CHECK(padded.w2.cols() == 96);
  llama::block_forward(m.cfg, 0, padded, h1, b, llama::no_observer{});
  CHECK((h1 - h0).cwiseAbs().maxCoeff() <= 1e-5F * (1.0F + h0.cwiseAbs().maxCoeff()));
  CHECK_THROWS_AS(llama::pad_block_ffn(padded, 64), ternq::error);
}

TEST_CASE("block files round-trip their tensors and refuse damage") {
  const tools_test::temp_dir dir("blockfile");
  const llama::model m = tools_test::random_model(2, small_config(1));
  ternary_matrix q = ternq::quantize(m.layers[0].wq, ternq::absmean{.group_size = 64});
  for (float& x : q.scales()) x = fp16_bits_to_fp32(fp32_to_fp16_bits(x));  // what a block stores
  std::array<const ternary_matrix*, 7> ternary{};
  ternary[0] = &q;
  llama::layer w = m.layers[0];
  ternq::dequantize(q, w.wq);
  const llama::gguf_storage storage{.format = pack::format::q2_0, .f16_when_lossless = false};
  const auto entries = llama::block_entries(0, w, m.cfg, ternary, storage, true);
  REQUIRE(entries.size() == 9);
  CHECK(entries[1].info.type == "Q2_0");
  CHECK(entries[2].info.type == "F32");
  const auto path = dir.path() / "block-00000.bin";
  llama::write_block_file(path, 0, entries);
  {
    const llama::block_file f(path, 0);
    REQUIRE(f.size() == entries.size());
    for (std::size_t i = 0; i < f.size(); ++i) {
      CHECK(f.info(i).name == entries[i].info.name);
      CHECK(f.info(i).ggml == entries[i].info.ggml);
      CHECK(f.info(i).linear == entries[i].info.linear);
      CHECK(f.ne(i) == entries[i].ne);
      CHECK(f.data(i) == entries[i].data);
    }
    // The packed q decodes to exactly the dequantized weights.
    CHECK(f.values(f.find("blk.0.attn_q.weight")) == w.wq);
    CHECK(f.values(f.find("blk.0.ffn_down.weight")) == w.w2);
  }
  CHECK_THROWS_WITH_AS(llama::block_file(path, 1), doctest::Contains("another block"), ternq::error);
  // One flipped byte anywhere, or a cut, is refused.
  for (const std::size_t at : {std::size_t{9}, std::size_t{200}, std::filesystem::file_size(path) - 3}) {
    const auto bad = dir.path() / ("bad-" + std::to_string(at));
    std::filesystem::copy_file(path, bad);
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.put('\x5A');
    f.close();
    CHECK_THROWS_WITH_AS(llama::block_file(bad, 0), doctest::Contains("checksum"), ternq::error);
  }
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1);
  CHECK_THROWS_AS(llama::block_file(path, 0), ternq::error);
}

TEST_CASE("activations round-trip in f32 exactly and in bf16 as bf16 values") {
  const tools_test::temp_dir dir("activations");
  llama::matrix h = llama::matrix::Random(13, 7);
  llama::write_activations(dir.path() / "a.bin", 4, h, llama::activation_precision::f32);
  CHECK(llama::read_activations(dir.path() / "a.bin", 4, 13, 7, llama::activation_precision::f32) == h);
  CHECK_THROWS_AS(llama::read_activations(dir.path() / "a.bin", 5, 13, 7, llama::activation_precision::f32),
                  ternq::error);
  CHECK_THROWS_AS(llama::read_activations(dir.path() / "a.bin", 4, 7, 13, llama::activation_precision::f32),
                  ternq::error);
  CHECK_THROWS_AS(llama::read_activations(dir.path() / "a.bin", 4, 13, 7, llama::activation_precision::bf16),
                  ternq::error);
  llama::write_activations(dir.path() / "b.bin", 4, h, llama::activation_precision::bf16);
  CHECK(std::filesystem::file_size(dir.path() / "b.bin") < std::filesystem::file_size(dir.path() / "a.bin"));
  llama::matrix rounded = h;
  llama::round_to_bf16(rounded);
  CHECK(rounded != h);
  CHECK(llama::read_activations(dir.path() / "b.bin", 4, 13, 7, llama::activation_precision::bf16) == rounded);
}

TEST_CASE("a checkpoint resumes only the run it belongs to") {
  const tools_test::temp_dir dir("checkpoint");
  const auto ck_dir = dir.path() / "ck";
  const nlohmann::json fingerprint = {{"model", "m"}, {"method", "gptq_optimal"}, {"group_size", 64}};
  const llama::model m = tools_test::random_model(2, small_config(2));
  const llama::gguf_storage storage{.format = pack::format::q2_0, .f16_when_lossless = false};
  const llama::matrix h = llama::matrix::Random(6, 64);
  {
    llama::checkpoint ck(ck_dir, fingerprint, false);
    CHECK(ck.blocks_done() == 0);
    ck.commit_block(0, llama::block_entries(0, m.layers[0], m.cfg, {}, storage, true), &h, llama::activation_precision::f32,
                    {{"rows", nlohmann::json::array()}});
    CHECK(ck.blocks_done() == 1);
    CHECK_THROWS_AS(ck.commit_block(0, {}, nullptr, llama::activation_precision::f32, {}), ternq::error);
  }
  CHECK(std::filesystem::exists(ck_dir / "activations-00001.bin"));
  // Not asked to resume: refused, nothing touched.
  CHECK_THROWS_WITH_AS(llama::checkpoint(ck_dir, fingerprint, false), doctest::Contains("--resume"), ternq::error);
  // Another run: the differing fields are named.
  nlohmann::json other = fingerprint;
  other["method"] = "twn";
  other["group_size"] = 128;
  CHECK_THROWS_WITH_AS(llama::checkpoint(ck_dir, other, true), doctest::Contains("differs in: group_size, method"),
                       ternq::error);
  {
    llama::checkpoint ck(ck_dir, fingerprint, true);
    REQUIRE(ck.blocks_done() == 1);
    CHECK(ck.activations(6, 64, llama::activation_precision::f32) == h);
    CHECK(ck.records().size() == 1);
    ck.commit_block(1, llama::block_entries(1, m.layers[1], m.cfg, {}, storage, true), &h, llama::activation_precision::f32,
                    {{"rows", nlohmann::json::array()}});
    CHECK(!std::filesystem::exists(ck_dir / "activations-00001.bin"));
    const llama::block_files files(ck, 2);
    CHECK(files[1].values(files[1].find("blk.1.ffn_up.weight")) == m.layers[1].w3);
  }
  // A damaged block file is refused when the checkpoint is opened, before any work.
  {
    std::fstream f(ck_dir / "block-00000.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x01');
  }
  CHECK_THROWS_WITH_AS(llama::checkpoint(ck_dir, fingerprint, true), doctest::Contains("checksum"), ternq::error);
  {
    std::ofstream(ck_dir / "manifest.json") << "{ not json";
  }
  CHECK_THROWS_WITH_AS(llama::checkpoint(ck_dir, fingerprint, true), doctest::Contains("damaged"), ternq::error);
  // No manifest: a fresh start, and stale files of a run that never committed are cleared.
  std::filesystem::remove(ck_dir / "manifest.json");
  {
    llama::checkpoint ck(ck_dir, fingerprint, true);
    CHECK(ck.blocks_done() == 0);
    CHECK(!std::filesystem::exists(ck_dir / "block-00000.bin"));
    ck.remove_all();
  }
  CHECK(!std::filesystem::exists(ck_dir));
}
