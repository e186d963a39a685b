// SPDX-License-Identifier: MIT
// Shared pieces of the tools tests: the shared models, small random models, temporary directories.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "llama/forward.hpp"
#include "llama/model.hpp"
#include "llm_like.hpp"
#include "temp_dir.hpp"

namespace ternq::tools_test {

inline std::filesystem::path shared_dir() { return TERNQ_SHARED_DIR; }

/// True when ../shared holds the file; otherwise the calling test reports that it skips.
inline bool have_shared(const std::string& relative) {
  if (std::filesystem::exists(shared_dir() / relative)) return true;
  MESSAGE("skipped: " << (shared_dir() / relative).string() << " is not available");
  return false;
}

/// tests/data/tokenizers: small tokenizer files, a multilingual text, and the ids that independent
/// implementations give for it (README.md there says how they were made).
inline std::filesystem::path tokenizer_data() { return std::filesystem::path(TERNQ_TEST_DATA_DIR) / "tokenizers"; }

/// Scratch directories, `ternq-tools-<name>-...`.
using testing::temp_dir;

/// A random model of shape and family `cfg` (untied output): Qwen2's q/k/v biases and Qwen3's q/k norms are drawn
/// too.
inline llama::model random_model(std::uint64_t seed, const llama::config& cfg) {
  llama::model m;
  m.cfg = cfg;
  testing::rng r(seed);
  const auto random = [&](std::size_t rows, std::size_t cols, double scale) {
    llama::matrix x(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
    for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = static_cast<float>(scale * r.normal());
    return x;
  };
  const auto norm = [&](std::size_t n) {
    llama::vector v(static_cast<Eigen::Index>(n));
    for (Eigen::Index k = 0; k < v.size(); ++k) v(k) = static_cast<float>(1.0 + 0.1 * r.normal());
    return v;
  };
  const std::size_t d = m.cfg.dim, q = m.cfg.q_dim(), kv = m.cfg.kv_dim(), h = m.cfg.hidden_dim;
  m.embedding = random(m.cfg.vocab_size, d, 1.0);
  m.final_norm = norm(d);
  m.classifier = random(m.cfg.vocab_size, d, 0.2);
  for (std::size_t l = 0; l < m.cfg.n_layers; ++l) {
    llama::layer w;
    w.wq = random(q, d, 0.2);
    w.wk = random(kv, d, 0.2);
    w.wv = random(kv, d, 0.2);
    w.wo = random(d, q, 0.2);
    w.w1 = random(h, d, 0.2);
    w.w2 = random(d, h, 0.2);
    w.w3 = random(h, d, 0.2);
    w.attn_norm = norm(d);
    w.ffn_norm = norm(d);
    if (llama::has_vector(cfg.arch, llama::block_vector::q_bias)) {
      w.bq = random(q, 1, 0.5).col(0);
      w.bk = random(kv, 1, 0.5).col(0);
      w.bv = random(kv, 1, 0.5).col(0);
    }
    if (llama::has_vector(cfg.arch, llama::block_vector::q_norm)) {
      w.q_norm = norm(m.cfg.head_dim());
      w.k_norm = norm(m.cfg.head_dim());
    }
    m.layers.push_back(std::move(w));
  }
  return m;
}

/// A small random Llama model (grouped-query attention, untied output).
inline llama::model random_model(std::uint64_t seed, llama::rope_style rope = llama::rope_style::interleaved) {
  llama::config cfg{
      .dim = 32, .hidden_dim = 48, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 40, .seq_len = 64};
  cfg.rope = rope;
  return random_model(seed, cfg);
}

/// A batch of random token sequences.
inline llama::batch random_batch(std::size_t sequences, std::size_t length, std::size_t vocab, std::uint64_t seed) {
  testing::rng r(seed);
  llama::batch b;
  b.sequences = sequences;
  b.length = length;
  for (std::size_t k = 0; k < sequences * length; ++k) b.tokens.push_back(static_cast<std::int32_t>(r.below(vocab)));
  return b;
}

/// What a command printed and how it ended.
struct outcome {
  int status = 0;
  std::string output;  // stdout and stderr together
};

/// Runs `command` through the shell and captures its output and exit status.
inline outcome run(const std::string& command) {
  outcome o;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) o.output += buffer;
  const int status = ::pclose(pipe);
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

/// `p` in single quotes, for a shell command line.
inline std::string quote(const std::filesystem::path& p) {
  // Built with += : GCC 12's -Wrestrict misfires on "literal" + std::string at -O3.
  std::string s(1, '\'');
  s += p.string();
  s += '\'';
  return s;
}

/// The `config.json` of a Hugging Face Llama directory holding `m`.
inline nlohmann::json hf_config(const llama::model& m) {
  return {{"model_type", "llama"},
          {"hidden_size", m.cfg.dim},
          {"intermediate_size", m.cfg.hidden_dim},
          {"num_hidden_layers", m.cfg.n_layers},
          {"num_attention_heads", m.cfg.n_heads},
          {"num_key_value_heads", m.cfg.n_kv_heads},
          {"vocab_size", m.cfg.vocab_size},
          {"max_position_embeddings", m.cfg.seq_len},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"tie_word_embeddings", !m.classifier.has_value()}};
}

}  // namespace ternq::tools_test
