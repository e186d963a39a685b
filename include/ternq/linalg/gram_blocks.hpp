// SPDX-License-Identifier: MIT
// The diagonal blocks C[B, B] of a Gram matrix for a group layout, packed for batched products and factorizations
// (the CUDA itf_aga's), with the sums AGA takes from them; free of Eigen.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/gram_psd.hpp"

namespace ternq::linalg {

/// The diagonal blocks `C[B, B]` of a group layout, each column-major and packed one after the other (block `k` at
/// `offset(k) = k g^2`; a shorter last block follows the full ones), with `C[B, B] 1` of every block (`ones`, one
/// entry per column of the matrix) and `1^T C[B, B] 1` (`totals`, one per block): AGA's `C 1` and `a22`.
struct gram_blocks {
  std::vector<double> packed;
  std::vector<double> ones;
  std::vector<double> totals;
  std::size_t full = 0;  ///< leading blocks of the full group size
  std::size_t group_size = 0;

  [[nodiscard]] std::size_t offset(std::size_t k) const noexcept { return k * group_size * group_size; }
};

/// How refusals name block `k`, as the CPU's itf_aga names it.
inline std::string gram_block_name(std::size_t k) { return ternq::detail::concat("gram block C[B, B] of group ", k); }

/// The diagonal blocks of the `m x m` `gram` for `layout` (`m` columns).
template <class G>
gram_blocks pack_gram_blocks(const matrix_view<const G>& gram, const group_layout& layout) {
  if (gram.rows() != layout.cols() || gram.cols() != layout.cols()) {
    fail(errc::shape_mismatch, "pack_gram_blocks: a ", gram.rows(), "x", gram.cols(), " gram matrix for ",
         layout.cols(), " columns");
  }
  gram_blocks out;
  const std::size_t last = layout.size(layout.count() - 1);
  out.group_size = layout.group_size();
  out.full = last == layout.group_size() ? layout.count() : layout.count() - 1;
  out.packed.resize(out.offset(out.full) + (layout.count() - out.full) * last * last);
  out.ones.assign(layout.cols(), 0.0);
  out.totals.assign(layout.count(), 0.0);
  for (std::size_t k = 0; k < layout.count(); ++k) {
    const std::size_t b = layout.begin(k);
    const std::size_t n = layout.size(k);
    double* block = out.packed.data() + out.offset(k);
    for (std::size_t q = 0; q < n; ++q) {
      for (std::size_t p = 0; p < n; ++p) block[q * n + p] = static_cast<double>(gram(b + p, b + q));
    }
    for (std::size_t p = 0; p < n; ++p) {
      double s = 0.0;
      for (std::size_t q = 0; q < n; ++q) s += block[q * n + p];
      out.ones[b + p] = s;
      out.totals[k] += s;
    }
  }
  return out;
}

/// The blocks as `require_psd` factors them: block `k` plus `gram_psd_tolerance * trace_k / n_k` on its diagonal;
/// an all-zero block (which passes) and a hollow one (non-zero with a zero trace, which `require_psd` refuses before
/// factoring) replaced by the identity. `traces` for the refusal's message.
struct shifted_gram_blocks {
  std::vector<double> packed;
  std::vector<double> traces;
  std::vector<unsigned char> hollow;  ///< 1: a non-zero block whose trace is not positive
};

/// `blocks` shifted for the positive semi-definiteness check. Reads the lower triangles only, as `require_psd` does.
inline shifted_gram_blocks shift_for_psd_check(const gram_blocks& blocks, const group_layout& layout) {
  shifted_gram_blocks out{std::vector<double>(blocks.packed.size()), std::vector<double>(layout.count(), 0.0),
                          std::vector<unsigned char>(layout.count(), 0)};
  for (std::size_t k = 0; k < layout.count(); ++k) {
    const std::size_t n = layout.size(k);
    const double* c = blocks.packed.data() + blocks.offset(k);
    double* h = out.packed.data() + blocks.offset(k);
    bool all_zero = true;
    for (std::size_t q = 0; q < n; ++q) {
      out.traces[k] += c[q * n + q];
      for (std::size_t p = q; p < n; ++p) all_zero = all_zero && c[q * n + p] == 0.0;
    }
    out.hollow[k] = !all_zero && out.traces[k] <= 0.0 ? 1 : 0;
    const bool identity = all_zero || out.hollow[k] != 0;
    const double shift = gram_psd_tolerance * out.traces[k] / static_cast<double>(n);
    for (std::size_t q = 0; q < n; ++q) {
      for (std::size_t p = 0; p < n; ++p) {
        h[q * n + p] = identity ? static_cast<double>(p == q) : c[q * n + p] + (p == q ? shift : 0.0);
      }
    }
  }
  return out;
}

/// Refuses, with `require_psd`'s message, the first block in order that `require_psd` refuses: a hollow one, or one
/// whose shifted block has no Cholesky factorization (`factored(k)` false).
template <class Factored>
void refuse_first_non_psd_block(const shifted_gram_blocks& shifted, const group_layout& layout,
                                std::string_view context, Factored&& factored) {
  for (std::size_t k = 0; k < layout.count(); ++k) {
    if (shifted.hollow[k] != 0) fail_zero_trace_gram(context, gram_block_name(k));
    if (!factored(k))
      fail_not_psd_gram(context, gram_block_name(k), shifted.traces[k], static_cast<double>(layout.size(k)));
  }
}

}  // namespace ternq::linalg
