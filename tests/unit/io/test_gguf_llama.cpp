// SPDX-License-Identifier: MIT
// A tiny synthetic llama model written as GGUF has exactly the structure FORMATS.md lists; the llama helpers' checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "gguf_test_support.hpp"
#include "llm_like.hpp"
#include "ternq/io/gguf_llama.hpp"
#include "ternq/io/gguf_reader.hpp"
#include "ternq/io/gguf_writer.hpp"
#include "ternq/pack/pack.hpp"

namespace {

using ternq::io::gguf_array;
using ternq::io::gguf_reader;
using ternq::io::gguf_type;
using ternq::io::gguf_writer;
using ternq::pack::ggml_type;

ternq::io::llama_hparams tiny() {
  ternq::io::llama_hparams hp;
  hp.vocab_size = 32;
  hp.context_length = 64;
  hp.embedding_length = 256;
  hp.block_count = 2;
  hp.feed_forward_length = 512;
  hp.head_count = 4;
  hp.head_count_kv = 2;
  hp.rms_norm_eps = 1e-5F;
  hp.rope_freq_base = 10000.0F;
  return hp;
}

ternq::ternary_matrix random_ternary(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  ternq::ternary_matrix q(rows, cols, 256);
  ternq::testing::rng r(seed);
  for (auto& c : q.codes()) c = static_cast<std::int8_t>(static_cast<int>(r.next() % 3) - 1);
  for (auto& s : q.scales()) s = 0.02F + 0.01F * static_cast<float>(r.uniform());
  return q;
}

void check_type(const ternq::io::gguf_metadata& md, const char* key, gguf_type t) {
  CAPTURE(key);
  const auto* v = md.find(key);
  REQUIRE(v != nullptr);
  CHECK(ternq::io::type_of(*v) == t);
}

}  // namespace

TEST_CASE("gguf llama: a tiny no_vocab model has exactly the keys, types and tensors llama.cpp expects") {
  const auto hp = tiny();
  gguf_writer w;
  w.add("general.description", std::string("synthetic"));  // added before: architecture still goes first
  ternq::io::add_llama_metadata(w.edit_metadata(), hp, ternq::io::llama_file_type::mostly_tq2_0, "tiny");
  ternq::io::add_llama_tokenizer(w.edit_metadata(), {.model = "no_vocab"}, hp.vocab_size);

  const auto layout = ternq::io::llama_tensors(hp, /*tied_output=*/false);
  std::vector<ternq::pack::packed_tensor> packed;
  std::vector<ternq::ternary_matrix> matrices;
  for (const auto& t : layout) {
    if (t.is_norm) {
      w.add_tensor(t.name, ggml_type::f32, t.ne);
    } else if (t.name == "token_embd.weight" || t.name == "output.weight") {
      w.add_tensor(t.name, ggml_type::f16, t.ne);
    } else {
      matrices.push_back(
          random_ternary(static_cast<std::size_t>(t.ne[1]), static_cast<std::size_t>(t.ne[0]), matrices.size() + 1));
      packed.push_back(ternq::pack::pack(matrices.back(), ternq::pack::format::tq2_0));
      w.add_tensor(t.name, packed.back());
    }
  }
  const auto bytes = ternq::testing::write_to_memory(w, [&](gguf_writer& out) {
    std::size_t k = 0;
    for (const auto& t : layout) {
      if (t.is_norm) {
        out.write_tensor(t.name, std::span<const float>(std::vector<float>(256, 1.0F)));
      } else if (t.name == "token_embd.weight" || t.name == "output.weight") {
        out.write_tensor(t.name, std::span<const float>(std::vector<float>(256 * 32, 0.01F)));
      } else {
        out.write_tensor(t.name, packed[k++]);
      }
    }
  });

  const gguf_reader r = gguf_reader::from_bytes(bytes);
  const auto& md = r.metadata();
  CHECK(r.version() == 3);
  REQUIRE(!md.empty());
  CHECK(md.entries().front().key == "general.architecture");
  CHECK(md.get<std::string>("general.architecture") == "llama");
  CHECK(md.get<std::string>("general.name") == "tiny");
  for (const char* key :
       {"llama.context_length", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
        "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.dimension_count", "llama.vocab_size",
        "general.file_type", "general.quantization_version"}) {
    check_type(md, key, gguf_type::uint32);
  }
  for (const char* key : {"llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base"}) {
    check_type(md, key, gguf_type::float32);
  }
  CHECK(md.get<std::uint32_t>("llama.context_length") == 64);
  CHECK(md.get<std::uint32_t>("llama.embedding_length") == 256);
  CHECK(md.get<std::uint32_t>("llama.block_count") == 2);
  CHECK(md.get<std::uint32_t>("llama.feed_forward_length") == 512);
  CHECK(md.get<std::uint32_t>("llama.attention.head_count") == 4);
  CHECK(md.get<std::uint32_t>("llama.attention.head_count_kv") == 2);
  CHECK(md.get<std::uint32_t>("llama.rope.dimension_count") == 64);  // the head dimension
  CHECK(md.get<float>("llama.attention.layer_norm_rms_epsilon") == 1e-5F);
  CHECK(md.get<float>("llama.rope.freq_base") == 10000.0F);
  CHECK(md.get<std::uint32_t>("general.file_type") == 37);
  CHECK(md.get<std::uint32_t>("general.quantization_version") == 2);
  CHECK(md.get<std::string>("tokenizer.ggml.model") == "no_vocab");
  CHECK_FALSE(md.contains("general.alignment"));

  // Exactly these tensors: 3 + 9 per layer, nothing else.
  std::set<std::string> expected = {"token_embd.weight", "output_norm.weight", "output.weight"};
  for (int l = 0; l < 2; ++l) {
    for (const char* n :
         {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"}) {
      expected.insert("blk." + std::to_string(l) + "." + n + ".weight");
    }
  }
  std::set<std::string> names;
  for (const auto& t : r.tensors()) names.insert(t.name);
  CHECK(names == expected);
  CHECK(r.tensors().size() == expected.size());

  using ne_t = std::vector<std::int64_t>;
  CHECK(r.tensor("token_embd.weight").ne == ne_t{256, 32});
  CHECK(r.tensor("output.weight").ne == ne_t{256, 32});
  CHECK(r.tensor("blk.1.attn_q.weight").ne == ne_t{256, 256});
  CHECK(r.tensor("blk.1.attn_k.weight").ne == ne_t{256, 128});  // head_dim 64 x 2 KV heads
  CHECK(r.tensor("blk.1.attn_v.weight").ne == ne_t{256, 128});
  CHECK(r.tensor("blk.1.attn_output.weight").ne == ne_t{256, 256});
  CHECK(r.tensor("blk.1.ffn_gate.weight").ne == ne_t{256, 512});
  CHECK(r.tensor("blk.1.ffn_up.weight").ne == ne_t{256, 512});
  CHECK(r.tensor("blk.1.ffn_down.weight").ne == ne_t{512, 256});
  std::uint64_t offset = 0;
  for (const auto& t : r.tensors()) {
    CAPTURE(t.name);
    const bool norm = t.name.find("norm") != std::string::npos;
    if (norm) {
      CHECK(t.type == ggml_type::f32);
      CHECK(t.ne == ne_t{256});
    }
    if (t.name.rfind("blk.", 0) == 0 && !norm) CHECK(t.type == ggml_type::tq2_0);
    CHECK(t.offset == offset);
    CHECK(t.ne[0] % static_cast<std::int64_t>(ternq::pack::traits_of(t.type).block_elements) == 0);
    offset += ternq::io::gguf_align(t.size, 32);
  }
  CHECK(r.data_offset() % 32 == 0);
  CHECK(bytes.size() == r.data_offset() + offset);

  // The ternary layers read back to their codes.
  std::size_t k = 0;
  for (const auto& t : layout) {
    if (t.is_norm || t.name == "token_embd.weight" || t.name == "output.weight") continue;
    const ternq::ternary_matrix back = r.read_ternary(r.tensor(t.name));
    CHECK(std::equal(back.codes().begin(), back.codes().end(), matrices[k].codes().begin(), matrices[k].codes().end()));
    ++k;
  }
}

TEST_CASE("gguf llama: a SentencePiece-style vocabulary with the exact key types") {
  ternq::io::gguf_metadata md;
  ternq::io::llama_vocab v;
  v.tokens = {"<unk>", "<s>", "</s>", "\xe2\x96\x81the"};
  v.scores = {0.0F, 0.0F, 0.0F, -1.5F};
  v.token_types = {2, 3, 3, 1};
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  ternq::io::add_llama_tokenizer(md, v, 4);
  check_type(md, "tokenizer.ggml.model", gguf_type::string);
  CHECK(md.get<gguf_array>("tokenizer.ggml.tokens").get<std::string>() == v.tokens);
  CHECK(md.get<gguf_array>("tokenizer.ggml.scores").get<float>() == v.scores);
  CHECK(md.get<gguf_array>("tokenizer.ggml.token_type").get<std::int32_t>() == v.token_types);
  check_type(md, "tokenizer.ggml.bos_token_id", gguf_type::uint32);
  check_type(md, "tokenizer.ggml.eos_token_id", gguf_type::uint32);
  check_type(md, "tokenizer.ggml.unknown_token_id", gguf_type::uint32);
  CHECK_FALSE(md.contains("tokenizer.ggml.padding_token_id"));

  ternq::io::gguf_metadata other;
  CHECK_THROWS_WITH_AS(ternq::io::add_llama_tokenizer(other, v, 5),
                       "[ternq.invalid_argument] add_llama_tokenizer: 4 tokens for a vocabulary of 5", ternq::error);
  v.model = "bert";
  CHECK_THROWS_WITH_AS(ternq::io::add_llama_tokenizer(other, v, 4),
                       "[ternq.invalid_argument] add_llama_tokenizer: tokenizer model 'bert' is not supported "
                       "(\"llama\", \"gpt2\" or \"no_vocab\")",
                       ternq::error);
  CHECK_FALSE(md.contains("tokenizer.ggml.merges"));
  CHECK_FALSE(md.contains("tokenizer.ggml.pre"));
  CHECK_FALSE(md.contains("tokenizer.ggml.add_bos_token"));
  CHECK_FALSE(md.contains("tokenizer.ggml.add_space_prefix"));
  ternq::io::gguf_metadata no_prefix;
  v.model = "llama";
  v.add_space_prefix = false;
  ternq::io::add_llama_tokenizer(no_prefix, v, 4);
  check_type(no_prefix, "tokenizer.ggml.add_space_prefix", gguf_type::boolean);
  CHECK_FALSE(no_prefix.get<bool>("tokenizer.ggml.add_space_prefix"));
  v.model = "llama";
  v.eos_id = 9;
  CHECK_THROWS_WITH_AS(
      ternq::io::add_llama_tokenizer(other, v, 4),
      "[ternq.invalid_argument] add_llama_tokenizer: special token id 9 is outside the vocabulary of 4", ternq::error);
}

TEST_CASE("gguf llama: a byte-level BPE vocabulary has its merges, pre-tokenizer name and add_bos_token") {
  ternq::io::gguf_metadata md;
  ternq::io::llama_vocab v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  v.tokens = {"a", "b", "ab", "<|begin_of_text|>"};
  v.token_types = {1, 1, 1, 3};
  v.merges = {"a b"};
  v.bos_id = 3;
  v.add_bos = true;
  ternq::io::add_llama_tokenizer(md, v, 4);
  CHECK(md.get<std::string>("tokenizer.ggml.model") == "gpt2");
  CHECK(md.get<std::string>("tokenizer.ggml.pre") == "llama-bpe");
  CHECK(md.get<gguf_array>("tokenizer.ggml.merges").get<std::string>() == v.merges);
  check_type(md, "tokenizer.ggml.add_bos_token", gguf_type::boolean);
  CHECK(md.get<bool>("tokenizer.ggml.add_bos_token"));
  CHECK_FALSE(md.contains("tokenizer.ggml.scores"));

  ternq::io::gguf_metadata other;
  v.merges.clear();
  CHECK_THROWS_WITH_AS(ternq::io::add_llama_tokenizer(other, v, 4),
                       "[ternq.invalid_argument] add_llama_tokenizer: a \"gpt2\" tokenizer needs its merges",
                       ternq::error);
  v.model = "llama";
  v.merges = {"a b"};
  CHECK_THROWS_WITH_AS(ternq::io::add_llama_tokenizer(other, v, 4),
                       "[ternq.invalid_argument] add_llama_tokenizer: only a \"gpt2\" tokenizer has merges",
                       ternq::error);
  CHECK(other.empty());
}

TEST_CASE("gguf llama: a vocabulary is padded to the model's rows as llama.cpp's converters pad it") {
  ternq::io::llama_vocab v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.scores = {0.0F, 0.0F, 0.0F};
  v.token_types = {2, 3, 3};
  const auto padded = ternq::io::padded_vocab(v, 5);
  CHECK(padded.tokens == std::vector<std::string>{"<unk>", "<s>", "</s>", "[PAD3]", "[PAD4]"});
  CHECK(padded.scores == std::vector<float>{0.0F, 0.0F, 0.0F, 0.0F, 0.0F});
  CHECK(padded.token_types == std::vector<std::int32_t>{2, 3, 3, 5, 5});
  CHECK(ternq::io::padded_vocab(v, 3).tokens == v.tokens);
  ternq::io::llama_vocab none;
  none.model = "no_vocab";
  CHECK(ternq::io::padded_vocab(none, 100).tokens.empty());
  CHECK_THROWS_WITH_AS((void)ternq::io::padded_vocab(v, 2),
                       "[ternq.invalid_argument] the tokenizer has 3 tokens, more than the model's vocabulary of 2",
                       ternq::error);
}

TEST_CASE("gguf llama: hyperparameters are checked") {
  ternq::io::gguf_metadata md;
  auto hp = tiny();
  hp.head_count = 3;
  CHECK_THROWS_WITH_AS(ternq::io::add_llama_metadata(md, hp, 0),
                       "[ternq.invalid_argument] add_llama_metadata: head_count 3 does not divide embedding_length 256 "
                       "(or the head width is zero or odd)",
                       ternq::error);
  hp = tiny();
  hp.head_count_kv = 3;
  CHECK_THROWS_WITH_AS(ternq::io::add_llama_metadata(md, hp, 0),
                       "[ternq.invalid_argument] add_llama_metadata: head_count_kv 3 does not divide head_count 4",
                       ternq::error);
  hp = tiny();
  hp.block_count = 0;
  CHECK_THROWS_AS(ternq::io::add_llama_metadata(md, hp, 0), ternq::error);
  CHECK(md.empty());
  // A key already present: refused, and nothing is added.
  md.add("general.name", std::string("x"));
  CHECK_THROWS_WITH_AS(ternq::io::add_llama_metadata(md, tiny(), 0, "tiny"),
                       "[ternq.invalid_argument] add_llama_metadata: general.name is already set", ternq::error);
  CHECK(md.size() == 1);
  ternq::io::add_llama_metadata(md, tiny(), 0);  // without a name: fine, architecture first
  CHECK(md.entries().front().key == "general.architecture");
  CHECK(md.entries()[1].key == "general.name");
  // Tied output: no output.weight.
  const auto tied = ternq::io::llama_tensors(tiny(), true);
  CHECK(std::none_of(tied.begin(), tied.end(), [](const auto& t) { return t.name == "output.weight"; }));
  CHECK(tied.size() == 2 + 9 * 2);
}
