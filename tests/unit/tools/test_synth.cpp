// SPDX-License-Identifier: MIT
// Synthetic Llama directories: valid for the readers and the runtime, deterministic, sharded, LLM-like statistics.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/io/hf_llama.hpp>
#include <ternq/io/safetensors_shards.hpp>

#include "llama/forward.hpp"
#include "llama/load.hpp"
#include "synth/synthetic_llama.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::temp_dir;

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Every file of a directory, by name, with its bytes.
std::map<std::string, std::string> contents(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out[e.path().filename().string()] = read_bytes(e.path());
  return out;
}

synth::options tiny(std::uint64_t seed, unsigned threads = 1) {
  synth::options o;
  o.config = synth::preset_config("tiny");
  o.seed = seed;
  o.threads = threads;
  return o;
}

/// Excess kurtosis of `v` (0 for a Gaussian).
double excess_kurtosis(const std::vector<float>& v) {
  double mean = 0.0;
  for (const float x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double m2 = 0.0, m4 = 0.0;
  for (const float x : v) {
    const double d = x - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m2 /= static_cast<double>(v.size());
  m4 /= static_cast<double>(v.size());
  return m4 / (m2 * m2) - 3.0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// The norm of each column of `m`.
std::vector<double> column_norms(const io::float_matrix& m) {
  std::vector<double> norms(m.cols(), 0.0);
  for (std::size_t i = 0; i < m.rows(); ++i) {
    for (std::size_t j = 0; j < m.cols(); ++j) norms[j] += static_cast<double>(m(i, j)) * m(i, j);
  }
  for (double& n : norms) n = std::sqrt(n);
  return norms;
}

/// The `k` columns of largest norm.
std::set<std::size_t> top_columns(const std::vector<double>& norms, std::size_t k) {
  std::vector<std::size_t> order(norms.size());
  for (std::size_t j = 0; j < order.size(); ++j) order[j] = j;
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](std::size_t a, std::size_t b) { return norms[a] > norms[b]; });
  return {order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k)};
}

}  // namespace

TEST_CASE("synth: the tiny preset is a Hugging Face Llama directory of the config's shapes") {
  const temp_dir dir("tools-synth");
  const synth::summary s = synth::write_synthetic_llama(dir.path(), tiny(1));
  REQUIRE(s.files.size() == 1);
  CHECK(s.files[0] == dir / "model.safetensors");
  const io::hf_llama_model m(dir.path());  // validates every tensor's presence, dtype and shape
  const io::hf_llama_config& c = m.config();
  CHECK(c.hidden_size == 128);
  CHECK(c.intermediate_size == 344);
  CHECK(c.num_hidden_layers == 4);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.vocab_size == 512);
  CHECK(c.max_position_embeddings == 256);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.model_type == "llama");
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(m.classifier_name() == "lm_head.weight");
  CHECK(m.tensors().tensor_count() == s.tensors);
  CHECK(s.tensors == 4 * 9 + 3);
  std::uint64_t bytes = 0;
  for (const io::hf_tensor_spec& spec : m.specs()) {
    CHECK(m.tensors().info(spec.name).type == io::dtype::bf16);
    bytes += m.tensors().info(spec.name).byte_size();
  }
  CHECK(bytes == s.total_size);
  CHECK(s.parameters * 2 == s.total_size);
  const auto config = nlohmann::json::parse(read_bytes(dir / "config.json"));
  CHECK(config.at("architectures") == nlohmann::json::array({"LlamaForCausalLM"}));
  CHECK(config.at("torch_dtype") == "bfloat16");
  CHECK(config.at("rope_theta") == 10000.0);

  // Every field can be overridden, and the dtype chosen.
  const temp_dir other("tools-synth");
  synth::options o = tiny(1);
  o.config.hidden_size = 64;
  o.config.num_hidden_layers = 1;
  o.config.num_key_value_heads = 4;
  o.type = io::dtype::f16;
  synth::write_synthetic_llama(other.path(), o);
  const io::hf_llama_model small(other.path());
  CHECK(small.config().hidden_size == 64);
  CHECK(small.tensors().info("model.layers.0.self_attn.k_proj.weight").shape == std::vector<std::size_t>{64, 64});
  CHECK(small.tensors().info("lm_head.weight").type == io::dtype::f16);
  CHECK(nlohmann::json::parse(read_bytes(other / "config.json")).at("torch_dtype") == "float16");
}

TEST_CASE("synth: the same seed gives the same bytes whatever the thread count; another seed other bytes") {
  const temp_dir a("tools-synth"), b("tools-synth"), c("tools-synth");
  synth::write_synthetic_llama(a.path(), tiny(7, 1));
  synth::write_synthetic_llama(b.path(), tiny(7, 2));
  synth::write_synthetic_llama(c.path(), tiny(8, 2));
  const auto one = contents(a.path());
  CHECK(one.size() == 2);
  CHECK(one == contents(b.path()));
  const auto other = contents(c.path());
  CHECK(other.at("config.json") == one.at("config.json"));
  CHECK(other.at("model.safetensors").size() == one.at("model.safetensors").size());
  CHECK(other.at("model.safetensors") != one.at("model.safetensors"));
  // Three threads split the chunks of the larger tensors differently again.
  synth::options o = tiny(7, 3);
  o.overwrite = true;
  synth::write_synthetic_llama(c.path(), o);
  CHECK(contents(c.path()) == one);
}

TEST_CASE("synth: past the shard size the model is sharded with an index, holding the same values") {
  const temp_dir single("tools-synth"), sharded("tools-synth");
  const synth::summary s1 = synth::write_synthetic_llama(single.path(), tiny(3));
  synth::options o = tiny(3, 2);
  o.shard_size = 300'000;  // the 512 x 128 BF16 embedding is 131 kB, the FFN matrices 88 kB
  const synth::summary s = synth::write_synthetic_llama(sharded.path(), o);
  REQUIRE(s.files.size() > 2);
  CHECK(s.total_size == s1.total_size);
  for (std::size_t k = 0; k < s.files.size(); ++k) {
    const std::string name = s.files[k].filename().string();
    CHECK(name == "model-0000" + std::to_string(k + 1) + "-of-0000" + std::to_string(s.files.size()) + ".safetensors");
    CHECK(std::filesystem::file_size(s.files[k]) <= 300'000 + 16'384);  // data within the limit, plus the header
  }
  CHECK_FALSE(std::filesystem::exists(sharded / "model.safetensors"));
  const auto index = nlohmann::json::parse(read_bytes(sharded / "model.safetensors.index.json"));
  CHECK(index.at("metadata").at("total_size") == s.total_size);
  CHECK(index.at("weight_map").size() == s.tensors);

  const io::safetensors_shards shards(sharded.path());
  CHECK(shards.shard_count() == s.files.size());
  const io::hf_llama_model a(single.path());
  const io::hf_llama_model b(sharded.path());
  for (const io::hf_tensor_spec& spec : a.specs()) {
    CAPTURE(spec.name);
    CHECK(index.at("weight_map").contains(spec.name));
    CHECK(a.tensors().values(spec.name) == b.tensors().values(spec.name));
  }
}

TEST_CASE("synth: weights have heavy tails, per-row scales and means, and outlier input channels") {
  const temp_dir dir("tools-synth");
  synth::options o = tiny(5, 2);
  o.type = io::dtype::f32;
  synth::write_synthetic_llama(dir.path(), o);
  const io::hf_llama_model m(dir.path());
  const auto& t = m.tensors();
  std::set<std::size_t> residual;  // the largest columns of the first matrix reading the residual stream
  for (const io::hf_tensor_spec& spec : m.specs()) {
    CAPTURE(spec.name);
    const std::vector<float> v = t.values(spec.name);
    if (spec.role == io::hf_tensor_role::norm) {
      double mean = 0.0;
      for (const float x : v) {
        CHECK(x > 0.0F);
        mean += x;
      }
      mean /= static_cast<double>(v.size());
      CHECK(mean > 0.9);
      CHECK(mean < 1.15);
      CHECK(*std::max_element(v.begin(), v.end()) > 1.2F);  // spread, not all ones
      continue;
    }
    CHECK(excess_kurtosis(v) > 1.0);  // Gaussian: 0; Student-t with 5 dof: 6

    double sum2 = 0.0;
    for (const float x : v) sum2 += static_cast<double>(x) * x;
    const double rms = std::sqrt(sum2 / static_cast<double>(v.size()));
    const io::float_matrix w = t.matrix(spec.name);
    if (spec.role == io::hf_tensor_role::embedding) {
      CHECK(rms * std::sqrt(128.0) > 0.8);  // rows of about unit norm
      CHECK(rms * std::sqrt(128.0) < 1.3);
      continue;
    }
    const bool down = spec.name.ends_with("down_proj.weight");
    CHECK(rms > (down ? 0.012 : 0.016));  // about 0.02 (down_proj 0.015), more with the outlier columns
    CHECK(rms < (down ? 0.025 : 0.032));

    // Row means are not zero, and row scales differ.
    std::vector<double> means, scales;
    for (std::size_t i = 0; i < w.rows(); ++i) {
      double s = 0.0, s2 = 0.0;
      for (std::size_t j = 0; j < w.cols(); ++j) {
        s += w(i, j);
        s2 += static_cast<double>(w(i, j)) * w(i, j);
      }
      means.push_back(std::abs(s / static_cast<double>(w.cols())));
      scales.push_back(std::sqrt(s2 / static_cast<double>(w.cols())));
    }
    CHECK(median(means) > 0.1 * rms);
    CHECK(*std::max_element(scales.begin(), scales.end()) > 1.5 * *std::min_element(scales.begin(), scales.end()));

    // A few input columns are several times the others, the same ones in every layer reading the residual
    // stream (q, k, v, gate, up, lm_head): 1% of the 128 channels, so the two largest columns.
    const std::vector<double> norms = column_norms(w);
    CHECK(*std::max_element(norms.begin(), norms.end()) / median(norms) > 2.5);
    const bool reads_residual = !down && !spec.name.ends_with("o_proj.weight");
    if (reads_residual) {
      const std::set<std::size_t> top = top_columns(norms, 2);
      if (residual.empty()) residual = top;
      CHECK(top == residual);
      CHECK(median(norms) * 3.0 < norms[*top.rbegin()]);
      CHECK(median(norms) * 3.0 < norms[*top.begin()]);
    }
  }
  CHECK_FALSE(residual.empty());
}

TEST_CASE("synth: the tiny model loads into the runtime and its forward pass is finite and tame") {
  const temp_dir dir("tools-synth");
  synth::write_synthetic_llama(dir.path(), tiny(11, 2));
  const llama::model m = llama::load_hf(dir.path());
  CHECK(m.cfg.dim == 128);
  CHECK(m.layers.size() == 4);
  const llama::batch b = tools_test::random_batch(2, 64, m.cfg.vocab_size, 3);
  const llama::matrix logits = llama::logits(m, b);
  REQUIRE(logits.rows() == 128);
  REQUIRE(logits.cols() == 512);
  CHECK(logits.allFinite());
  const double rms = std::sqrt(logits.cast<double>().squaredNorm() / static_cast<double>(logits.size()));
  CHECK(rms > 0.01);
  CHECK(rms < 100.0);
  const Eigen::MatrixXd lp = llama::log_softmax(logits);
  CHECK(lp.allFinite());
}

TEST_CASE("synth: the family presets write their family's config and tensors, and run") {
  for (const char* name : {"tiny-llama3", "tiny-qwen2", "tiny-qwen3"}) {
    CAPTURE(name);
    const temp_dir dir("tools-synth-family");
    synth::options opt = tiny(12, 2);
    opt.config = synth::preset_config(name);
    synth::write_synthetic_llama(dir.path(), opt);
    const auto config = nlohmann::json::parse(read_bytes(dir.path() / "config.json"));
    const llama::model m = llama::load_hf(dir.path());
    const std::string family(llama::gguf_architecture(m.cfg.arch));
    if (std::string_view(name) == "tiny-llama3") {
      CHECK(config.at("rope_scaling").at("rope_type") == "llama3");
      CHECK(config.at("architectures")[0] == "LlamaForCausalLM");
      CHECK(family == "llama");
      CHECK(m.cfg.rope_factors.size() == m.cfg.head_dim() / 2);
    } else if (std::string_view(name) == "tiny-qwen2") {
      CHECK(config.at("model_type") == "qwen2");
      CHECK(family == "qwen2");
      CHECK(m.layers[0].bq.size() == 128);
      CHECK(m.layers[0].bv.cwiseAbs().maxCoeff() > 0.0F);
    } else {
      CHECK(config.at("head_dim") == 64);
      CHECK(family == "qwen3");
      CHECK(m.cfg.q_dim() == 256);
      CHECK(m.layers[0].q_norm.size() == 64);
    }
    const llama::matrix logits = llama::logits(m, tools_test::random_batch(1, 32, m.cfg.vocab_size, 3));
    CHECK(logits.allFinite());
  }
}

TEST_CASE("ternq-synth takes every preset by name and says the family it writes") {
  const temp_dir dir("tools-synth-cli-family");
  const auto r = tools_test::run(std::string(TERNQ_SYNTH_EXE) + " --preset tiny-qwen2 --layers 1 --out " +
                                 tools_test::quote(dir.path() / "m"));
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("tiny-qwen2: qwen2, dim 128") != std::string::npos);
  CHECK(nlohmann::json::parse(read_bytes(dir.path() / "m" / "config.json")).at("architectures")[0] ==
        "Qwen2ForCausalLM");
  const auto bad = tools_test::run(std::string(TERNQ_SYNTH_EXE) + " --preset qwen9 --out " +
                                   tools_test::quote(dir.path() / "x"));
  CHECK(bad.status != 0);
}

TEST_CASE("synth: bad shapes, unknown presets and a directory holding a model are refused by name") {
  const temp_dir dir("tools-synth");
  CHECK_THROWS_WITH_AS(synth::preset_config("llama3-8b"),
                       "[ternq.invalid_argument] synthetic_llama: no preset named 'llama3-8b' (known: tiny, "
                       "tiny-llama3, tiny-qwen2, tiny-qwen3, tinyllama-1.1b, llama2-7b, llama3.1-8b, mistral-7b, "
                       "qwen2.5-7b, qwen3-8b)",
                       ternq::error);
  synth::options o = tiny(1);
  o.config.num_key_value_heads = 3;
  CHECK_THROWS_WITH_AS(
      synth::write_synthetic_llama(dir.path(), o),
      "[ternq.invalid_argument] synthetic_llama: num_attention_heads 4 is not a multiple of num_key_value_heads 3",
      ternq::error);
  o = tiny(1);
  o.config.hidden_size = 132;  // head width 33
  CHECK_THROWS_WITH_AS(synth::write_synthetic_llama(dir.path(), o),
                       "[ternq.invalid_argument] synthetic_llama: the head width 33 is odd; RoPE needs it even",
                       ternq::error);
  o = tiny(1);
  o.type = io::dtype::i8;
  CHECK_THROWS_WITH_AS(synth::write_synthetic_llama(dir.path(), o),
                       "[ternq.unsupported] synthetic_llama: weights are F32, F16 or BF16, not I8", ternq::error);
  CHECK(std::filesystem::is_empty(dir.path()));

  synth::write_synthetic_llama(dir.path(), tiny(1));
  CHECK_THROWS_WITH_AS(synth::write_synthetic_llama(dir.path(), tiny(2)),
                       ("[ternq.invalid_argument] synthetic_llama: '" + dir.path().string() +
                        "' already holds config.json; choose an empty directory, or overwrite its model files "
                        "(ternq-synth --force)")
                           .c_str(),
                       ternq::error);
  // Overwriting a sharded model with a single file removes the old shards and index.
  o = tiny(2);
  o.shard_size = 300'000;
  o.overwrite = true;
  synth::write_synthetic_llama(dir.path(), o);
  std::ofstream(dir / "README.md") << "kept\n";
  o.shard_size = 5'000'000'000;
  synth::write_synthetic_llama(dir.path(), o);
  const auto files = contents(dir.path());
  CHECK(files.size() == 3);
  CHECK(files.contains("model.safetensors"));
  CHECK(files.contains("README.md"));
  const io::hf_llama_model m(dir.path());
  CHECK(m.tensors().shard_count() == 1);
}

TEST_CASE("ternq-synth writes a model from the command line, sharded by --shard-size with units") {
  const temp_dir dir("tools-synth");
  const std::string out = (dir / "model").string();
  std::string command = TERNQ_SYNTH_EXE;
  command += " --preset tiny --layers 2 --dtype f16 --seed 4 --threads 2 --shard-size 200kB --out '" + out + "' 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  CAPTURE(output);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(output.find("dim 128, hidden 344, 2 layers") != std::string::npos);
  const io::hf_llama_model m(out);
  CHECK(m.config().num_hidden_layers == 2);
  CHECK(m.tensors().shard_count() > 1);
  CHECK(m.tensors().info("lm_head.weight").type == io::dtype::f16);
}

TEST_CASE("ternq-synth refuses a zero or negative count by its limit, not double's") {
  for (const std::string value : {"0", "-3"}) {
    const auto o = tools_test::run(std::string(TERNQ_SYNTH_EXE) + " --out x --dim " + value);
    CHECK(o.status != 0);
    CHECK(o.output.find("--dim: must be a whole number >= 1 (got '" + value + "')") != std::string::npos);
    CHECK(o.output.find("17976931348623157") == std::string::npos);  // DBL_MAX, written out
  }
  const auto seed = tools_test::run(std::string(TERNQ_SYNTH_EXE) + " --out x --seed -1");
  CHECK(seed.status != 0);
  CHECK(seed.output.find("--seed: must be a whole number >= 0 (got '-1')") != std::string::npos);
}
