// SPDX-License-Identifier: MIT
// Hugging Face Llama directories made by the test: single file and sharded, F32/F16, the q/k permutation, round trips.
#include <doctest/doctest.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include <ternq/core/half.hpp>
#include <ternq/io/safetensors_writer.hpp>

#include "llama/forward.hpp"
#include "llama/load.hpp"
#include "llama/save.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;

matrix_view<const float> view_of(const llama::matrix& m) {
  return {m.data(), static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols()),
          static_cast<std::ptrdiff_t>(m.cols()), 1};
}

/// Writes `m` (its q/k rows in Hugging Face's rotate-half order) as a
/// Hugging Face directory: config.json and `shards` safetensors files (an
/// index when more than one), matrices stored as `matrix_dtype`.
void write_hf_dir(const llama::model& m, const std::filesystem::path& dir, std::size_t shards, io::dtype matrix_dtype) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << tools_test::hf_config(m).dump(2);
  std::vector<std::pair<std::string, const llama::matrix*>> matrices = {{"model.embed_tokens.weight", &m.embedding}};
  std::vector<std::pair<std::string, const llama::vector*>> vectors = {{"model.norm.weight", &m.final_norm}};
  if (m.classifier) matrices.emplace_back("lm_head.weight", &*m.classifier);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const auto& l = m.layers[i];
    matrices.insert(matrices.end(), {{p + "self_attn.q_proj.weight", &l.wq},
                                     {p + "self_attn.k_proj.weight", &l.wk},
                                     {p + "self_attn.v_proj.weight", &l.wv},
                                     {p + "self_attn.o_proj.weight", &l.wo},
                                     {p + "mlp.gate_proj.weight", &l.w1},
                                     {p + "mlp.up_proj.weight", &l.w3},
                                     {p + "mlp.down_proj.weight", &l.w2}});
    vectors.insert(vectors.end(), {{p + "input_layernorm.weight", &l.attn_norm},
                                   {p + "post_attention_layernorm.weight", &l.ffn_norm}});
  }
  std::vector<io::safetensors_writer> writers(shards);
  nlohmann::json weight_map = nlohmann::json::object();
  std::size_t k = 0;
  const auto shard_name = [&](std::size_t s) {
    return shards == 1 ? std::string("model.safetensors")
                       : "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
  };
  for (const auto& [name, w] : matrices) {
    writers[k % shards].add(name, matrix_dtype, view_of(*w));
    weight_map[name] = shard_name(k++ % shards);
  }
  for (const auto& [name, v] : vectors) {
    writers[k % shards].add(name, io::dtype::f32, {static_cast<std::size_t>(v->size())},
                            std::span<const float>(v->data(), static_cast<std::size_t>(v->size())));
    weight_map[name] = shard_name(k++ % shards);
  }
  for (std::size_t s = 0; s < shards; ++s) writers[s].write(dir / shard_name(s));
  if (shards > 1) {
    std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"weight_map", weight_map}}.dump();
  }
}

/// `m` with its q/k rows moved to the interleaved layout the loader produces.
llama::model interleaved(llama::model m) {
  m.cfg.rope = llama::rope_style::interleaved;
  for (auto& l : m.layers) {
    l.wq = llama::interleave_rope_rows(l.wq, m.cfg.n_heads);
    l.wk = llama::interleave_rope_rows(l.wk, m.cfg.n_kv_heads);
  }
  return m;
}

void check_same_weights(const llama::model& a, const llama::model& b) {
  REQUIRE(a.layers.size() == b.layers.size());
  CHECK(a.embedding == b.embedding);
  CHECK(a.final_norm == b.final_norm);
  CHECK(a.classifier.has_value() == b.classifier.has_value());
  if (a.classifier && b.classifier) CHECK(*a.classifier == *b.classifier);
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    for (const auto which : llama::all_linears) CHECK(a.layers[l].weight(which) == b.layers[l].weight(which));
    CHECK(a.layers[l].attn_norm == b.layers[l].attn_norm);
    CHECK(a.layers[l].ffn_norm == b.layers[l].ffn_norm);
  }
}

}  // namespace

TEST_CASE("a Hugging Face directory loads with the q/k rows interleaved and computes the rotate-half model") {
  const llama::model hf = tools_test::random_model(11, llama::rope_style::rotate_half);
  for (std::size_t shards : {1UL, 3UL}) {
    tools_test::temp_dir dir("tools-hf" + std::to_string(shards));
    write_hf_dir(hf, dir.path(), shards, io::dtype::f32);
    const llama::model loaded = llama::load_hf(dir.path());
    CHECK(loaded.cfg.rope == llama::rope_style::interleaved);
    CHECK(loaded.cfg.n_kv_heads == 2);
    check_same_weights(loaded, interleaved(hf));
    const llama::batch b = tools_test::random_batch(2, 20, hf.cfg.vocab_size, 4);
    CHECK((llama::logits(loaded, b) - llama::logits(hf, b)).cwiseAbs().maxCoeff() < 1e-4F);
  }
}

TEST_CASE("F16 Hugging Face tensors load as their fp16 values") {
  const llama::model hf = tools_test::random_model(12, llama::rope_style::rotate_half);
  tools_test::temp_dir dir("tools-hf16");
  write_hf_dir(hf, dir.path(), 1, io::dtype::f16);
  const llama::model loaded = llama::load_hf(dir.path());
  const float x = hf.layers[1].w2(3, 5);
  CHECK(loaded.layers[1].w2(3, 5) == fp16_bits_to_fp32(fp32_to_fp16_bits(x)));
}

TEST_CASE("saving a model in Hugging Face form and loading it back gives the same model") {
  const llama::model hf = tools_test::random_model(13, llama::rope_style::rotate_half);
  tools_test::temp_dir src("tools-hfsrc"), out("tools-hfout");
  write_hf_dir(hf, src.path(), 2, io::dtype::f32);
  const llama::model loaded = llama::load_hf(src.path());
  llama::save_hf(loaded, src.path(), out.path());
  CHECK(std::filesystem::exists(out.path() / "config.json"));
  check_same_weights(llama::load_hf(out.path()), loaded);
}

TEST_CASE("a Hugging Face directory with a missing or misshapen tensor is refused by name") {
  llama::model hf = tools_test::random_model(14, llama::rope_style::rotate_half);
  tools_test::temp_dir dir("tools-hfbad");
  hf.layers[1].w3 = llama::matrix::Zero(47, 32);  // up_proj should be 48 x 32
  write_hf_dir(hf, dir.path(), 1, io::dtype::f32);
  CHECK_THROWS_WITH_AS(llama::load_hf(dir.path()),
                       doctest::Contains("tensor 'model.layers.1.mlp.up_proj.weight' has shape [47, 32], config.json "
                                         "implies [48, 32]"),
                       ternq::error);
}
