// SPDX-License-Identifier: MIT
// Layout conversions between checkpoint conventions: the q/k row permutation of Hugging Face Llama weights, and
// Llama-3's RoPE scaling as per-pair frequency divisors (GGUF's `rope_freqs.weight`).
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>
#include <vector>

#include <ternq/io/hf_llama.hpp>

#include "llama/model.hpp"

namespace ternq::llama {

/// For each row `r` of a q or k projection (`heads * head_dim` rows) in the
/// interleaved layout of llama2.c and GGUF, where RoPE pair `i` of a head is
/// rows `(2i, 2i+1)`, the row it comes from in the rotate-half layout of
/// Hugging Face checkpoints, where the pair is rows `(i, i + head_dim/2)`:
/// reshape the rows to `(heads, 2, head_dim/2)` and swap the two inner axes.
/// With the rows reordered, interleaved RoPE computes exactly what
/// rotate-half RoPE did on the original rows.
inline std::vector<std::size_t> rotate_half_source_rows(std::size_t rows, std::size_t heads) {
  const std::size_t head_dim = rows / heads;
  const std::size_t half = head_dim / 2;
  std::vector<std::size_t> source(rows);
  for (std::size_t h = 0; h < heads; ++h) {
    for (std::size_t i = 0; i < half; ++i) {
      for (std::size_t j = 0; j < 2; ++j) source[h * head_dim + 2 * i + j] = h * head_dim + j * half + i;
    }
  }
  return source;
}

/// Rotate-half rows -> interleaved rows (Hugging Face -> GGUF order).
inline matrix interleave_rope_rows(const matrix& w, std::size_t heads) {
  const auto source = rotate_half_source_rows(static_cast<std::size_t>(w.rows()), heads);
  matrix out(w.rows(), w.cols());
  for (std::size_t r = 0; r < source.size(); ++r) {
    out.row(static_cast<Eigen::Index>(r)) = w.row(static_cast<Eigen::Index>(source[r]));
  }
  return out;
}

/// The same reordering of a bias (one value per row).
inline vector interleave_rope_rows(const vector& b, std::size_t heads) {
  const auto source = rotate_half_source_rows(static_cast<std::size_t>(b.size()), heads);
  vector out(b.size());
  for (std::size_t r = 0; r < source.size(); ++r)
    out[static_cast<Eigen::Index>(r)] = b[static_cast<Eigen::Index>(source[r])];
  return out;
}

/// Interleaved rows -> rotate-half rows (the inverse, GGUF -> Hugging Face order).
inline matrix deinterleave_rope_rows(const matrix& w, std::size_t heads) {
  const auto source = rotate_half_source_rows(static_cast<std::size_t>(w.rows()), heads);
  matrix out(w.rows(), w.cols());
  for (std::size_t r = 0; r < source.size(); ++r) {
    out.row(static_cast<Eigen::Index>(source[r])) = w.row(static_cast<Eigen::Index>(r));
  }
  return out;
}

/// The inverse for a bias.
inline vector deinterleave_rope_rows(const vector& b, std::size_t heads) {
  const auto source = rotate_half_source_rows(static_cast<std::size_t>(b.size()), heads);
  vector out(b.size());
  for (std::size_t r = 0; r < source.size(); ++r)
    out[static_cast<Eigen::Index>(source[r])] = b[static_cast<Eigen::Index>(r)];
  return out;
}

/// The heads whose rows RoPE pairs in block tensor `t`: the query heads for q and its bias, the key/value heads
/// for k and its bias; 0 for a tensor RoPE does not touch.
inline std::size_t rope_heads(const config& cfg, block_tensor t) noexcept {
  if (t == block_tensor{linear::q} || t == block_tensor{block_vector::q_bias}) return cfg.n_heads;
  if (t == block_tensor{linear::k} || t == block_tensor{block_vector::k_bias}) return cfg.n_kv_heads;
  return 0;
}

/// Block tensor `t` (a matrix or a vector) from a Hugging Face checkpoint in ternq's layout: the rows RoPE pairs
/// reordered to the interleaved layout where `cfg` uses it (the Llama block, as llama.cpp stores it), else as is.
template <class Values>
Values from_hf_layout(const config& cfg, block_tensor t, Values v) {
  const std::size_t heads = rope_heads(cfg, t);
  if (cfg.rope != rope_style::interleaved || heads == 0) return v;
  return interleave_rope_rows(v, heads);
}

/// The inverse of `from_hf_layout`: block tensor `t` in ternq's layout back in a Hugging Face checkpoint's.
template <class Values>
Values to_hf_layout(const config& cfg, block_tensor t, Values v) {
  const std::size_t heads = rope_heads(cfg, t);
  if (cfg.rope != rope_style::interleaved || heads == 0) return v;
  return deinterleave_rope_rows(v, heads);
}

/// Llama-3's RoPE scaling as one divisor per rotated pair `j` of a `head_dim`-wide head, with base frequency
/// `theta^(-2j/head_dim)` and wavelength `2 pi / freq`: 1 for wavelengths below
/// `original_max_position_embeddings / high_freq_factor`, `factor` above
/// `original_max_position_embeddings / low_freq_factor`, and between them the divisor of transformers'
/// smooth interpolation, `1 / ((1 - s) / factor + s)` with `s = (original / wavelength - low) / (high - low)`.
/// llama.cpp reads the same divisors from `rope_freqs.weight`.
inline std::vector<float> llama3_rope_factors(const io::hf_llama3_rope_scaling& r, double theta, std::size_t head_dim) {
  const auto original = static_cast<double>(r.original_max_position_embeddings);
  const double low_wavelength = original / r.low_freq_factor;
  const double high_wavelength = original / r.high_freq_factor;
  std::vector<float> out(head_dim / 2);
  for (std::size_t j = 0; j < out.size(); ++j) {
    const double freq = std::pow(theta, -2.0 * static_cast<double>(j) / static_cast<double>(head_dim));
    const double wavelength = 2.0 * std::numbers::pi / freq;
    double divisor = 1.0;
    if (wavelength > low_wavelength) {
      divisor = r.factor;
    } else if (wavelength >= high_wavelength) {
      const double smooth = (original / wavelength - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      divisor = 1.0 / ((1.0 - smooth) / r.factor + smooth);
    }
    out[j] = static_cast<float>(divisor);
  }
  return out;
}

}  // namespace ternq::llama
