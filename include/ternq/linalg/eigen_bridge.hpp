// SPDX-License-Identifier: MIT
// Views as Eigen maps: how the linear-algebra layer hands ternq data to Eigen without copies.
#pragma once

#include <Eigen/Core>

#include "ternq/core/view.hpp"

namespace ternq::linalg {

/// Column-major dense Eigen matrix, the working type of the linear-algebra layer.
template <class T>
using dense = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

/// Read-only Eigen map over a view with arbitrary strides.
template <class T>
using const_strided_map = Eigen::Map<const dense<T>, Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

/// Writable Eigen map over a view with arbitrary strides.
template <class T>
using strided_map = Eigen::Map<dense<T>, Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

namespace detail {
// Eigen wants positive strides; a stride along an extent of 0 or 1 is never
// used to address memory, so any positive value is equivalent there.
template <class T>
Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic> eigen_stride(const matrix_view<T>& v) {
  const auto inner = v.rows() <= 1 ? std::ptrdiff_t{1} : v.row_stride();
  const auto outer = v.cols() <= 1 ? static_cast<std::ptrdiff_t>(v.rows() > 0 ? v.rows() : 1) : v.col_stride();
  return {outer, inner};
}
}  // namespace detail

/// `v` as an Eigen expression (no copy).
template <class T>
const_strided_map<T> map(const matrix_view<const T>& v) {
  return {v.data(), static_cast<Eigen::Index>(v.rows()), static_cast<Eigen::Index>(v.cols()), detail::eigen_stride(v)};
}

/// Writable `v` as an Eigen expression (no copy).
template <class T>
strided_map<T> map(const matrix_view<T>& v) requires(!std::is_const_v<T>) {
  return {v.data(), static_cast<Eigen::Index>(v.rows()), static_cast<Eigen::Index>(v.cols()), detail::eigen_stride(v)};
}

/// A view of a dense Eigen matrix (column-major).
template <class T>
matrix_view<const T> view_of(const dense<T>& m) {
  return {m.data(), static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols()), 1,
          static_cast<std::ptrdiff_t>(m.rows())};
}
template <class T>
matrix_view<T> view_of(dense<T>& m) {
  return {m.data(), static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols()), 1,
          static_cast<std::ptrdiff_t>(m.rows())};
}

}  // namespace ternq::linalg
