// SPDX-License-Identifier: MIT
// Layout conversions between checkpoint conventions: the q/k row permutation of Hugging Face Llama weights.
#pragma once

#include <cstddef>
#include <vector>

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

/// Interleaved rows -> rotate-half rows (the inverse, GGUF -> Hugging Face order).
inline matrix deinterleave_rope_rows(const matrix& w, std::size_t heads) {
  const auto source = rotate_half_source_rows(static_cast<std::size_t>(w.rows()), heads);
  matrix out(w.rows(), w.cols());
  for (std::size_t r = 0; r < source.size(); ++r) {
    out.row(static_cast<Eigen::Index>(source[r])) = w.row(static_cast<Eigen::Index>(r));
  }
  return out;
}

}  // namespace ternq::llama
