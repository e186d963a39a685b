// SPDX-License-Identifier: MIT
// Exact structural edits of a model that let block formats store what calibration chose: zero padding of the FFN
// hidden width to the format's block, and folding a layer's column order into the layers that produce its input.
//
// Block formats store a tensor in its natural column order. A column order chosen by act-order or SSR (stored
// column j reads input perm[j]) survives export only where the reader's input comes from another linear layer
// whose output rows can be reordered the same way, so that the model computes the same function:
// - ffn_down reads the FFN hidden units, made row by row by ffn_gate and ffn_up: any order folds;
// - attn_output reads the concatenated attention heads: an order folds when it moves whole heads (with their
//   key/value head, so that GQA still pairs them) and reorders the dimensions of a head the same way for every
//   query head of a key/value head (attention values carry no rotary embedding; queries and keys do, which is
//   why only whole query/key heads move).
// The other layers (q, k, v, gate, up) read the residual stream, which every block adds to: no exact fold.
#pragma once

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <ternq/core/error.hpp>
#include <ternq/core/permutation.hpp>
#include <ternq/core/reshape.hpp>
#include <ternq/core/ternary_matrix.hpp>

#include "llama/model.hpp"

namespace ternq::llama {

/// Where a layer's column order can go when the model is stored in a block format.
enum class order_fold {
  none,             ///< reads the residual stream: stored orders must be the identity
  ffn_hidden,       ///< ffn_down: any order, folded into the rows of ffn_gate and ffn_up
  attention_heads,  ///< attn_output: orders of whole heads (see `head_consistent_order`), folded into q/k/v rows
};

constexpr order_fold fold_of(linear which) noexcept {
  switch (which) {
    case linear::down:
      return order_fold::ffn_hidden;
    case linear::o:
      return order_fold::attention_heads;
    default:
      return order_fold::none;
  }
}

/// The FFN hidden width padded up to a multiple of `multiple` (unchanged when it already is one).
constexpr std::size_t padded_hidden(std::size_t hidden, std::size_t multiple) noexcept {
  return multiple == 0 ? hidden : (hidden + multiple - 1) / multiple * multiple;
}

/// Pads one block's FFN to `hidden` units: new zero rows in ffn_gate and
/// ffn_up, new zero columns in ffn_down. A new unit computes
/// `silu(0) * 0 = 0` and ffn_down adds `0 * w = 0`, so the block's function
/// is unchanged (to the rounding of longer sums).
inline void pad_block_ffn(layer& l, std::size_t hidden) {
  const auto h = static_cast<Eigen::Index>(hidden);
  const Eigen::Index old = l.w1.rows();
  if (h < old) fail(errc::invalid_argument, "pad_ffn_hidden: cannot shrink the FFN from ", old, " to ", hidden);
  if (h == old) return;
  for (matrix* rows : {&l.w1, &l.w3}) {
    matrix grown = matrix::Zero(h, rows->cols());
    grown.topRows(old) = *rows;
    *rows = std::move(grown);
  }
  matrix grown = matrix::Zero(l.w2.rows(), h);
  grown.leftCols(old) = l.w2;
  l.w2 = std::move(grown);
}

/// Pads the FFN of every block to `hidden` units (`pad_block_ffn`).
inline void pad_ffn_hidden(model& m, std::size_t hidden) {
  if (hidden < m.cfg.hidden_dim) {
    fail(errc::invalid_argument, "pad_ffn_hidden: cannot shrink the FFN from ", m.cfg.hidden_dim, " to ", hidden);
  }
  for (layer& l : m.layers) pad_block_ffn(l, hidden);
  m.cfg.hidden_dim = hidden;
}

/// The closest order of whole heads to `free_order` (a column order of
/// attn_output, `free_order[p]` the column taken at position `p`): key/value
/// heads by the mean position of their columns, then within each the query
/// heads by theirs, then within every head the dimensions by their mean
/// position over the key/value head's query heads (ties: lower index first).
/// The result is a column order of attn_output that `fold_attention_output`
/// folds exactly.
inline std::vector<std::size_t> head_consistent_order(std::span<const std::size_t> free_order, const config& cfg) {
  const std::size_t hd = cfg.head_dim(), heads = cfg.n_heads, kv = cfg.n_kv_heads, per_kv = heads / kv;
  require_permutation(free_order, heads * hd, "head_consistent_order");
  std::vector<double> position(heads * hd);
  for (std::size_t p = 0; p < free_order.size(); ++p) position[free_order[p]] = static_cast<double>(p);
  const auto by_score = [](std::vector<double> score) {
    std::vector<std::size_t> idx(score.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
    return idx;
  };
  std::vector<double> head_score(heads, 0.0);
  for (std::size_t h = 0; h < heads; ++h) {
    for (std::size_t d = 0; d < hd; ++d) head_score[h] += position[h * hd + d];
  }
  std::vector<double> kv_score(kv, 0.0);
  for (std::size_t h = 0; h < heads; ++h) kv_score[h / per_kv] += head_score[h];
  std::vector<std::size_t> out;
  out.reserve(heads * hd);
  for (const std::size_t g : by_score(kv_score)) {
    std::vector<double> dim_score(hd, 0.0);
    std::vector<double> within(per_kv);
    for (std::size_t i = 0; i < per_kv; ++i) {
      within[i] = head_score[g * per_kv + i];
      for (std::size_t d = 0; d < hd; ++d) dim_score[d] += position[(g * per_kv + i) * hd + d];
    }
    const std::vector<std::size_t> dims = by_score(dim_score);
    for (const std::size_t i : by_score(within)) {
      for (const std::size_t d : dims) out.push_back((g * per_kv + i) * hd + d);
    }
  }
  return out;
}

namespace detail {
/// `w` with its rows reordered: row `i` of the result is row `order[i]`.
inline matrix gather_rows(const matrix& w, std::span<const std::size_t> order) {
  matrix out(w.rows(), w.cols());
  for (std::size_t i = 0; i < order.size(); ++i) {
    out.row(static_cast<Eigen::Index>(i)) = w.row(static_cast<Eigen::Index>(order[i]));
  }
  return out;
}
/// `w` with its columns reordered: column `j` of the result is column `order[j]`.
inline matrix gather_cols(const matrix& w, std::span<const std::size_t> order) {
  matrix out(w.rows(), w.cols());
  for (std::size_t j = 0; j < order.size(); ++j) {
    out.col(static_cast<Eigen::Index>(j)) = w.col(static_cast<Eigen::Index>(order[j]));
  }
  return out;
}
/// Reorders a producer's rows, dense and (when it was quantized) ternary, and its bias (when it has one).
inline void reorder_rows(matrix& dense, ternary_matrix* q, std::span<const std::size_t> order, vector* bias = nullptr) {
  dense = gather_rows(dense, order);
  if (q != nullptr && q->rows() != 0) *q = permute_rows(*q, order);
  if (bias != nullptr && bias->size() != 0) {
    vector out(bias->size());
    for (std::size_t i = 0; i < order.size(); ++i)
      out[static_cast<Eigen::Index>(i)] = (*bias)[static_cast<Eigen::Index>(order[i])];
    *bias = std::move(out);
  }
}
}  // namespace detail

/// The quantized layers of one block, as the fold sees them (null: the layer was not ternarized).
struct block_ternaries {
  ternary_matrix* q = nullptr;
  ternary_matrix* k = nullptr;
  ternary_matrix* v = nullptr;
  ternary_matrix* o = nullptr;
  ternary_matrix* gate = nullptr;
  ternary_matrix* up = nullptr;
  ternary_matrix* down = nullptr;
};

/// Folds the column order of `t.down` (if any) into the block: the rows of
/// ffn_gate and ffn_up (dense and ternary) are reordered by it, ffn_down's
/// dense columns too, and its ternary matrix drops the permutation, its codes
/// already being in that order. Returns whether there was an order to fold.
inline bool fold_ffn_down(layer& w, const block_ternaries& t) {
  if (t.down == nullptr || !t.down->has_permutation()) return false;
  const std::vector<std::size_t> order(t.down->permutation().begin(), t.down->permutation().end());
  detail::reorder_rows(w.w1, t.gate, order);
  detail::reorder_rows(w.w3, t.up, order);
  w.w2 = detail::gather_cols(w.w2, order);
  t.down->clear_permutation();
  return true;
}

/// Folds the column order of `t.o` (if any) into the block's attention: the
/// query heads move with the order's heads, the key heads with their query
/// heads, the value rows with the order's heads and dimensions; attn_output's
/// ternary matrix drops the permutation. The order must be one of whole
/// heads (`head_consistent_order` gives one); any other is refused
/// (`unsupported`), since no exact fold exists for it.
inline bool fold_attention_output(layer& w, const config& cfg, const block_ternaries& t) {
  if (t.o == nullptr || !t.o->has_permutation()) return false;
  const std::vector<std::size_t> order(t.o->permutation().begin(), t.o->permutation().end());
  const std::size_t hd = cfg.head_dim(), heads = cfg.n_heads, kv = cfg.n_kv_heads, per_kv = heads / kv;
  const auto refuse = [&](const char* why) {
    fail(errc::unsupported, "fold_attention_output: the column order of attn_output ", why,
         "; only orders of whole heads fold into the attention (head_consistent_order)");
  };
  std::vector<std::size_t> q_rows(heads * hd), kv_rows(kv * hd), v_rows(kv * hd);
  for (std::size_t p = 0; p < kv; ++p) {
    const std::size_t g = order[p * per_kv * hd] / hd / per_kv;  // the key/value head now at position p
    for (std::size_t i = 0; i < per_kv; ++i) {
      const std::size_t at = (p * per_kv + i) * hd;
      const std::size_t h = order[at] / hd;  // the query head now at position p * per_kv + i
      if (h / per_kv != g) refuse("mixes the query heads of different key/value heads");
      for (std::size_t k = 0; k < hd; ++k) {
        if (order[at + k] / hd != h) refuse("splits a head");
        const std::size_t d = order[at + k] % hd;
        const std::size_t first_head_dim = order[p * per_kv * hd + k] % hd;
        if (d != first_head_dim) refuse("reorders the dimensions of query heads sharing a key/value head differently");
        q_rows[at + k] = h * hd + k;  // queries (and keys) keep their dimension order: rotary pairs stay
        v_rows[p * hd + k] = g * hd + d;
        kv_rows[p * hd + k] = g * hd + k;
      }
    }
  }
  // Whole heads move with their biases; the per-head q/k norms are shared by all heads and see each head's
  // dimensions in their order, which is kept.
  detail::reorder_rows(w.wq, t.q, q_rows, &w.bq);
  detail::reorder_rows(w.wk, t.k, kv_rows, &w.bk);
  detail::reorder_rows(w.wv, t.v, v_rows, &w.bv);
  w.wo = detail::gather_cols(w.wo, order);
  t.o->clear_permutation();
  return true;
}

}  // namespace ternq::llama
