// SPDX-License-Identifier: MIT
// The forward pass: the reference figures of the shared models, greedy decoding, causality, RoPE layouts.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>

#include <ternq/io/llama2c_tokenizer.hpp>

#include "cli/text_slice.hpp"
#include "llama/convert.hpp"
#include "llama/forward.hpp"
#include "llama/generate.hpp"
#include "llama/load.hpp"
#include "tokenize/llama2c.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::have_shared;
using tools_test::shared_dir;

/// Mean NLL of the first 255 tokens after BOS of the first 1200 characters of the TinyStories head
/// (the setting of ../shared/models/README.md).
double reference_nll(const std::string& model, const std::string& tokenizer, bool collapse) {
  const llama::model m = llama::load_llama2c(shared_dir() / "models" / model);
  const io::llama2c_tokenizer tok(shared_dir() / "models" / tokenizer);
  std::string text = cli::read_text(shared_dir() / "text/tinystories_validation_head.txt", 0).substr(0, 1200);
  if (collapse) text = io::collapse_whitespace(text);
  const std::vector<int> ids = tok.encode(text);
  llama::batch b;
  b.sequences = 1;
  b.length = 256;
  b.tokens.assign(ids.begin(), ids.begin() + 256);
  const auto nll = llama::next_token_nll(m, b);
  CHECK(nll.count == 255);
  return nll.mean();
}

}  // namespace

TEST_CASE("the forward pass reproduces the reference NLL of every shared model within 1e-3") {
  if (!have_shared("models/stories260K.bin")) return;
  CHECK(std::abs(reference_nll("stories260K.bin", "tok512.bin", false) - 1.3958) < 1e-3);
  CHECK(std::abs(reference_nll("stories260K.bin", "tok512.bin", true) - 1.3751) < 1e-3);
  CHECK(std::abs(reference_nll("babyllama_tok105_model5000.bin", "babyllama_tok105.bin", true) - 0.8206) < 1e-3);
  CHECK(std::abs(reference_nll("babyllama_tok361_model5000.bin", "babyllama_tok361_reconstructed.bin", true) - 0.7681) <
        1e-3);
}

TEST_CASE("greedy decoding from BOS with stories260K gives the reference story") {
  if (!have_shared("models/stories260K.bin")) return;
  const llama::model m = llama::load_llama2c(shared_dir() / "models/stories260K.bin");
  const io::llama2c_tokenizer tok(shared_dir() / "models/tok512.bin");
  const auto out = llama::greedy_decode(m, {1}, 60);
  const std::vector<int> ids(out.begin(), out.end());
  CHECK(tok.decode(ids).starts_with(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
      "big, red ball."));
}

TEST_CASE("attention is causal: later tokens never change earlier logits") {
  const llama::model m = tools_test::random_model(1);
  llama::batch a = tools_test::random_batch(2, 12, m.cfg.vocab_size, 7);
  llama::batch b = a;
  b.tokens[7] = (b.tokens[7] + 1) % static_cast<std::int32_t>(m.cfg.vocab_size);  // sequence 0, position 7
  const llama::matrix la = llama::logits(m, a);
  const llama::matrix lb = llama::logits(m, b);
  CHECK(la.topRows(7) == lb.topRows(7));  // positions 0..6 of sequence 0 cannot see position 7
  CHECK(la.row(7) != lb.row(7));
  CHECK(la.bottomRows(12) == lb.bottomRows(12));  // sequence 1 is independent
}

TEST_CASE("interleaved RoPE on reordered q/k rows equals rotate-half RoPE on the original rows") {
  llama::model half = tools_test::random_model(3, llama::rope_style::rotate_half);
  llama::model inter = half;
  inter.cfg.rope = llama::rope_style::interleaved;
  for (auto& l : inter.layers) {
    l.wq = llama::interleave_rope_rows(l.wq, inter.cfg.n_heads);
    l.wk = llama::interleave_rope_rows(l.wk, inter.cfg.n_kv_heads);
  }
  const llama::batch b = tools_test::random_batch(2, 16, half.cfg.vocab_size, 9);
  const llama::matrix lh = llama::logits(half, b);
  const llama::matrix li = llama::logits(inter, b);
  CHECK((lh - li).cwiseAbs().maxCoeff() < 1e-4F);
  // ... and the reordering is a permutation that the inverse undoes exactly.
  const auto& q = half.layers[0].wq;
  CHECK(llama::deinterleave_rope_rows(llama::interleave_rope_rows(q, 4), 4) == q);
  CHECK(llama::interleave_rope_rows(q, 4) != q);
}

TEST_CASE("RMSNorm, SwiGLU and the log-softmax against direct formulas") {
  llama::matrix h(2, 3);
  h << 1, -2, 3, 0.5F, 0.5F, -1;
  llama::vector w(3);
  w << 1, 2, 0.5F;
  const llama::matrix n = llama::rms_norm(h, w, 1e-5F);
  const double rms0 = std::sqrt((1 + 4 + 9) / 3.0 + 1e-5);
  CHECK(n(0, 1) == doctest::Approx(-2 / rms0 * 2).epsilon(1e-6));
  const llama::matrix s = llama::swiglu(h, h);
  CHECK(s(0, 2) == doctest::Approx(3.0 / (1 + std::exp(-3.0)) * 3.0).epsilon(1e-6));
  const Eigen::MatrixXd lp = llama::log_softmax(h);
  CHECK(lp.row(0).array().exp().sum() == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE(
    "text normalization: whitespace collapse for the character-level vocabularies, unencodable characters dropped") {
  if (!have_shared("models/tok512.bin")) return;
  const tokenizers::llama2c tok512(shared_dir() / "models/tok512.bin");
  const tokenizers::llama2c tok105(shared_dir() / "models/babyllama_tok105.bin");
  const tokenizers::llama2c tok361(shared_dir() / "models/babyllama_tok361_reconstructed.bin");
  CHECK_FALSE(tok512.needs_whitespace_collapse());
  CHECK(tok105.needs_whitespace_collapse());
  CHECK(tok361.needs_whitespace_collapse());
  CHECK(tok512.encodes_every_character());
  CHECK_FALSE(tok105.encodes_every_character());
  std::size_t dropped = 0;
  // neither the CJK character nor the emoji has a piece in the 105-character vocabulary
  CHECK(cli::drop_unencodable(tok105, "a\xE4\xB8\xAD b.\xF0\x9F\x98\x80", dropped) == "a b.");
  CHECK(dropped == 2);
  const auto t = cli::tokenize(tok105, "Cat\xE4\xB8\xAD\n\nnoir", 100, true);
  CHECK(t.collapsed);
  CHECK(t.dropped == 1);
  CHECK(tok105.file().decode(std::vector<int>(t.tokens.begin(), t.tokens.end())) == "Cat noir");
}

TEST_CASE("the tiled linear layer: bit-identical for any thread count, one whole product up to rounding") {
  testing::rng r(3);
  for (const auto& [tokens, in, out] : {std::array<Eigen::Index, 3>{37, 300, 500}, {64, 96, 192}, {5, 48, 385}}) {
    llama::matrix x(tokens, in), w(out, in);
    for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = static_cast<float>(r.normal());
    for (Eigen::Index k = 0; k < w.size(); ++k) w.data()[k] = static_cast<float>(0.1 * r.normal());
    const llama::matrix whole = x * w.transpose();
    const llama::matrix one = llama::apply_linear(x, w, cpu_exec{.threads = 1});
    CHECK((one - whole).cwiseAbs().maxCoeff() <= 1e-5F * whole.cwiseAbs().maxCoeff());
    if (out <= llama::linear_tile) CHECK(one == whole);  // one tile: exactly one Eigen product
    for (const unsigned threads : {2U, 3U}) CHECK(llama::apply_linear(x, w, cpu_exec{.threads = threads}) == one);
  }
}

TEST_CASE("attention through Eigen products equals a direct double-precision causal softmax per head (GQA)") {
  const llama::model m = tools_test::random_model(11);
  const llama::batch b = tools_test::random_batch(3, 10, m.cfg.vocab_size, 4);
  testing::rng r(5);
  const auto random = [&](Eigen::Index cols) {
    llama::matrix x(static_cast<Eigen::Index>(b.size()), cols);
    for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = static_cast<float>(r.normal());
    return x;
  };
  const auto dim = static_cast<Eigen::Index>(m.cfg.dim), kv = static_cast<Eigen::Index>(m.cfg.kv_dim());
  const llama::matrix q = random(dim), k = random(kv), v = random(kv);
  const llama::matrix out = llama::attention(m.cfg, q, k, v, b, cpu_exec{.threads = 2});
  const std::size_t hd = m.cfg.head_dim(), group = m.cfg.n_heads / m.cfg.n_kv_heads;
  double worst = 0.0;
  for (std::size_t s = 0; s < b.sequences; ++s) {
    for (std::size_t h = 0; h < m.cfg.n_heads; ++h) {
      const std::size_t kh = h / group;
      for (std::size_t i = 0; i < b.length; ++i) {
        std::vector<double> p(i + 1);
        double top = -1e300, total = 0.0;
        for (std::size_t j = 0; j <= i; ++j) {
          double dot = 0.0;
          for (std::size_t d = 0; d < hd; ++d) {
            dot += double(q(Eigen::Index(s * b.length + i), Eigen::Index(h * hd + d))) *
                   double(k(Eigen::Index(s * b.length + j), Eigen::Index(kh * hd + d)));
          }
          p[j] = dot / std::sqrt(double(hd));
          top = std::max(top, p[j]);
        }
        for (double& x : p) total += (x = std::exp(x - top));
        for (std::size_t d = 0; d < hd; ++d) {
          double o = 0.0;
          for (std::size_t j = 0; j <= i; ++j) o += p[j] / total * double(v(Eigen::Index(s * b.length + j), Eigen::Index(kh * hd + d)));
          worst = std::max(worst, std::abs(o - double(out(Eigen::Index(s * b.length + i), Eigen::Index(h * hd + d)))));
        }
      }
    }
  }
  CHECK(worst < 1e-5);
}

TEST_CASE("the forward pass gives bit-identical logits for 1, 2 and 5 threads") {
  const llama::model m = tools_test::random_model(8);
  const llama::batch b = tools_test::random_batch(4, 33, m.cfg.vocab_size, 9);
  const llama::matrix one = llama::logits(m, b, cpu_exec{.threads = 1});
  for (const unsigned threads : {2U, 5U}) CHECK(llama::logits(m, b, cpu_exec{.threads = threads}) == one);
}
