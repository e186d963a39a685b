// SPDX-License-Identifier: MIT
// Model families: tiny Llama-3 (RoPE scaling, GQA, tied output), Mistral, Qwen2 (q/k/v biases) and Qwen3 (q/k
// norms, explicit head width) checkpoints written as Hugging Face directories. Their logits are checked against an
// independent formulation written here from transformers' definitions (token by token, in double, rotate-half
// RoPE on the rows as stored, Llama-3 frequencies by transformers' masked formula); GGUF and Hugging Face round
// trips; the whole ternq-quantize/ternq-eval pipeline on each family; unsupported families refused by name.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <numbers>

#include <nlohmann/json.hpp>

#include <ternq/core/half.hpp>
#include <ternq/io/gguf_llama.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/safetensors_writer.hpp>
#include <ternq/pack/q8_0.hpp>

#include "llama/forward.hpp"
#include "llama/gguf_io.hpp"
#include "llama/save.hpp"
#include "llama/source.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;

/// A Hugging Face checkpoint as the test holds it: tensors by name (row-major) and config.json.
struct hf_checkpoint {
  nlohmann::json config;
  std::map<std::string, std::pair<std::vector<std::size_t>, std::vector<float>>> tensors;

  [[nodiscard]] const std::vector<float>& at(const std::string& name) const { return tensors.at(name).second; }
  [[nodiscard]] bool has(const std::string& name) const { return tensors.contains(name); }
};

enum class kind { llama3, mistral, qwen2, qwen3 };

/// A tiny random checkpoint of `k`: 2 layers, 4 query heads over 2 key/value heads, hidden 64 (Q2_0's block),
/// FFN 96 (padded to 128 when packed), vocab 50. Qwen3's heads are 32 wide (q_dim 128 != hidden 64); Llama-3 has
/// RoPE scaling with a short original context so all three bands of the scaling occur, and a tied output.
hf_checkpoint make_checkpoint(kind k, std::uint64_t seed) {
  testing::rng r(seed);
  hf_checkpoint c;
  const std::size_t hidden = 64, ff = 96, layers = 2, heads = 4, kv_heads = 2, vocab = 50;
  const std::size_t head_dim = k == kind::qwen3 ? 32 : hidden / heads;
  const std::size_t q = heads * head_dim, kv = kv_heads * head_dim;
  const bool tied = k == kind::llama3;
  c.config = {{"hidden_size", hidden},           {"intermediate_size", ff},
              {"num_hidden_layers", layers},     {"num_attention_heads", heads},
              {"num_key_value_heads", kv_heads}, {"vocab_size", vocab},
              {"max_position_embeddings", 64},   {"rms_norm_eps", 1e-6},
              {"tie_word_embeddings", tied}};
  switch (k) {
    case kind::llama3:
      c.config["model_type"] = "llama";
      c.config["rope_theta"] = 500000.0;
      c.config["rope_scaling"] = {{"rope_type", "llama3"},
                                  {"factor", 8.0},
                                  {"low_freq_factor", 1.0},
                                  {"high_freq_factor", 4.0},
                                  {"original_max_position_embeddings", 64}};
      break;
    case kind::mistral:
      c.config["model_type"] = "mistral";
      c.config["rope_theta"] = 1000000.0;
      c.config["sliding_window"] = 4096;
      break;
    case kind::qwen2:
      c.config["model_type"] = "qwen2";
      c.config["rope_theta"] = 1000000.0;
      c.config["use_sliding_window"] = false;
      break;
    case kind::qwen3:
      c.config["model_type"] = "qwen3";
      c.config["rope_theta"] = 1000000.0;
      c.config["head_dim"] = head_dim;
      break;
  }
  const auto add = [&](const std::string& name, std::vector<std::size_t> shape, double scale, double mean = 0.0) {
    std::size_t n = 1;
    for (const std::size_t e : shape) n *= e;
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(mean + scale * r.normal());
    c.tensors[name] = {std::move(shape), std::move(v)};
  };
  add("model.embed_tokens.weight", {vocab, hidden}, 1.0);
  add("model.norm.weight", {hidden}, 0.1, 1.0);
  if (!tied) add("lm_head.weight", {vocab, hidden}, 0.3);
  for (std::size_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {hidden}, 0.1, 1.0);
    add(p + "post_attention_layernorm.weight", {hidden}, 0.1, 1.0);
    add(p + "self_attn.q_proj.weight", {q, hidden}, 0.3);
    add(p + "self_attn.k_proj.weight", {kv, hidden}, 0.3);
    add(p + "self_attn.v_proj.weight", {kv, hidden}, 0.3);
    add(p + "self_attn.o_proj.weight", {hidden, q}, 0.3);
    add(p + "mlp.gate_proj.weight", {ff, hidden}, 0.3);
    add(p + "mlp.up_proj.weight", {ff, hidden}, 0.3);
    add(p + "mlp.down_proj.weight", {hidden, ff}, 0.3);
    if (k == kind::qwen2) {
      add(p + "self_attn.q_proj.bias", {q}, 0.5);
      add(p + "self_attn.k_proj.bias", {kv}, 0.5);
      add(p + "self_attn.v_proj.bias", {kv}, 0.5);
    }
    if (k == kind::qwen3) {
      add(p + "self_attn.q_norm.weight", {head_dim}, 0.2, 1.0);
      add(p + "self_attn.k_norm.weight", {head_dim}, 0.2, 1.0);
    }
  }
  return c;
}

void write_checkpoint(const hf_checkpoint& c, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << c.config.dump(2);
  io::safetensors_writer w;
  for (const auto& [name, t] : c.tensors) {
    w.add(name, io::dtype::f32, t.first, std::span<const float>(t.second));
  }
  w.write(dir / "model.safetensors");
}

// ---- the independent formulation ------------------------------------------------------------------------------

using dvec = std::vector<double>;

/// `W x (+ b)` for a row-major `rows x cols` W.
dvec affine(const std::vector<float>& w, const dvec& x, const std::vector<float>* b = nullptr) {
  const std::size_t cols = x.size(), rows = w.size() / cols;
  dvec y(rows, 0.0);
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t j = 0; j < cols; ++j) y[i] += static_cast<double>(w[i * cols + j]) * x[j];
    if (b != nullptr) y[i] += (*b)[i];
  }
  return y;
}

/// RMSNorm of `x[first, first + n)` with weight `g`, in place.
void rms(dvec& x, std::size_t first, std::size_t n, const std::vector<float>& g, double eps) {
  double ss = 0.0;
  for (std::size_t i = 0; i < n; ++i) ss += x[first + i] * x[first + i];
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  for (std::size_t i = 0; i < n; ++i) x[first + i] = x[first + i] * inv * g[i];
}

/// transformers' inverse frequencies: `theta^(-2i/d)`, and for Llama-3 its `_compute_llama3_parameters`:
/// wavelengths above the low band divided by the factor, a smooth mix inside the band.
dvec inverse_frequencies(const nlohmann::json& cfg, std::size_t d) {
  const double theta = cfg.at("rope_theta").get<double>();
  dvec inv(d / 2);
  for (std::size_t i = 0; i < inv.size(); ++i) inv[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / double(d));
  if (!cfg.contains("rope_scaling")) return inv;
  const auto& s = cfg.at("rope_scaling");
  const double factor = s.at("factor"), low = s.at("low_freq_factor"), high = s.at("high_freq_factor");
  const double old_len = s.at("original_max_position_embeddings");
  const double low_wavelen = old_len / low, high_wavelen = old_len / high;
  for (double& f : inv) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    const double scaled = wavelen > low_wavelen ? f / factor : f;
    const double smooth = (old_len / wavelen - low) / (high - low);
    const double smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    f = medium ? smoothed : scaled;
  }
  return inv;
}

/// Logits of `tokens` (one sequence), `tokens x vocab`, token by token with a key/value cache.
std::vector<dvec> reference_logits(const hf_checkpoint& c, const std::vector<std::int32_t>& tokens) {
  const auto& cfg = c.config;
  const std::size_t hidden = cfg.at("hidden_size"), layers = cfg.at("num_hidden_layers");
  const std::size_t heads = cfg.at("num_attention_heads"), kv_heads = cfg.at("num_key_value_heads");
  const std::size_t vocab = cfg.at("vocab_size");
  const std::size_t d = cfg.contains("head_dim") ? cfg.at("head_dim").get<std::size_t>() : hidden / heads;
  const double eps = cfg.at("rms_norm_eps");
  const dvec inv = inverse_frequencies(cfg, d);
  const auto rotate = [&](dvec& x, std::size_t n_heads, std::size_t pos) {
    for (std::size_t h = 0; h < n_heads; ++h) {
      for (std::size_t i = 0; i < d / 2; ++i) {
        const double a = static_cast<double>(pos) * inv[i];
        const double x0 = x[h * d + i], x1 = x[h * d + i + d / 2];
        x[h * d + i] = x0 * std::cos(a) - x1 * std::sin(a);
        x[h * d + i + d / 2] = x1 * std::cos(a) + x0 * std::sin(a);
      }
    }
  };
  std::vector<std::vector<dvec>> keys(layers), values(layers);
  std::vector<dvec> out;
  const std::vector<float>& emb = c.at("model.embed_tokens.weight");
  for (std::size_t pos = 0; pos < tokens.size(); ++pos) {
    dvec x(hidden);
    for (std::size_t j = 0; j < hidden; ++j) x[j] = emb[static_cast<std::size_t>(tokens[pos]) * hidden + j];
    for (std::size_t l = 0; l < layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const auto bias = [&](const char* n) { return c.has(p + n) ? &c.at(p + n) : nullptr; };
      dvec xn = x;
      rms(xn, 0, hidden, c.at(p + "input_layernorm.weight"), eps);
      dvec q = affine(c.at(p + "self_attn.q_proj.weight"), xn, bias("self_attn.q_proj.bias"));
      dvec k = affine(c.at(p + "self_attn.k_proj.weight"), xn, bias("self_attn.k_proj.bias"));
      const dvec v = affine(c.at(p + "self_attn.v_proj.weight"), xn, bias("self_attn.v_proj.bias"));
      if (c.has(p + "self_attn.q_norm.weight")) {
        for (std::size_t h = 0; h < heads; ++h) rms(q, h * d, d, c.at(p + "self_attn.q_norm.weight"), eps);
        for (std::size_t h = 0; h < kv_heads; ++h) rms(k, h * d, d, c.at(p + "self_attn.k_norm.weight"), eps);
      }
      rotate(q, heads, pos);
      rotate(k, kv_heads, pos);
      keys[l].push_back(k);
      values[l].push_back(v);
      dvec context(heads * d, 0.0);
      for (std::size_t h = 0; h < heads; ++h) {
        const std::size_t g = h / (heads / kv_heads);
        dvec score(pos + 1);
        double top = -1e300;
        for (std::size_t t = 0; t <= pos; ++t) {
          double s = 0.0;
          for (std::size_t i = 0; i < d; ++i) s += q[h * d + i] * keys[l][t][g * d + i];
          score[t] = s / std::sqrt(static_cast<double>(d));
          top = std::max(top, score[t]);
        }
        double total = 0.0;
        for (double& s : score) total += (s = std::exp(s - top));
        for (std::size_t t = 0; t <= pos; ++t) {
          for (std::size_t i = 0; i < d; ++i) context[h * d + i] += score[t] / total * values[l][t][g * d + i];
        }
      }
      const dvec o = affine(c.at(p + "self_attn.o_proj.weight"), context);
      for (std::size_t j = 0; j < hidden; ++j) x[j] += o[j];
      dvec xf = x;
      rms(xf, 0, hidden, c.at(p + "post_attention_layernorm.weight"), eps);
      dvec gate = affine(c.at(p + "mlp.gate_proj.weight"), xf);
      const dvec up = affine(c.at(p + "mlp.up_proj.weight"), xf);
      for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
      const dvec down = affine(c.at(p + "mlp.down_proj.weight"), gate);
      for (std::size_t j = 0; j < hidden; ++j) x[j] += down[j];
    }
    rms(x, 0, hidden, c.at("model.norm.weight"), eps);
    out.push_back(affine(c.has("lm_head.weight") ? c.at("lm_head.weight") : emb, x));
    CHECK(out.back().size() == vocab);
  }
  return out;
}

/// The largest |a - b| over the logits, relative to the largest |b|.
double relative_difference(const llama::matrix& a, const std::vector<dvec>& b) {
  double diff = 0.0, scale = 0.0;
  for (std::size_t t = 0; t < b.size(); ++t) {
    for (std::size_t j = 0; j < b[t].size(); ++j) {
      diff = std::max(diff, std::abs(a(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(j)) - b[t][j]));
      scale = std::max(scale, std::abs(b[t][j]));
    }
  }
  return diff / scale;
}

llama::batch sequence(std::size_t length, std::size_t vocab, std::uint64_t seed) {
  return tools_test::random_batch(1, length, vocab, seed);
}

const char* name_of(kind k) {
  switch (k) {
    case kind::llama3:
      return "llama3";
    case kind::mistral:
      return "mistral";
    case kind::qwen2:
      return "qwen2";
    case kind::qwen3:
      return "qwen3";
  }
  return "?";
}

constexpr kind all_kinds[] = {kind::llama3, kind::mistral, kind::qwen2, kind::qwen3};

}  // namespace

TEST_CASE("families: the forward pass of each family matches transformers' formulation, token by token") {
  for (const kind k : all_kinds) {
    CAPTURE(name_of(k));
    const tools_test::temp_dir dir("families");
    const hf_checkpoint c = make_checkpoint(k, 11 + static_cast<std::uint64_t>(k));
    write_checkpoint(c, dir.path() / "hf");
    const llama::model m = llama::materialize(llama::hf_source(dir.path() / "hf"));
    const llama::batch b = sequence(40, 50, 5);
    const double rel = relative_difference(llama::logits(m, b), reference_logits(c, b.tokens));
    CHECK(rel < 2e-5);
    // The family's features are read, not ignored: the model differs from one without them.
    switch (k) {
      case kind::llama3: {
        REQUIRE(m.cfg.rope_factors.size() == 8);
        CHECK(m.cfg.rope_factors[1] > 1.0F);  // inside the band: interpolated
        CHECK(m.cfg.rope_factors[1] < 8.0F);
        CHECK(m.cfg.rope_factors.front() == 1.0F);  // high frequencies kept
        CHECK(m.cfg.rope_factors.back() == 8.0F);   // low ones divided by the factor
        CHECK(m.cfg.rope == llama::rope_style::interleaved);
        CHECK(!m.classifier.has_value());
        llama::model plain = m;
        plain.cfg.rope_factors.clear();
        CHECK(relative_difference(llama::logits(plain, b), reference_logits(c, b.tokens)) > 1e-3);
        break;
      }
      case kind::mistral:
        CHECK(m.cfg.sliding_window == 4096);
        CHECK(m.cfg.arch == llama::family::llama);
        break;
      case kind::qwen2: {
        CHECK(m.cfg.arch == llama::family::qwen2);
        CHECK(m.cfg.rope == llama::rope_style::rotate_half);
        llama::model plain = m;
        for (auto& l : plain.layers) l.bq = l.bk = l.bv = llama::vector();
        CHECK(relative_difference(llama::logits(plain, b), reference_logits(c, b.tokens)) > 1e-3);
        break;
      }
      case kind::qwen3: {
        CHECK(m.cfg.arch == llama::family::qwen3);
        CHECK(m.cfg.q_dim() == 128);
        llama::model plain = m;
        for (auto& l : plain.layers) l.q_norm = l.k_norm = llama::vector();
        CHECK(relative_difference(llama::logits(plain, b), reference_logits(c, b.tokens)) > 1e-3);
        break;
      }
    }
  }
}

TEST_CASE("families: GGUF files carry llama.cpp's architecture, keys and tensors and read back to the same logits") {
  for (const kind k : all_kinds) {
    CAPTURE(name_of(k));
    const tools_test::temp_dir dir("families-gguf");
    write_checkpoint(make_checkpoint(k, 21), dir.path() / "hf");
    const llama::model m = llama::materialize(llama::hf_source(dir.path() / "hf"));
    const auto path = dir.path() / "m.gguf";
    (void)llama::save_gguf(m, {}, llama::gguf_storage{.f16_when_lossless = false}, nullptr, path, "tiny");

    const auto r = io::gguf_reader::open(path);
    const std::string arch = r.metadata().get<std::string>("general.architecture");
    CHECK(arch == (k == kind::qwen2 ? "qwen2" : k == kind::qwen3 ? "qwen3" : "llama"));
    CHECK(r.metadata().get<std::uint32_t>(arch + ".embedding_length") == 64);
    CHECK(r.metadata().get<std::uint32_t>(arch + ".attention.head_count_kv") == 2);
    CHECK(r.metadata().contains(arch + ".attention.key_length") == (k == kind::qwen3));
    if (k == kind::qwen3) CHECK(r.metadata().get<std::uint32_t>(arch + ".attention.key_length") == 32);
    // Exactly the tensors the io layer's independent list names for these hyperparameters, with its extents.
    const auto expected =
        io::llama_tensors(llama::hparams_of(m.cfg), !m.classifier.has_value(), !m.cfg.rope_factors.empty());
    REQUIRE(r.tensors().size() == expected.size());
    for (const auto& t : expected) {
      CAPTURE(t.name);
      REQUIRE(r.find_tensor(t.name) != nullptr);
      CHECK(r.find_tensor(t.name)->ne == t.ne);
    }
    const llama::model back = llama::materialize(llama::gguf_source(path));
    CHECK(back.cfg.rope_factors == m.cfg.rope_factors);
    CHECK(back.cfg.head_dim() == m.cfg.head_dim());
    const llama::batch b = sequence(24, 50, 7);
    CHECK(llama::logits(back, b) == llama::logits(m, b));
  }
}

TEST_CASE("families: a Hugging Face directory written back reads to the same model") {
  for (const kind k : all_kinds) {
    CAPTURE(name_of(k));
    const tools_test::temp_dir dir("families-hf");
    write_checkpoint(make_checkpoint(k, 31), dir.path() / "hf");
    const llama::model m = llama::materialize(llama::hf_source(dir.path() / "hf"));
    llama::save_hf(m, dir.path() / "hf", dir.path() / "out");
    const llama::model back = llama::materialize(llama::hf_source(dir.path() / "out"));
    const llama::batch b = sequence(16, 50, 9);
    CHECK(llama::logits(back, b) == llama::logits(m, b));
    // llama2.c holds none of these families' features
    CHECK_THROWS_WITH_AS(llama::save_llama2c(m, dir.path() / "x.bin"),
                         doctest::Contains("llama2.c checkpoint holds only"), ternq::error);
  }
}

TEST_CASE("families: quantized end to end, the GGUF and the fake Hugging Face model score the same") {
  for (const kind k : all_kinds) {
    CAPTURE(name_of(k));
    const tools_test::temp_dir dir("families-cli");
    write_checkpoint(make_checkpoint(k, 41), dir.path() / "hf");
    {
      std::ofstream ids(dir.path() / "calib.txt");
      const llama::batch b = sequence(512, 50, 13);
      for (const auto t : b.tokens) ids << t << ' ';
    }
    const auto q = tools_test::run(
        std::string(TERNQ_QUANTIZE_EXE) + " --model " + tools_test::quote(dir.path() / "hf") +
        " --method gptq_act_optimal --format q2_0 --calib-tokens " + tools_test::quote(dir.path() / "calib.txt") +
        " --calib-seqs 4 --calib-len 32" + " --out-gguf " + tools_test::quote(dir.path() / "q.gguf") + " --out-fake " +
        tools_test::quote(dir.path() / "fake"));
    INFO(q.output);
    REQUIRE(q.status == 0);
    const llama::model packed = llama::materialize(llama::gguf_source(dir.path() / "q.gguf"));
    const llama::model fake = llama::materialize(llama::hf_source(dir.path() / "fake"));
    CHECK(packed.cfg.arch == fake.cfg.arch);
    const llama::batch b = sequence(32, 50, 17);
    const llama::matrix lp = llama::logits(packed, b), lf = llama::logits(fake, b);
    CHECK((lp - lf).cwiseAbs().maxCoeff() <= 1e-4F * lf.cwiseAbs().maxCoeff());
    // and the quantized layers are ternary in the file
    const auto r = io::gguf_reader::open(dir.path() / "q.gguf");
    CHECK(r.tensor("blk.0.attn_q.weight").type == pack::ggml_type::q2_0);
  }
}

TEST_CASE("families: other model types and unsupported features are refused up front, naming them") {
  const tools_test::temp_dir dir("families-refused");
  const auto refused = [&](const std::function<void(hf_checkpoint&)>& edit) {
    hf_checkpoint c = make_checkpoint(kind::mistral, 51);
    edit(c);
    std::filesystem::remove_all(dir.path() / "hf");
    write_checkpoint(c, dir.path() / "hf");
    try {
      (void)llama::hf_source(dir.path() / "hf");
    } catch (const ternq::error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(refused([](hf_checkpoint& c) {
          c.config["model_type"] = "mixtral";
        }).find("model_type 'mixtral' is not supported; ternq runs llama, mistral, qwen2 and qwen3") !=
        std::string::npos);
  CHECK(refused([](hf_checkpoint& c) { c.config["model_type"] = "qwen3_moe"; }).find("not supported") !=
        std::string::npos);
  CHECK(refused([](hf_checkpoint& c) {
          c.config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
        }).find("rope_scaling type 'yarn' is not supported") != std::string::npos);
  CHECK(refused([](hf_checkpoint& c) { c.config["attention_bias"] = true; }).find("attention_bias") !=
        std::string::npos);
  CHECK(refused([](hf_checkpoint& c) { c.config["mlp_bias"] = true; }).find("mlp_bias") != std::string::npos);
  CHECK(refused([](hf_checkpoint& c) {
          c.config["model_type"] = "qwen2";
          c.config["use_sliding_window"] = true;
        }).find("use_sliding_window") != std::string::npos);
  // A window shorter than the sequences is refused by the forward pass rather than silently ignored.
  const hf_checkpoint c = make_checkpoint(kind::mistral, 52);
  write_checkpoint(c, dir.path() / "ok");
  llama::model m = llama::materialize(llama::hf_source(dir.path() / "ok"));
  m.cfg.sliding_window = 8;
  CHECK_THROWS_WITH(llama::logits(m, sequence(16, 50, 3)), doctest::Contains("attention window of 8"));
}

TEST_CASE(
    "families: a GGUF of F16 and Q8_0 tensors, as llama.cpp's converter and quantizer write, is read and "
    "quantized") {
  for (const kind k : all_kinds) {
    CAPTURE(name_of(k));
    const tools_test::temp_dir dir("families-q8");
    write_checkpoint(make_checkpoint(k, 61), dir.path() / "hf");
    const llama::model m = llama::materialize(llama::hf_source(dir.path() / "hf"));
    llama::gguf_storage storage{.f16_when_lossless = true};
    for (const auto& name : llama::gguf_tensor_names(m.cfg, m.classifier.has_value())) {
      if (name.find("_norm") == std::string::npos && name.find(".bias") == std::string::npos &&
          name != "rope_freqs.weight") {
        storage.keep[name] = name == "token_embd.weight" ? pack::ggml_type::f16 : pack::ggml_type::q8_0;
      }
    }
    llama::model stored = m;  // the values the kept types hold
    const auto round_q8_0 = [](llama::matrix& w) {
      const std::vector<std::uint8_t> bytes =
          pack::quantize_q8_0(std::span<const float>(w.data(), static_cast<std::size_t>(w.size())),
                              static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()));
      pack::q8_0_to_float(bytes, std::span<float>(w.data(), static_cast<std::size_t>(w.size())));
    };
    for (auto& l : stored.layers) {
      for (const auto which : llama::all_linears) round_q8_0(l.weight(which));
    }
    if (stored.classifier) round_q8_0(*stored.classifier);
    for (Eigen::Index i = 0; i < stored.embedding.size(); ++i) {
      stored.embedding.data()[i] = fp16_bits_to_fp32(fp32_to_fp16_bits(stored.embedding.data()[i]));
    }
    (void)llama::save_gguf(m, {}, storage, nullptr, dir.path() / "q8.gguf", "q8");
    const auto r = io::gguf_reader::open(dir.path() / "q8.gguf");
    CHECK(r.tensor("blk.1.ffn_down.weight").type == pack::ggml_type::q8_0);
    CHECK(r.tensor("token_embd.weight").type == pack::ggml_type::f16);
    const llama::model back = llama::materialize(llama::gguf_source(dir.path() / "q8.gguf"));
    const llama::batch b = sequence(24, 50, 19);
    CHECK((llama::logits(back, b) - llama::logits(stored, b)).cwiseAbs().maxCoeff() == 0.0F);
    // and it goes through the whole pipeline as an input
    {
      std::ofstream ids(dir.path() / "calib.txt");
      for (const auto t : sequence(256, 50, 23).tokens) ids << t << ' ';
    }
    const auto q = tools_test::run(
        std::string(TERNQ_QUANTIZE_EXE) + " --model " + tools_test::quote(dir.path() / "q8.gguf") +
        " --method gptq_optimal --format q2_0 --calib-tokens " + tools_test::quote(dir.path() / "calib.txt") +
        " --calib-seqs 4 --calib-len 32" + " --out-gguf " + tools_test::quote(dir.path() / "t.gguf"));
    INFO(q.output);
    REQUIRE(q.status == 0);
    CHECK(llama::gguf_source(dir.path() / "t.gguf").cfg().arch == m.cfg.arch);
  }
}
