// SPDX-License-Identifier: MIT
// A synthetic Llama decoder block of a real width over a calibration batch, for the benchmarks of the tools' runtime.
#pragma once

#include <algorithm>
#include <cstddef>

#include "llama/forward.hpp"
#include "llama/model.hpp"
#include "llm_like.hpp"

namespace ternq::bench {

namespace llama = ternq::llama;

/// A decoder block, its configuration, and a calibration batch with the hidden state entering the block.
struct synthetic_block {
  llama::config cfg;
  llama::layer block;
  llama::batch batch;
  llama::matrix h;
};

inline llama::matrix random_matrix(std::size_t rows, std::size_t cols, double scale, ternq::testing::rng& r) {
  llama::matrix x(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = static_cast<float>(scale * r.normal());
  return x;
}

/// One block of `dim` width (`dim / 128` heads of 128, half as many key/value heads, hidden `2.75 dim`) over
/// `sequences x length` tokens.
inline synthetic_block make_synthetic_block(std::size_t dim, std::size_t sequences, std::size_t length) {
  synthetic_block s;
  s.cfg = {.dim = dim,
           .hidden_dim = dim * 11 / 4,
           .n_layers = 1,
           .n_heads = dim / 128,
           .n_kv_heads = std::max<std::size_t>(1, dim / 256),
           .vocab_size = 2,
           .seq_len = length};
  ternq::testing::rng r(7);
  const std::size_t kv = s.cfg.kv_dim(), hid = s.cfg.hidden_dim;
  s.block.wq = random_matrix(dim, dim, 0.02, r);
  s.block.wk = random_matrix(kv, dim, 0.02, r);
  s.block.wv = random_matrix(kv, dim, 0.02, r);
  s.block.wo = random_matrix(dim, dim, 0.02, r);
  s.block.w1 = random_matrix(hid, dim, 0.02, r);
  s.block.w3 = random_matrix(hid, dim, 0.02, r);
  s.block.w2 = random_matrix(dim, hid, 0.02, r);
  s.block.attn_norm = llama::vector::Ones(static_cast<Eigen::Index>(dim));
  s.block.ffn_norm = llama::vector::Ones(static_cast<Eigen::Index>(dim));
  s.batch.sequences = sequences;
  s.batch.length = length;
  s.batch.tokens.assign(sequences * length, 0);
  s.h = random_matrix(sequences * length, dim, 1.0, r);
  return s;
}

}  // namespace ternq::bench
