// SPDX-License-Identifier: MIT
// Incremental decoding with a key/value cache: the prompt runs as one batch (prefill), then one token per step, each
// block's keys and values kept per position, RoPE at the token's position, grouped-query attention over the cache.
// Generic over the model type (`model`, `packed_model`): the blocks run the same projections, norms and
// feed-forward code as `block_forward`; only attention reads the cache.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <ternq/core/error.hpp>
#include <ternq/core/parallel.hpp>

#include "llama/forward.hpp"
#include "llama/model.hpp"

namespace ternq::llama {

/// The keys (after RoPE) and values of one sequence, per block: row `p` of `keys[l]` is position `p`.
struct kv_cache {
  std::vector<matrix> keys, values;
  std::size_t length = 0;    ///< positions held
  std::size_t capacity = 0;  ///< positions the matrices have room for

  kv_cache() = default;
  kv_cache(const config& cfg, std::size_t positions) : capacity(positions) {
    const auto rows = static_cast<Eigen::Index>(positions), cols = static_cast<Eigen::Index>(cfg.kv_dim());
    keys.assign(cfg.n_layers, matrix(rows, cols));
    values.assign(cfg.n_layers, matrix(rows, cols));
  }
};

/// Causal grouped-query attention of `q` (`n x q_dim`, the queries of positions `first .. first + n - 1`) over the
/// cached `keys` and `values` of positions `0 .. first + n - 1`: query `i` sees positions up to `first + i`.
/// Computed as `attention` computes a sequence (same products, softmax in the same order), one work item per head.
inline matrix cached_attention(const config& cfg, const matrix& q, const matrix& keys, const matrix& values,
                               std::size_t first, const cpu_exec& exec = {}) {
  const auto hd = static_cast<Eigen::Index>(cfg.head_dim());
  const auto n = q.rows();
  const auto total = static_cast<Eigen::Index>(first) + n;
  if (cfg.sliding_window != 0 && static_cast<std::size_t>(total) > cfg.sliding_window) {
    throw std::invalid_argument("sequences of " + std::to_string(total) + " tokens exceed the attention window of " +
                                std::to_string(cfg.sliding_window) + " (sliding-window attention is not implemented)");
  }
  const std::size_t group = cfg.n_heads / cfg.n_kv_heads;
  const float scale = 1.0F / std::sqrt(static_cast<float>(hd));
  matrix out(q.rows(), q.cols());
  parallel_for(cfg.n_heads, exec.thread_count(), [&](std::size_t h0, std::size_t h1) {
    Eigen::MatrixXf scores(n, total);
    for (std::size_t h = h0; h < h1; ++h) {
      const auto qc = static_cast<Eigen::Index>(h) * hd;
      const auto kc = static_cast<Eigen::Index>(h / group) * hd;
      scores.noalias() = q.block(0, qc, n, hd) * keys.block(0, kc, total, hd).transpose() * scale;
      for (Eigen::Index i = 0; i < n; ++i) {
        const Eigen::Index seen = static_cast<Eigen::Index>(first) + i + 1;  // positions 0 .. first + i
        const float top = scores.row(i).head(seen).maxCoeff();
        double sum = 0.0;
        for (Eigen::Index j = 0; j < seen; ++j) {
          scores(i, j) = std::exp(scores(i, j) - top);
          sum += scores(i, j);
        }
        scores.row(i).head(seen) /= static_cast<float>(sum);
        scores.row(i).tail(total - seen).setZero();
      }
      out.block(0, qc, n, hd).noalias() = scores * values.block(0, kc, total, hd);
    }
  });
  return out;
}

/// Block `index` on the hidden states `h` of `h.rows()` new tokens at positions `cache.length ...` (in place):
/// their keys and values are written to the cache (whose `length` the caller advances after the last block).
template <class Layer>
void cached_block_forward(const config& cfg, std::size_t index, const Layer& w, matrix& h, kv_cache& cache,
                          const cpu_exec& exec = {}) {
  const std::size_t first = cache.length;
  const auto n = h.rows();
  batch b;
  b.sequences = 1;
  b.length = static_cast<std::size_t>(n);
  {
    matrix context;
    {
      const matrix xa = rms_norm(h, w.attn_norm, cfg.norm_eps, exec);
      attention_inputs a = project_attention(cfg, w, xa, exec);
      apply_rope(a.q, cfg, b, exec, first);
      apply_rope(a.k, cfg, b, exec, first);
      cache.keys[index].middleRows(static_cast<Eigen::Index>(first), n) = a.k;
      cache.values[index].middleRows(static_cast<Eigen::Index>(first), n) = a.v;
      context = cached_attention(cfg, a.q, cache.keys[index], cache.values[index], first, exec);
    }
    h += apply_linear(context, w.wo, exec);
  }
  feed_forward(cfg, index, w, h, no_observer{}, exec);
}

/// One sequence decoded incrementally through `Model` (`model` or `packed_model`, which must outlive it).
template <class Model>
class incremental_decoder {
 public:
  /// Room for `positions` tokens (at most the model's context).
  incremental_decoder(const Model& m, std::size_t positions, const cpu_exec& exec = {})
      : m_(m), cache_(m.cfg, std::min(positions, m.cfg.seq_len)), exec_(exec) {}

  /// Runs `tokens` at the next positions (one batch) and returns the next-token logits after the last of them.
  Eigen::VectorXf feed(std::span<const std::int32_t> tokens) {
    if (tokens.empty()) fail(errc::invalid_argument, "decode: no tokens to feed");
    if (tokens.size() > cache_.capacity - cache_.length) {
      fail(errc::invalid_argument, "decode: ", tokens.size(), " more tokens after ", cache_.length,
           " exceed the room for ", cache_.capacity, " (the model's context is ", m_.cfg.seq_len, ")");
    }
    batch b;
    b.sequences = 1;
    b.length = tokens.size();
    b.tokens.assign(tokens.begin(), tokens.end());
    matrix h = embed(m_, b);
    for (std::size_t l = 0; l < m_.layers.size(); ++l) cached_block_forward(m_.cfg, l, m_.layers[l], h, cache_, exec_);
    cache_.length += tokens.size();
    const matrix last = rms_norm(h.bottomRows(1), m_.final_norm, m_.cfg.norm_eps, exec_);
    const matrix out = apply_linear(last, m_.output(), exec_);
    return out.row(0).transpose();
  }

  [[nodiscard]] std::size_t length() const noexcept { return cache_.length; }
  [[nodiscard]] std::size_t capacity() const noexcept { return cache_.capacity; }

 private:
  const Model& m_;
  kv_cache cache_;
  cpu_exec exec_;
};

/// The arg-max of `logits` (the first of equal maxima).
inline std::int32_t arg_max(const Eigen::VectorXf& logits) {
  Eigen::Index best = 0;
  logits.maxCoeff(&best);
  return static_cast<std::int32_t>(best);
}

/// A greedy generation and its timing.
struct generation {
  std::vector<std::int32_t> tokens;  ///< the generated tokens (not the prompt)
  std::size_t prompt_tokens = 0;
  double prompt_seconds = 0.0;   ///< the prompt's forward pass (one batch), which gives the first token
  std::size_t decode_steps = 0;  ///< forward passes of one generated token each (every generated token but the last)
  double decode_seconds = 0.0;
};

/// Extends `prompt` (at least one token) by up to `steps` tokens, each the arg-max of the next-token logits,
/// through an `incremental_decoder`: the prompt in one batch, then one token per step. Stops early when the
/// sequence reaches the model's context, as `greedy_decode` does. `on_token` sees each token as it is chosen.
template <class Model>
generation generate_greedy(const Model& m, const std::vector<std::int32_t>& prompt, std::size_t steps,
                           const cpu_exec& exec = {}, const std::function<void(std::int32_t)>& on_token = {}) {
  if (prompt.empty()) fail(errc::invalid_argument, "generate: the prompt has no tokens (give it at least BOS)");
  if (prompt.size() > m.cfg.seq_len) {
    fail(errc::invalid_argument, "generate: the prompt's ", prompt.size(), " tokens exceed the model's context of ",
         m.cfg.seq_len);
  }
  using clock = std::chrono::steady_clock;
  generation g;
  g.prompt_tokens = prompt.size();
  if (steps == 0 || prompt.size() >= m.cfg.seq_len) return g;
  const std::size_t total = std::min(prompt.size() + steps, m.cfg.seq_len);  // tokens at the end
  incremental_decoder<Model> d(m, total - 1, exec);                          // the last token is never fed
  auto t0 = clock::now();
  std::int32_t next = arg_max(d.feed(prompt));
  g.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  g.tokens.push_back(next);
  if (on_token) on_token(next);
  while (prompt.size() + g.tokens.size() < total) {
    t0 = clock::now();
    next = arg_max(d.feed(std::span<const std::int32_t>(&next, 1)));
    g.decode_seconds += std::chrono::duration<double>(clock::now() - t0).count();  // not `on_token`'s time
    ++g.decode_steps;
    g.tokens.push_back(next);
    if (on_token) on_token(next);
  }
  return g;
}

}  // namespace ternq::llama
