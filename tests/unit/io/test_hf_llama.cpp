// SPDX-License-Identifier: MIT
// Hugging Face Llama directories: config.json, single and sharded safetensors, and every named problem.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "ternq/io/hf_llama.hpp"
#include "ternq/io/safetensors_writer.hpp"

using ternq::io::dtype;
using ternq::io::hf_llama_model;
using ternq::io::safetensors_writer;
using ternq::testing::temp_dir;
using ternq::testing::write_file;

namespace {

// hidden 8, intermediate 12, 2 layers, 4 heads (head_dim 2), 2 kv heads (kv_dim 4), vocab 10.
const char* const tiny_config = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 10,
  "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "max_position_embeddings": 64,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16"
})";

/// Every tensor of the tiny model, filled with its index in the spec list plus 0.5 (distinct, BF16-exact).
struct tiny_tensors {
  std::vector<ternq::io::hf_tensor_spec> specs;
  std::vector<std::vector<float>> values;
  explicit tiny_tensors(const char* config = tiny_config)
      : specs(ternq::io::hf_llama_tensors(ternq::io::parse_hf_llama_config(config, "tiny"))) {
    for (std::size_t i = 0; i < specs.size(); ++i) {
      std::size_t n = 1;
      for (const std::size_t d : specs[i].shape) n *= d;
      values.emplace_back(n, static_cast<float>(i) + 0.5F);
    }
  }
  /// Adds the tensors whose index satisfies `pick` to `out`.
  template <class Pick>
  void add_to(safetensors_writer& out, Pick pick, dtype type = dtype::bf16) const {
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (pick(i)) out.add(specs[i].name, type, specs[i].shape, values[i]);
    }
  }
};

void write_single(const temp_dir& dir, const tiny_tensors& t) {
  write_file(dir / "config.json", tiny_config);
  safetensors_writer out;
  t.add_to(out, [](std::size_t) { return true; });
  out.write(dir / "model.safetensors");
}

/// Two shards (even and odd tensor indexes) and their index.
void write_sharded(const temp_dir& dir, const tiny_tensors& t) {
  write_file(dir / "config.json", tiny_config);
  safetensors_writer a;
  safetensors_writer b;
  t.add_to(a, [](std::size_t i) { return i % 2 == 0; });
  t.add_to(
      b, [](std::size_t i) { return i % 2 == 1; }, dtype::f16);
  a.write(dir / "model-00001-of-00002.safetensors");
  b.write(dir / "model-00002-of-00002.safetensors");
  nlohmann::json map;
  for (std::size_t i = 0; i < t.specs.size(); ++i) {
    map[t.specs[i].name] = i % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_file(dir / "model.safetensors.index.json",
             nlohmann::json{{"metadata", {{"total_size", 1234}}}, {"weight_map", map}}.dump(2));
}

std::string error_of(const temp_dir& dir) {
  try {
    const hf_llama_model m(dir.path());
    return "(opened)";
  } catch (const ternq::error& e) {
    std::string what = e.what();
    const std::string p = dir.path().string();
    for (auto at = what.find(p); at != std::string::npos; at = what.find(p)) what.replace(at, p.size(), "DIR");
    return what;
  }
}

std::string config_error(const std::string& text) {
  try {
    static_cast<void>(ternq::io::parse_hf_llama_config(text, "cfg"));
    return "(parsed)";
  } catch (const ternq::error& e) {
    return e.what();
  }
}

}  // namespace

TEST_CASE("hf_llama: config.json fields, defaults and the tensor list") {
  const auto c = ternq::io::parse_hf_llama_config(tiny_config, "tiny");
  CHECK(c.hidden_size == 8);
  CHECK(c.intermediate_size == 12);
  CHECK(c.num_hidden_layers == 2);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.vocab_size == 10);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.max_position_embeddings == 64);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(c.model_type == "llama");
  CHECK(c.head_dim() == 2);
  CHECK(c.kv_dim() == 4);
  const auto d = ternq::io::parse_hf_llama_config(
      R"({"hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 1, "num_attention_heads": 2,
          "vocab_size": 5, "num_key_value_heads": null})",
      "minimal");
  CHECK(d.num_key_value_heads == 2);
  CHECK(d.rms_norm_eps == 1e-6);
  CHECK(d.rope_theta == 10000.0);
  CHECK(d.max_position_embeddings == 2048);
  CHECK_FALSE(d.tie_word_embeddings);
  CHECK(d.model_type == "llama");  // absent: read as Llama

  const auto specs = ternq::io::hf_llama_tensors(c);
  REQUIRE(specs.size() == 1 + 2 * 9 + 2);
  CHECK(specs[0].name == "model.embed_tokens.weight");
  CHECK(specs[0].shape == std::vector<std::size_t>{10, 8});
  CHECK(specs[3].name == "model.layers.0.self_attn.k_proj.weight");
  CHECK(specs[3].shape == std::vector<std::size_t>{4, 8});
  CHECK(specs[18].name == "model.layers.1.mlp.down_proj.weight");
  CHECK(specs[18].shape == std::vector<std::size_t>{8, 12});
  CHECK(specs[19].role == ternq::io::hf_tensor_role::norm);
  CHECK(specs[20].name == "lm_head.weight");
  CHECK(specs[20].required);
}

TEST_CASE("hf_llama: config.json problems are named") {
  const std::string base = R"("intermediate_size": 12, "num_hidden_layers": 1, "vocab_size": 5)";
  CHECK(config_error("{" + base + R"(, "num_attention_heads": 2})") ==
        "[ternq.corrupt_file] cfg: 'hidden_size' is missing");
  CHECK(config_error("{" + base + R"(, "hidden_size": -8, "num_attention_heads": 2})") ==
        "[ternq.corrupt_file] cfg: 'hidden_size' is -8, not a positive integer");
  CHECK(config_error("{" + base + R"(, "hidden_size": 8.5, "num_attention_heads": 2})") ==
        "[ternq.corrupt_file] cfg: 'hidden_size' is 8.5, not a positive integer");
  CHECK(config_error("{" + base + R"(, "hidden_size": 8, "num_attention_heads": 3})") ==
        "[ternq.corrupt_file] cfg: hidden_size 8 is not a multiple of num_attention_heads 3");
  CHECK(config_error("{" + base + R"(, "hidden_size": 8, "num_attention_heads": 4, "num_key_value_heads": 3})") ==
        "[ternq.corrupt_file] cfg: num_attention_heads 4 is not a multiple of num_key_value_heads 3");
  CHECK(config_error("{" + base + R"(, "hidden_size": 8, "num_attention_heads": 2, "head_dim": 7})") ==
        "[ternq.corrupt_file] cfg: the head width 7 is odd (RoPE rotates pairs)");
  CHECK(config_error("{" + base + R"(, "hidden_size": 8, "num_attention_heads": 2, "model_type": "mixtral"})") ==
        "[ternq.unsupported] cfg: model_type 'mixtral' is not supported; ternq runs llama, mistral, qwen2 and qwen3 "
        "(dense decoder blocks; no mixture of experts)");
  CHECK(
      config_error(
          "{" + base +
          R"(, "hidden_size": 8, "num_attention_heads": 2, "rope_scaling": {"type": "linear", "factor": 2}})") ==
      "[ternq.unsupported] cfg: rope_scaling type 'linear' is not supported (\"llama3\" is; linear, dynamic, yarn and "
      "longrope are not)");
  {  // an explicit head width (Qwen3): q is heads * head_dim rows, o as many columns
    const auto q3 = ternq::io::parse_hf_llama_config(
        "{" + base + R"(, "hidden_size": 8, "num_attention_heads": 2, "head_dim": 8, "model_type": "qwen3"})", "q3");
    CHECK(q3.head_dim() == 8);
    CHECK(q3.qk_norm());
    const auto specs = ternq::io::hf_llama_tensors(q3);
    CHECK(specs.size() == 1 + 11 + 2);
    CHECK(specs[2].shape == std::vector<std::size_t>{16, 8});
  }
  CHECK(config_error("{" + base + R"(, "hidden_size": 8, "num_attention_heads": 2, "rms_norm_eps": 0})") ==
        "[ternq.corrupt_file] cfg: 'rms_norm_eps' is 0, not a positive number");
  CHECK(config_error("{" + base + R"(, "hidden_size": 8, "num_attention_heads": 2, "tie_word_embeddings": 1})") ==
        "[ternq.corrupt_file] cfg: 'tie_word_embeddings' is 1, not a boolean");
  CHECK(config_error("[]") == "[ternq.corrupt_file] cfg: the config is a JSON array, not an object");
  CHECK(config_error("{\"a\":1,}")
            .rfind("[ternq.corrupt_file] cfg: not valid JSON: [json.exception.parse_error.101]", 0) == 0);
}

TEST_CASE("hf_llama: a single-file model opens and gives every tensor by name") {
  const temp_dir dir("io-test");
  const tiny_tensors t;
  write_single(dir, t);
  const hf_llama_model m(dir.path());
  CHECK(m.config().num_hidden_layers == 2);
  CHECK(m.tensors().shard_count() == 1);
  CHECK(m.specs().size() == t.specs.size());
  CHECK(m.classifier_name() == "lm_head.weight");
  CHECK(m.tensors().names().size() == t.specs.size());
  const auto wk = m.tensors().matrix("model.layers.0.self_attn.k_proj.weight");
  CHECK(wk.rows() == 4);
  CHECK(wk.cols() == 8);
  CHECK(wk(3, 7) == 3.5F);
  CHECK(m.tensors().values("model.norm.weight") == t.values[19]);
  CHECK(m.tensors().info("lm_head.weight").type == dtype::bf16);
}

TEST_CASE("hf_llama: a sharded model finds tensors across shards through the index") {
  const temp_dir dir("io-test");
  const tiny_tensors t;
  write_sharded(dir, t);
  const hf_llama_model m(dir.path());
  const auto& s = m.tensors();
  CHECK(s.shard_count() == 2);
  CHECK(s.file_of("model.embed_tokens.weight").path() == dir / "model-00001-of-00002.safetensors");
  CHECK(s.file_of("model.layers.0.input_layernorm.weight").path() == dir / "model-00002-of-00002.safetensors");
  CHECK(s.info("model.layers.0.input_layernorm.weight").type == dtype::f16);
  for (std::size_t i = 0; i < t.specs.size(); ++i) CHECK(s.values(t.specs[i].name) == t.values[i]);
  CHECK_THROWS_WITH_AS(
      static_cast<void>(s.info("nope")),
      ("[ternq.invalid_argument] model directory '" + dir.path().string() + "': no tensor named 'nope'").c_str(),
      ternq::error);
}

TEST_CASE("hf_llama: tied embeddings make lm_head optional") {
  const temp_dir dir("io-test");
  std::string cfg = tiny_config;
  const std::string untied = "\"tie_word_embeddings\": false";
  cfg.replace(cfg.find(untied), untied.size(), "\"tie_word_embeddings\": true");
  const tiny_tensors t(cfg.c_str());
  write_file(dir / "config.json", cfg);
  safetensors_writer out;
  t.add_to(
      out, [&](std::size_t i) { return t.specs[i].name != "lm_head.weight"; }, dtype::f32);
  out.write(dir / "model.safetensors");
  const hf_llama_model m(dir.path());
  CHECK(m.config().tie_word_embeddings);
  CHECK(m.classifier_name() == "model.embed_tokens.weight");
  CHECK(m.tensors().view(m.classifier_name())(9, 7) == 0.5F);
}

TEST_CASE("hf_llama: missing tensors, wrong shapes, unsupported dtypes and broken shard sets are named") {
  const tiny_tensors t;
  {  // missing tensor
    const temp_dir dir("io-test");
    write_file(dir / "config.json", tiny_config);
    safetensors_writer out;
    t.add_to(out, [&](std::size_t i) { return t.specs[i].name != "model.layers.1.mlp.up_proj.weight"; });
    out.write(dir / "model.safetensors");
    CHECK(error_of(dir) == "[ternq.corrupt_file] hf_llama 'DIR': missing tensor 'model.layers.1.mlp.up_proj.weight'");
  }
  {  // wrong shape
    const temp_dir dir("io-test");
    write_file(dir / "config.json", tiny_config);
    safetensors_writer out;
    t.add_to(out, [&](std::size_t i) { return t.specs[i].name != "model.layers.0.self_attn.v_proj.weight"; });
    const std::vector<float> wrong(64, 1.0F);
    out.add("model.layers.0.self_attn.v_proj.weight", dtype::bf16, {8, 8}, wrong);
    out.write(dir / "model.safetensors");
    CHECK(error_of(dir) ==
          "[ternq.shape_mismatch] hf_llama 'DIR': tensor 'model.layers.0.self_attn.v_proj.weight' "
          "has shape [8, 8], config.json implies [4, 8]");
  }
  {  // unsupported dtype, in a shard of its own
    const temp_dir dir("io-test");
    write_sharded(dir, t);
    write_file(dir / "int.safetensors",
               ternq::testing::safetensors_bytes(
                   R"({"model.norm.weight":{"dtype":"I8","shape":[8],"data_offsets":[0,8]}})", std::string(8, '\1')));
    auto index = nlohmann::json::parse(ternq::testing::read_file(dir / "model.safetensors.index.json"));
    index["weight_map"]["model.norm.weight"] = "int.safetensors";
    write_file(dir / "model.safetensors.index.json", index.dump());
    CHECK(error_of(dir) ==
          "[ternq.unsupported] hf_llama 'DIR': tensor 'model.norm.weight' has dtype I8; ternq reads "
          "F32, F16 and BF16");
  }
  {  // a shard missing
    const temp_dir dir("io-test");
    write_sharded(dir, t);
    std::filesystem::remove(dir / "model-00002-of-00002.safetensors");
    CHECK(error_of(dir) ==
          "[ternq.io] model directory 'DIR': shard 'model-00002-of-00002.safetensors' (holding "
          "tensor 'model.layers.0.input_layernorm.weight') does not exist");
  }
  {  // the index maps a tensor to a shard that does not hold it
    const temp_dir dir("io-test");
    write_sharded(dir, t);
    auto index = nlohmann::json::parse(ternq::testing::read_file(dir / "model.safetensors.index.json"));
    index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
    write_file(dir / "model.safetensors.index.json", index.dump());
    CHECK(error_of(dir) ==
          "[ternq.corrupt_file] model directory 'DIR': model.safetensors.index.json: tensor "
          "'model.norm.weight' is mapped to shard 'model-00001-of-00002.safetensors', which does not "
          "hold it");
  }
  {  // a shard name that leaves the directory
    const temp_dir dir("io-test");
    write_sharded(dir, t);
    write_file(dir / "model.safetensors.index.json", R"({"weight_map": {"lm_head.weight": "../x.safetensors"}})");
    CHECK(error_of(dir) ==
          "[ternq.corrupt_file] model directory 'DIR': model.safetensors.index.json: tensor "
          "'lm_head.weight' is mapped to '../x.safetensors', which is not a file name in the model "
          "directory");
  }
  {  // an index without a weight_map, and one that is not JSON
    const temp_dir dir("io-test");
    write_sharded(dir, t);
    write_file(dir / "model.safetensors.index.json", R"({"metadata": {}})");
    CHECK(error_of(dir) ==
          "[ternq.corrupt_file] model directory 'DIR': model.safetensors.index.json has no weight_map object");
    write_file(dir / "model.safetensors.index.json", R"({"weight_map": {"a": 1}})");
    CHECK(error_of(dir) ==
          "[ternq.corrupt_file] model directory 'DIR': model.safetensors.index.json: tensor 'a' is "
          "mapped to a JSON number, not a file name");
    write_file(dir / "model.safetensors.index.json", "{");
    CHECK(error_of(dir).rfind("[ternq.corrupt_file] model directory 'DIR': model.safetensors.index.json: not valid "
                              "JSON: [json.exception.parse_error.101]",
                              0) == 0);
  }
  {  // no weights at all, and no config
    const temp_dir dir("io-test");
    write_file(dir / "config.json", tiny_config);
    CHECK(error_of(dir) ==
          "[ternq.io] model directory 'DIR': neither model.safetensors nor "
          "model.safetensors.index.json exists");
    std::filesystem::remove(dir / "config.json");
    CHECK(error_of(dir) == "[ternq.io] mapped_file: cannot open 'DIR/config.json': No such file or directory");
  }
}
