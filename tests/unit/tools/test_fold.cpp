// SPDX-License-Identifier: MIT
// Model folds: FFN padding and column orders folded into the producing layers compute the same logits.
#include <numeric>
#include <vector>

#include <doctest/doctest.h>

#include <ternq/adapters/eigen.hpp>
#include <ternq/ternq.hpp>

#include "llama/fold.hpp"
#include "llama/forward.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using llama::linear;

double max_abs_difference(const llama::matrix& a, const llama::matrix& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  return static_cast<double>((a - b).cwiseAbs().maxCoeff());
}

/// Every linear layer of `m` quantized from `gram`-free weights with a column order per layer (act-order of a
/// random Gram for ffn_down; for attn_output, the head-consistent projection of a random order), so that the
/// model holds the fake-quantized weights and `q` their ternary matrices with permutations.
struct quantized_block {
  std::vector<ternary_matrix> q;  // indexed by linear
};

ternary_matrix quantize_with_order(const llama::matrix& w, const block_order& order, std::uint64_t seed) {
  const auto x =
      testing::gaussian_matrix(static_cast<std::size_t>(3 * w.cols()), static_cast<std::size_t>(w.cols()), seed);
  const Eigen::MatrixXd gram = (x.transpose() * x).cast<double>();
  return quantize(w, gptq{.grid = optimal_symmetric{.group_size = 8}, .order = order}, gram);
}

std::vector<std::size_t> shuffled(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> p(n);
  std::iota(p.begin(), p.end(), std::size_t{0});
  testing::rng r(seed);
  for (std::size_t i = n; i > 1; --i) std::swap(p[i - 1], p[r.below(i)]);
  return p;
}

}  // namespace

TEST_CASE("padding the FFN hidden width with zero units keeps the logits") {
  llama::model m = tools_test::random_model(3);
  const llama::batch b = tools_test::random_batch(2, 12, m.cfg.vocab_size, 4);
  const llama::matrix before = llama::logits(m, b);
  llama::pad_ffn_hidden(m, llama::padded_hidden(m.cfg.hidden_dim, 64));
  CHECK(m.cfg.hidden_dim == 64);
  CHECK(m.layers[0].w1.rows() == 64);
  CHECK(m.layers[1].w2.cols() == 64);
  CHECK(m.layers[1].w1.bottomRows(16).isZero(0.0F));
  CHECK(max_abs_difference(before, llama::logits(m, b)) < 1e-5);
  CHECK(llama::padded_hidden(48, 16) == 48);
  CHECK(llama::padded_hidden(172, 64) == 192);
  CHECK_THROWS_AS(llama::pad_ffn_hidden(m, 32), error);
}

TEST_CASE("a head-consistent order moves whole heads within their key/value head and is the same per kv head") {
  const llama::config cfg{.dim = 32, .hidden_dim = 48, .n_layers = 1, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 8};
  // The identity projects to the identity; the reverse order reverses heads, kv heads and dimensions.
  std::vector<std::size_t> identity(32);
  std::iota(identity.begin(), identity.end(), std::size_t{0});
  CHECK(llama::head_consistent_order(identity, cfg) == identity);
  const std::vector<std::size_t> reverse(identity.rbegin(), identity.rend());
  CHECK(llama::head_consistent_order(reverse, cfg) == reverse);
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const auto order = llama::head_consistent_order(shuffled(32, seed), cfg);
    REQUIRE_NOTHROW(require_permutation(order, 32, "test"));
    for (std::size_t head = 0; head < 4; ++head) {
      for (std::size_t k = 0; k < 8; ++k) {
        const std::size_t c = order[head * 8 + k];
        CHECK(c / 8 == order[head * 8] / 8);             // one head per 8 positions
        CHECK(c / 16 == order[(head / 2) * 16] / 16);    // both query heads of a kv head together
        CHECK(c % 8 == order[(head / 2) * 16 + k] % 8);  // the same dimension order within a kv head
      }
    }
  }
}

TEST_CASE("folding ffn_down and attn_output orders computes the logits of the unfolded fake-quantized model") {
  // Every family: Qwen2's q/k/v biases move with their rows, Qwen3's per-head norms (over heads 12 wide, so q_dim
  // 48 differs from dim 32) see each head's dimensions in their order.
  for (const llama::family arch : {llama::family::llama, llama::family::qwen2, llama::family::qwen3})
    for (std::uint64_t seed : {5ULL, 6ULL}) {
      CAPTURE(llama::gguf_architecture(arch));
      llama::config cfg = tools_test::random_model(seed).cfg;
      cfg.arch = arch;
      if (arch != llama::family::llama) cfg.rope = llama::rope_style::rotate_half;
      if (arch == llama::family::qwen3) cfg.head_width = 12;
      llama::model m = tools_test::random_model(seed, cfg);
      const llama::batch b = tools_test::random_batch(2, 16, m.cfg.vocab_size, seed + 10);
      std::vector<quantized_block> blocks(m.layers.size());
      for (std::size_t l = 0; l < m.layers.size(); ++l) {
        auto& qs = blocks[l].q;
        qs.resize(llama::all_linears.size());
        for (const linear which : llama::all_linears) {
          llama::matrix& w = m.layers[l].weight(which);
          const auto i = static_cast<std::size_t>(which);
          const std::uint64_t s = seed * 100 + l * 10 + i;
          if (which == linear::down) {
            qs[i] = quantize_with_order(w, act_order{}, s);
          } else if (which == linear::o) {
            qs[i] =
                quantize_with_order(w, given_order{llama::head_consistent_order(shuffled(m.cfg.q_dim(), s), m.cfg)}, s);
          } else {
            qs[i] = quantize_with_order(w, sequential{}, s);
          }
          dequantize(qs[i], w);
        }
        REQUIRE(qs[static_cast<std::size_t>(linear::down)].has_permutation());
        REQUIRE(qs[static_cast<std::size_t>(linear::o)].has_permutation());
      }
      const llama::matrix fake = llama::logits(m, b);
      for (std::size_t l = 0; l < m.layers.size(); ++l) {
        auto& qs = blocks[l].q;
        const auto at = [&](linear which) { return &qs[static_cast<std::size_t>(which)]; };
        const llama::block_ternaries t{.q = at(linear::q),
                                       .k = at(linear::k),
                                       .v = at(linear::v),
                                       .o = at(linear::o),
                                       .gate = at(linear::gate),
                                       .up = at(linear::up),
                                       .down = at(linear::down)};
        CHECK(llama::fold_ffn_down(m.layers[l], t));
        CHECK(llama::fold_attention_output(m.layers[l], m.cfg, t));
        CHECK_FALSE(llama::fold_ffn_down(m.layers[l], t));  // nothing left to fold
        for (const linear which : llama::all_linears) {
          const ternary_matrix& q = qs[static_cast<std::size_t>(which)];
          CHECK_FALSE(q.has_permutation());
          // the folded ternary matrices are exactly the folded model's weights
          llama::matrix deq(m.layers[l].weight(which).rows(), m.layers[l].weight(which).cols());
          dequantize(q, deq);
          CHECK(deq == m.layers[l].weight(which));
        }
      }
      CHECK(max_abs_difference(fake, llama::logits(m, b)) < 1e-4);
    }
}

TEST_CASE("an attn_output order that splits heads is refused, not folded") {
  llama::model m = tools_test::random_model(8);
  llama::layer& w = m.layers[0];
  ternary_matrix o = quantize_with_order(w.wo, given_order{shuffled(32, 9)}, 9);
  REQUIRE(o.has_permutation());
  const llama::layer before = w;
  const llama::block_ternaries t{.o = &o};
  CHECK_THROWS_AS(llama::fold_attention_output(w, m.cfg, t), error);
  CHECK(w.wq == before.wq);  // nothing changed
  CHECK(o.has_permutation());
}
