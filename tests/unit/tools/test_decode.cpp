// SPDX-License-Identifier: MIT
// Incremental decoding with a key/value cache (tools/llama/decode.hpp) against the full recompute: the logits of
// every step equal those of a forward pass over the whole prefix, and greedy generation gives the tokens of
// `greedy_decode`, for the Llama block (grouped-query attention), Qwen2 (biases) and Qwen3 (q/k norms, wide heads);
// the packed runtime decodes as the dequantized model.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include <ternq/adapters/eigen.hpp>
#include <ternq/core/half.hpp>
#include <ternq/ternq.hpp>

#include "llama/decode.hpp"
#include "llama/forward.hpp"
#include "llama/generate.hpp"
#include "llama/gguf_io.hpp"
#include "llama/packed_model.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;

/// A small model of family `arch`: 4 query heads over 2 key/value heads; Qwen3's heads 16 wide (q_dim 64, dim 32).
llama::model family_model(llama::family arch, std::uint64_t seed) {
  llama::config cfg{.arch = arch,
                    .dim = 32,
                    .hidden_dim = 48,
                    .n_layers = 2,
                    .n_heads = 4,
                    .n_kv_heads = 2,
                    .vocab_size = 40,
                    .seq_len = 48};
  cfg.rope = llama::rope_of(arch);
  if (arch == llama::family::qwen3) cfg.head_width = 16;
  llama::model m = tools_test::random_model(seed, cfg);
  if (arch == llama::family::llama) {
    // Llama-3-style RoPE divisors (one per pair of an 8-wide head): the decode must apply them at each position.
    m.cfg.rope_factors = {1.0F, 1.5F, 4.0F, 8.0F};
  }
  return m;
}

/// The logits of the whole prefix `tokens` at its last position, by a full forward pass.
Eigen::VectorXf full_last_logits(const llama::model& m, const std::vector<std::int32_t>& tokens) {
  llama::batch b;
  b.sequences = 1;
  b.length = tokens.size();
  b.tokens = tokens;
  const llama::matrix l = llama::logits(m, b);
  return l.row(l.rows() - 1).transpose();
}

}  // namespace

TEST_CASE("decode: every step's logits are those of the full forward pass over the prefix, for each family") {
  for (const auto arch : {llama::family::llama, llama::family::qwen2, llama::family::qwen3}) {
    CAPTURE(llama::gguf_architecture(arch));
    const llama::model m = family_model(arch, 21);
    const llama::batch prompt = tools_test::random_batch(1, 7, m.cfg.vocab_size, 4);
    std::vector<std::int32_t> tokens = prompt.tokens;
    llama::incremental_decoder<llama::model> d(m, 20);
    Eigen::VectorXf step = d.feed(tokens);  // the prompt in one batch
    for (std::size_t s = 0; s < 12; ++s) {
      const Eigen::VectorXf full = full_last_logits(m, tokens);
      // Same operations; only the products' shapes differ (one row against the prefix), which reorders sums.
      CHECK((step - full).cwiseAbs().maxCoeff() <= 1e-5F * full.cwiseAbs().maxCoeff());
      const std::int32_t next = llama::arg_max(step);
      tokens.push_back(next);
      step = d.feed(std::vector<std::int32_t>{next});
    }
    CHECK(d.length() == tokens.size());
    // Feeding the prompt token by token gives the same logits as the batch.
    llama::incremental_decoder<llama::model> one_by_one(m, 20);
    Eigen::VectorXf last;
    for (const std::int32_t t : prompt.tokens) last = one_by_one.feed(std::vector<std::int32_t>{t});
    const Eigen::VectorXf batched = llama::incremental_decoder<llama::model>(m, 20).feed(prompt.tokens);
    CHECK((last - batched).cwiseAbs().maxCoeff() <= 1e-5F * batched.cwiseAbs().maxCoeff());
  }
}

TEST_CASE("decode: greedy generation with the cache gives greedy_decode's tokens, up to the context") {
  for (const auto arch : {llama::family::llama, llama::family::qwen2, llama::family::qwen3}) {
    CAPTURE(llama::gguf_architecture(arch));
    const llama::model m = family_model(arch, 33);
    const std::vector<std::int32_t> prompt = tools_test::random_batch(1, 5, m.cfg.vocab_size, 8).tokens;
    const std::vector<std::int32_t> expected = llama::greedy_decode(m, prompt, 30);
    const llama::generation g = llama::generate_greedy(m, prompt, 30);
    REQUIRE(g.tokens.size() == 30);
    CHECK(std::vector<std::int32_t>(expected.begin() + 5, expected.end()) == g.tokens);
    CHECK(g.prompt_tokens == 5);
    CHECK(g.decode_steps == 29);
    // The context (48) ends the generation as it ends greedy_decode's.
    const llama::generation full = llama::generate_greedy(m, prompt, 100);
    CHECK(full.tokens.size() == 48 - 5);
    const std::vector<std::int32_t> whole = llama::greedy_decode(m, prompt, 100);
    CHECK(std::vector<std::int32_t>(whole.begin() + 5, whole.end()) == full.tokens);
  }
}

TEST_CASE("decode: the cache refuses tokens beyond its room, and an empty prompt") {
  const llama::model m = family_model(llama::family::llama, 2);
  llama::incremental_decoder<llama::model> d(m, 4);
  (void)d.feed(std::vector<std::int32_t>{1, 2, 3});
  CHECK_THROWS_WITH_AS((void)d.feed(std::vector<std::int32_t>{4, 5}),
                       "[ternq.invalid_argument] decode: 2 more tokens after 3 exceed the room for 4 (the model's "
                       "context is 48)",
                       ternq::error);
  CHECK_THROWS_WITH_AS((void)llama::generate_greedy(m, {}, 3),
                       "[ternq.invalid_argument] generate: the prompt has no tokens (give it at least BOS)",
                       ternq::error);
  CHECK_THROWS_AS((void)llama::generate_greedy(m, {1, 99}, 3), std::out_of_range);
}

TEST_CASE("decode: the packed runtime with f32 activations generates the dequantized model's tokens") {
  tools_test::temp_dir dir("decode-packed");
  llama::config cfg{
      .dim = 256, .hidden_dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 64, .seq_len = 64};
  llama::model m = tools_test::random_model(17, cfg);
  std::map<std::pair<std::size_t, llama::linear>, ternary_matrix> ternary;
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    for (const auto which : llama::all_linears) {
      llama::matrix& w = m.layers[l].weight(which);
      ternary_matrix q = quantize(w, optimal_symmetric{.group_size = 256});
      for (float& s : q.scales()) s = fp16_bits_to_fp32(fp32_to_fp16_bits(s));
      ternq::dequantize(q, w);
      ternary.emplace(std::pair{l, which}, std::move(q));
    }
  }
  llama::gguf_storage storage;
  storage.format = pack::format::tq2_0;
  const auto path = dir.path() / "m.gguf";
  llama::save_gguf(m, ternary, storage, nullptr, path, "decode test");
  const llama::gguf_source source(path);
  const llama::model dense = llama::materialize(source);
  const llama::packed_model packed = llama::load_packed_model(source, kernels::activation_precision::f32);
  const std::vector<std::int32_t> prompt = tools_test::random_batch(1, 10, 64, 5).tokens;
  const llama::generation a = llama::generate_greedy(dense, prompt, 40);
  const llama::generation b = llama::generate_greedy(packed, prompt, 40);
  CHECK(a.tokens == b.tokens);
  CHECK(std::set<std::int32_t>(a.tokens.begin(), a.tokens.end()).size() > 3);  // not one token repeated
  const std::vector<std::int32_t> recomputed = llama::greedy_decode(dense, prompt, 40);
  CHECK(std::vector<std::int32_t>(recomputed.begin() + 10, recomputed.end()) == a.tokens);
}
