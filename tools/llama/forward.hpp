// SPDX-License-Identifier: MIT
// The Llama forward pass on Eigen, batched over sequences, with a hook at every linear layer's input.
// Every step runs on `cpu_exec` threads over work items fixed by the shapes alone (output-column tiles,
// (sequence, head) pairs, rows), each computed exactly as on one thread, so results are bit-identical for
// any thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include <ternq/core/parallel.hpp>

#include "llama/model.hpp"

namespace ternq::llama {

/// `sequences` token sequences of equal `length`, stored sequence after
/// sequence. Activations use the same order: row `s * length + t` is token
/// `t` of sequence `s`, at position `t`.
struct batch {
  std::size_t sequences = 0;
  std::size_t length = 0;
  std::vector<std::int32_t> tokens;

  [[nodiscard]] std::size_t size() const noexcept { return sequences * length; }
};

/// The activations that feed linear layers inside a block.
enum class activation_site {
  attention_input,   ///< normed hidden state: q, k, v
  attention_output,  ///< concatenated heads: o
  ffn_input,         ///< normed hidden state: gate, up
  ffn_hidden,        ///< silu(gate) * up: down
};

/// The linear layers that read the activations of `site`.
inline std::span<const linear> consumers(activation_site site) noexcept {
  static constexpr linear attention_in[] = {linear::q, linear::k, linear::v};
  static constexpr linear attention_out[] = {linear::o};
  static constexpr linear ffn_in[] = {linear::gate, linear::up};
  static constexpr linear ffn_hidden[] = {linear::down};
  switch (site) {
    case activation_site::attention_input:
      return attention_in;
    case activation_site::attention_output:
      return attention_out;
    case activation_site::ffn_input:
      return ffn_in;
    case activation_site::ffn_hidden:
      return ffn_hidden;
  }
  return {};
}

/// Token embeddings, `tokens x dim`. Token ids are checked against the vocabulary.
/// `t` as a row of a `vocab`-row embedding; `std::out_of_range` outside it.
inline Eigen::Index token_row(std::int32_t t, std::size_t vocab) {
  if (t < 0 || static_cast<std::size_t>(t) >= vocab) {
    throw std::out_of_range("token id " + std::to_string(t) + " outside the vocabulary of " + std::to_string(vocab));
  }
  return t;
}

inline matrix embed(const model& m, const batch& b) {
  matrix h(static_cast<Eigen::Index>(b.size()), static_cast<Eigen::Index>(m.cfg.dim));
  for (std::size_t i = 0; i < b.size(); ++i) {
    h.row(static_cast<Eigen::Index>(i)) = m.embedding.row(token_row(b.tokens[i], m.cfg.vocab_size));
  }
  return h;
}

/// RMSNorm: `x / sqrt(mean(x^2) + eps) * weight`, row by row (sums in double).
inline matrix rms_norm(const matrix& h, const vector& weight, float eps, const cpu_exec& exec = {}) {
  matrix out(h.rows(), h.cols());
  parallel_for(static_cast<std::size_t>(h.rows()), exec.thread_count(), [&](std::size_t r0, std::size_t r1) {
    for (auto i = static_cast<Eigen::Index>(r0); i < static_cast<Eigen::Index>(r1); ++i) {
      const double ms = h.row(i).cast<double>().squaredNorm() / static_cast<double>(h.cols());
      const auto inv = static_cast<float>(1.0 / std::sqrt(ms + static_cast<double>(eps)));
      out.row(i) = (h.row(i) * inv).cwiseProduct(weight.transpose());
    }
  });
  return out;
}

/// RMSNorm of every head of `x` (`tokens x heads*head_dim`) with the shared weight `weight` (`head_dim`), in
/// place: Qwen3's q/k norm. Sums in double, as `rms_norm`.
inline void head_rms_norm(matrix& x, const vector& weight, float eps, const cpu_exec& exec = {}) {
  const Eigen::Index hd = weight.size();
  const Eigen::Index heads = x.cols() / hd;
  parallel_for(static_cast<std::size_t>(x.rows()), exec.thread_count(), [&](std::size_t r0, std::size_t r1) {
    for (auto i = static_cast<Eigen::Index>(r0); i < static_cast<Eigen::Index>(r1); ++i) {
      for (Eigen::Index h = 0; h < heads; ++h) {
        auto head = x.row(i).segment(h * hd, hd);
        const double ms = head.cast<double>().squaredNorm() / static_cast<double>(hd);
        const auto inv = static_cast<float>(1.0 / std::sqrt(ms + static_cast<double>(eps)));
        head = (head * inv).cwiseProduct(weight.transpose());
      }
    }
  });
}

/// Adds the bias `b` (empty: none) to every row of `x`.
inline void add_bias(matrix& x, const vector& b) {
  if (b.size() != 0) x.rowwise() += b.transpose();
}

/// Rotary position embedding, in place, on `x` (`tokens x heads*head_dim`).
/// Pair `j` of a head turns by `position * theta^(-2j / head_dim) / factor_j` (`factor_j` = 1 unless
/// `cfg.rope_factors` gives them: Llama-3's scaling); the
/// pairs are `(2j, 2j+1)` (interleaved) or `(j, j + head_dim/2)` (rotate-half). Token `t` of a sequence is at
/// position `first_position + t` (a decode step continues a sequence whose first tokens are cached).
inline void apply_rope(matrix& x, const config& cfg, const batch& b, const cpu_exec& exec = {},
                       std::size_t first_position = 0) {
  const std::size_t hd = cfg.head_dim();
  const std::size_t heads = static_cast<std::size_t>(x.cols()) / hd;
  const std::size_t pairs = hd / 2;
  // cos/sin of every (position, pair) once, by the same formula per element as a direct evaluation
  std::vector<float> cosines(b.length * pairs), sines(b.length * pairs);
  for (std::size_t t = 0; t < b.length; ++t) {
    const auto pos = static_cast<double>(first_position + t);
    for (std::size_t j = 0; j < pairs; ++j) {
      double freq = std::pow(static_cast<double>(cfg.rope_theta), -2.0 * static_cast<double>(j) / double(hd));
      if (!cfg.rope_factors.empty()) freq /= static_cast<double>(cfg.rope_factors[j]);
      const auto angle = static_cast<float>(pos * freq);
      cosines[t * pairs + j] = std::cos(angle);
      sines[t * pairs + j] = std::sin(angle);
    }
  }
  parallel_for(b.size(), exec.thread_count(), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t row = r0; row < r1; ++row) {
      const std::size_t t = row % b.length;
      for (std::size_t j = 0; j < pairs; ++j) {
        const float c = cosines[t * pairs + j], s = sines[t * pairs + j];
        const std::size_t a = cfg.rope == rope_style::interleaved ? 2 * j : j;
        const std::size_t bdim = cfg.rope == rope_style::interleaved ? 2 * j + 1 : j + pairs;
        for (std::size_t h = 0; h < heads; ++h) {
          float& x0 = x(static_cast<Eigen::Index>(row), static_cast<Eigen::Index>(h * hd + a));
          float& x1 = x(static_cast<Eigen::Index>(row), static_cast<Eigen::Index>(h * hd + bdim));
          const float v0 = x0, v1 = x1;
          x0 = v0 * c - v1 * s;
          x1 = v0 * s + v1 * c;
        }
      }
    }
  });
}

/// Causal grouped-query attention: `q` is `tokens x q_dim`, `k` and `v` are
/// `tokens x kv_dim` (already rotated); returns the concatenated heads,
/// `tokens x q_dim`, before the output projection. A sliding window shorter than the sequences is refused.
/// One work item per (sequence, head): `softmax(Q K^T / sqrt(d) + causal mask) V` through two Eigen products.
inline matrix attention(const config& cfg, const matrix& q, const matrix& k, const matrix& v, const batch& b,
                        const cpu_exec& exec = {}) {
  const auto hd = static_cast<Eigen::Index>(cfg.head_dim());
  const auto len = static_cast<Eigen::Index>(b.length);
  if (cfg.sliding_window != 0 && b.length > cfg.sliding_window) {
    throw std::invalid_argument("sequences of " + std::to_string(b.length) + " tokens exceed the attention window of " +
                                std::to_string(cfg.sliding_window) + " (sliding-window attention is not implemented)");
  }
  const std::size_t group = cfg.n_heads / cfg.n_kv_heads;
  const float scale = 1.0F / std::sqrt(static_cast<float>(hd));
  matrix out(q.rows(), q.cols());
  parallel_for(b.sequences * cfg.n_heads, exec.thread_count(), [&](std::size_t i0, std::size_t i1) {
    Eigen::MatrixXf scores(len, len);
    for (std::size_t item = i0; item < i1; ++item) {
      const std::size_t s = item / cfg.n_heads, h = item % cfg.n_heads;
      const auto r0 = static_cast<Eigen::Index>(s * b.length);
      const auto qc = static_cast<Eigen::Index>(h) * hd;
      const auto kc = static_cast<Eigen::Index>(h / group) * hd;
      scores.noalias() = q.block(r0, qc, len, hd) * k.block(r0, kc, len, hd).transpose() * scale;
      for (Eigen::Index i = 0; i < len; ++i) {
        // causal: position i sees 0..i; softmax over that prefix
        const float top = scores.row(i).head(i + 1).maxCoeff();
        double total = 0.0;
        for (Eigen::Index j = 0; j <= i; ++j) {
          scores(i, j) = std::exp(scores(i, j) - top);
          total += scores(i, j);
        }
        scores.row(i).head(i + 1) /= static_cast<float>(total);
        scores.row(i).tail(len - i - 1).setZero();
      }
      out.block(r0, qc, len, hd).noalias() = scores * v.block(r0, kc, len, hd);
    }
  });
  return out;
}

/// `gate = silu(gate) * up`, elementwise and in place (the block's widest activations are held twice, not three
/// times).
inline void swiglu_in_place(matrix& gate, const matrix& up, const cpu_exec& exec = {}) {
  parallel_for(static_cast<std::size_t>(gate.rows()), exec.thread_count(), [&](std::size_t r0, std::size_t r1) {
    const auto first = static_cast<Eigen::Index>(r0), n = static_cast<Eigen::Index>(r1 - r0);
    gate.middleRows(first, n) = gate.middleRows(first, n)
                                    .unaryExpr([](float g) { return g / (1.0F + std::exp(-g)); })
                                    .cwiseProduct(up.middleRows(first, n));
  });
}

/// `silu(gate) * up`, elementwise.
inline matrix swiglu(matrix gate, const matrix& up, const cpu_exec& exec = {}) {
  swiglu_in_place(gate, up, exec);
  return gate;
}

/// Output columns per work item of `apply_linear`, fixed so that the work split (and so every bit of the
/// result) does not depend on the thread count. A layer at most this wide is one Eigen product, exactly as
/// before the split; wider ones can differ from one whole product in the last bits (Eigen's kernels pick
/// their code path by the product's extents).
inline constexpr Eigen::Index linear_tile = 192;

/// `x W^T` for a row-major `out x in` weight, one Eigen product per tile of `linear_tile` output columns.
inline matrix apply_linear(const matrix& x, const matrix& w, const cpu_exec& exec = {}) {
  matrix out(x.rows(), w.rows());
  const auto tiles = static_cast<std::size_t>((w.rows() + linear_tile - 1) / linear_tile);
  parallel_for(tiles, exec.thread_count(), [&](std::size_t t0, std::size_t t1) {
    for (std::size_t t = t0; t < t1; ++t) {
      const Eigen::Index c0 = static_cast<Eigen::Index>(t) * linear_tile;
      const Eigen::Index n = std::min(linear_tile, w.rows() - c0);
      out.middleCols(c0, n).noalias() = x * w.middleRows(c0, n).transpose();
    }
  });
  return out;
}

/// `x W^T` for each of several weights that read the same input `x` (q, k and v; gate and up), in order. A weight
/// type can overload it to share work between them (the packed runtime quantizes `x` once).
template <class... Weights>
std::array<matrix, sizeof...(Weights)> apply_linears(const matrix& x, const cpu_exec& exec, const Weights&... w) {
  return {apply_linear(x, w, exec)...};
}

/// Does nothing; the observer of a plain forward pass.
struct no_observer {
  template <class Layer>
  void operator()(std::size_t, activation_site, const matrix&, Layer&) const noexcept {}
};

/// The queries, keys and values of one block for its normed input `xa` (`tokens x dim`): the three projections
/// with Qwen2's biases and Qwen3's per-head norms, before RoPE.
struct attention_inputs {
  matrix q, k, v;
};

template <class Layer>
attention_inputs project_attention(const config& cfg, const Layer& w, const matrix& xa, const cpu_exec& exec = {}) {
  auto [q, k, v] = apply_linears(xa, exec, w.wq, w.wk, w.wv);
  attention_inputs a{std::move(q), std::move(k), std::move(v)};
  add_bias(a.q, w.bq);
  add_bias(a.k, w.bk);
  add_bias(a.v, w.bv);
  if (w.q_norm.size() != 0) head_rms_norm(a.q, w.q_norm, cfg.norm_eps, exec);
  if (w.k_norm.size() != 0) head_rms_norm(a.k, w.k_norm, cfg.norm_eps, exec);
  return a;
}

/// The feed-forward half of block `index` on the hidden state `h` (updated in place): RMSNorm, gate and up,
/// SwiGLU, down, the residual. `observe` as in `block_forward`.
template <class Layer, class Observer>
void feed_forward(const config& cfg, std::size_t index, Layer& w, matrix& h, Observer&& observe,
                  const cpu_exec& exec = {}) {
  matrix hidden;
  {
    const matrix xf = rms_norm(h, w.ffn_norm, cfg.norm_eps, exec);
    observe(index, activation_site::ffn_input, xf, w);
    auto [gate, up] = apply_linears(xf, exec, w.w1, w.w3);
    hidden = std::move(gate);
    swiglu_in_place(hidden, up, exec);
  }
  observe(index, activation_site::ffn_hidden, hidden, w);
  h += apply_linear(hidden, w.w2, exec);
}

/// One transformer block on the hidden state `h` (updated in place).
/// `observe(layer_index, site, x, weights)` is called with each activation
/// matrix right before the linear layers of `site` read it, and may replace
/// those layers' weights (sequential calibration quantizes them there, so
/// everything downstream sees the quantized layers). `Layer` is `layer` or any block type whose weights have an
/// `apply_linear` (`packed_layer`).
template <class Layer, class Observer>
void block_forward(const config& cfg, std::size_t index, Layer& w, matrix& h, const batch& b, Observer&& observe,
                   const cpu_exec& exec = {}) {
  // Scopes end each intermediate's life as soon as it is read for the last time: at real sizes the activations of
  // a calibration batch, not the weights, are what the block holds.
  {
    matrix context;
    {
      const matrix xa = rms_norm(h, w.attn_norm, cfg.norm_eps, exec);
      observe(index, activation_site::attention_input, xa, w);
      attention_inputs a = project_attention(cfg, w, xa, exec);
      apply_rope(a.q, cfg, b, exec);
      apply_rope(a.k, cfg, b, exec);
      context = attention(cfg, a.q, a.k, a.v, b, exec);
    }
    observe(index, activation_site::attention_output, context, w);
    h += apply_linear(context, w.wo, exec);
  }
  feed_forward(cfg, index, w, h, observe, exec);
}

/// The final normed hidden states, `tokens x dim`, through every block.
template <class Model, class Observer>
matrix final_hidden(Model& m, const batch& b, Observer&& observe, const cpu_exec& exec = {}) {
  matrix h = embed(m, b);
  for (std::size_t l = 0; l < m.layers.size(); ++l) block_forward(m.cfg, l, m.layers[l], h, b, observe, exec);
  return rms_norm(h, m.final_norm, m.cfg.norm_eps, exec);
}

/// Logits, `tokens x vocab`.
inline matrix logits(const model& m, const batch& b, const cpu_exec& exec = {}) {
  return apply_linear(final_hidden(m, b, no_observer{}, exec), m.output(), exec);
}

/// Row-wise log-softmax of `logits` (in double for the normalizer).
inline Eigen::MatrixXd log_softmax(const matrix& logits) {
  Eigen::MatrixXd out = logits.cast<double>();
  for (Eigen::Index i = 0; i < out.rows(); ++i) {
    const double top = out.row(i).maxCoeff();
    const double lse = top + std::log((out.row(i).array() - top).exp().sum());
    out.row(i).array() -= lse;
  }
  return out;
}

/// Sum of next-token negative log-likelihoods over a batch (each sequence
/// predicts its tokens 1..length-1) and the number of predictions.
struct nll_sum {
  double total = 0.0;
  std::size_t count = 0;
  [[nodiscard]] double mean() const noexcept { return count == 0 ? 0.0 : total / static_cast<double>(count); }
};

inline nll_sum next_token_nll(const model& m, const batch& b, const cpu_exec& exec = {}) {
  const Eigen::MatrixXd lp = log_softmax(logits(m, b, exec));
  nll_sum out;
  for (std::size_t s = 0; s < b.sequences; ++s) {
    for (std::size_t t = 0; t + 1 < b.length; ++t) {
      const std::size_t row = s * b.length + t;
      out.total -= lp(static_cast<Eigen::Index>(row), b.tokens[row + 1]);
      ++out.count;
    }
  }
  return out;
}

}  // namespace ternq::llama
