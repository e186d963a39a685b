// SPDX-License-Identifier: MIT
// Eigen adapter: dense matrices of either storage order, Map, Ref and blocks become matrix_views.
#pragma once

#include <type_traits>

#include <Eigen/Core>

#include "ternq/core/adapt.hpp"
#include "ternq/core/dequantize.hpp"
#include "ternq/core/ternary_matrix.hpp"

namespace ternq {

namespace detail {
template <class D>
inline constexpr bool eigen_dense_v = std::is_base_of_v<Eigen::DenseBase<D>, D>;

template <class D>
inline constexpr bool eigen_direct_access_v = (Eigen::internal::traits<D>::Flags & Eigen::DirectAccessBit) != 0;
}  // namespace detail

/// Any Eigen dense object with direct memory access (Matrix, Array, Map,
/// Ref, Block of those, with an outer or inner stride). Expressions without
/// storage (`a + b`) fail to compile with a message asking for `.eval()`.
template <class D>
requires detail::eigen_dense_v<D>
struct matrix_adapter<D> {
  template <class M>
  static auto view(M& m) {
    using scalar = typename D::Scalar;
    if constexpr (!detail::eigen_direct_access_v<D>) {
      static_assert(detail::eigen_direct_access_v<D>,
                    "ternq: this Eigen expression has no storage of its own; evaluate it first "
                    "(e.g. expr.eval()) or pass the matrix it is computed from");
      return matrix_view<const scalar>{};
    } else {
      constexpr bool read_only = std::is_const_v<M> || !(Eigen::internal::traits<D>::Flags & Eigen::LvalueBit);
      using element = std::conditional_t<read_only, const scalar, scalar>;
      element* data = m.data();
      const auto inner = static_cast<std::ptrdiff_t>(m.innerStride());
      const auto outer = static_cast<std::ptrdiff_t>(m.outerStride());
      const auto rows = static_cast<std::size_t>(m.rows());
      const auto cols = static_cast<std::size_t>(m.cols());
      if constexpr (D::IsRowMajor) {
        return matrix_view<element>(data, rows, cols, outer, inner);
      } else {
        return matrix_view<element>(data, rows, cols, inner, outer);
      }
    }
  }
};

namespace eigen {

/// The dequantized matrix as a new `Eigen::MatrixXf` (original column order).
inline Eigen::MatrixXf dequantize(const ternary_matrix& q) {
  Eigen::MatrixXf out(static_cast<Eigen::Index>(q.rows()), static_cast<Eigen::Index>(q.cols()));
  ternq::dequantize(q, out);
  return out;
}

/// The codes as a new row-major `int8` Eigen matrix (stored column order).
inline Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> codes(const ternary_matrix& q) {
  Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> out(static_cast<Eigen::Index>(q.rows()),
                                                                                  static_cast<Eigen::Index>(q.cols()));
  std::copy(q.codes().begin(), q.codes().end(), out.data());
  return out;
}

}  // namespace eigen
}  // namespace ternq
