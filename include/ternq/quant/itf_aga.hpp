// SPDX-License-Identifier: MIT
// The itf_aga method: ITF codes, then the grid re-solved for the output error (ALGORITHMS.md §2, Algorithm 1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/linalg/gram_checks.hpp"
#include "ternq/quant/aga.hpp"
#include "ternq/quant/aga_methods.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/detail/atq_rows.hpp"
#include "ternq/quant/itf.hpp"
#include "ternq/quant/quantize.hpp"

namespace ternq {

/// `itf_aga` with its counters; `gram` is the `m x m` matrix `C = X X^T`.
template <class T, class G>
atq_result itf_aga_quantize(const cpu_exec& exec, const matrix_view<const T>& w, const matrix_view<const G>& gram,
                            const itf_aga& method) {
  constexpr const char* context = "quantize(itf_aga)";
  require_nonempty(w, context, "weight matrix");
  require_gram_for(gram, w.cols(), context);
  atq_result out{ternary_matrix(w.rows(), w.cols(), method.group_size, true), {}};
  const group_layout& layout = out.matrix.layout();
  const auto c = linalg::map(gram);
  const auto wm = linalg::map(w);
  std::vector<Eigen::MatrixXd> blocks(layout.count());
  for (std::size_t k = 0; k < layout.count(); ++k) {
    const auto b = static_cast<Eigen::Index>(layout.begin(k));
    const auto n = static_cast<Eigen::Index>(layout.size(k));
    blocks[k] = c.block(b, b, n, n).template cast<double>();
    // AGA relies on each block being positive semi-definite (its 2x2 systems then have det >= 0).
    linalg::require_psd(matrix_view<const double>(blocks[k].data(), layout.size(k), layout.size(k), 1,
                                                  static_cast<std::ptrdiff_t>(layout.size(k))),
                        context, ternq::detail::concat("gram block C[B, B] of group ", k));
  }
  const std::size_t chunks = (w.rows() + detail::atq_row_chunk - 1) / detail::atq_row_chunk;
  std::vector<atq_stats> stats(chunks);
  const simd_level simd = exec.simd_variant();
  detail::for_each_row_chunk(w.rows(), exec.thread_count(), [&](std::size_t ci, std::size_t r0, std::size_t r1) {
    std::vector<atq_grid> grids;
    std::vector<T> scratch;
    atq_stats& st = stats[ci];
    st = detail::itf_fit_rows(simd, w, r0, r1, method.max_iters, out.matrix, grids, scratch, context);
    const auto rows = static_cast<Eigen::Index>(r1 - r0);
    std::vector<aga_outcome> outcome(r1 - r0);
    Eigen::MatrixXd td;
    for (std::size_t k = 0; k < layout.count(); ++k) {
      const std::size_t b = layout.begin(k);
      const auto n = static_cast<Eigen::Index>(layout.size(k));
      td.resize(rows, n);
      for (std::size_t i = r0; i < r1; ++i) {
        const auto codes = out.matrix.row_codes(i);
        for (Eigen::Index j = 0; j < n; ++j)
          td(static_cast<Eigen::Index>(i - r0), j) = codes[b + static_cast<std::size_t>(j)];
        outcome[i - r0] = {grids[(i - r0) * layout.count() + k], false, false};
      }
      const Eigen::MatrixXd wd =
          wm.block(static_cast<Eigen::Index>(r0), static_cast<Eigen::Index>(b), rows, n).template cast<double>();
      st.aga_fallbacks += aga_align_rows(wd, td, blocks[k], std::span<aga_outcome>(outcome));
      for (std::size_t i = r0; i < r1; ++i) {
        const aga_outcome& o = outcome[i - r0];
        grids[(i - r0) * layout.count() + k] = o.grid;
        if (o.flip) {
          for (auto& x : out.matrix.row_codes(i).subspan(b, static_cast<std::size_t>(n)))
            x = static_cast<std::int8_t>(-x);
        }
      }
    }
    detail::store_grids(out.matrix, r0, r1, grids);
  });
  for (const auto& s : stats) out.stats.merge(s);
  return out;
}

/// `itf_aga_quantize` for any adaptable weights and Gram matrix.
template <class W, class G>
requires(!a_matrix_view<W> || !a_matrix_view<G>) atq_result
    itf_aga_quantize(const cpu_exec& exec, const W& w, const G& gram, const itf_aga& method) {
  return itf_aga_quantize(exec, as_const_view(w), as_const_view(gram), method);
}

/// `quantize` entry for itf_aga (see ternq/quant/quantize.hpp).
template <class T, class G>
ternary_matrix quantize_view(const cpu_exec& exec, const matrix_view<const T>& w, const itf_aga& method,
                             const matrix_view<const G>& gram) {
  return itf_aga_quantize(exec, w, gram, method).matrix;
}

}  // namespace ternq
