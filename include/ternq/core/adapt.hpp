// SPDX-License-Identifier: MIT
// The adapter protocol: how any matrix backend becomes a matrix_view.
#pragma once

#include <type_traits>
#include <utility>

#include "ternq/core/view.hpp"

namespace ternq {

/// Customization point. A backend makes its matrix type `M` usable by every
/// ternq algorithm by specializing
///
///     template <> struct ternq::matrix_adapter<M> {
///       static matrix_view<const S> view(const M&);   // read-only
///       static matrix_view<S> view(M&);               // optional: writable
///     };
///
/// `ternq/adapters/eigen.hpp` and `ternq/adapters/xtensor.hpp` are the
/// examples; `matrix_view` adapts to itself.
template <class M>
struct matrix_adapter;

template <class T>
struct matrix_adapter<matrix_view<T>> {
  static constexpr matrix_view<T> view(const matrix_view<T>& v) noexcept { return v; }
};

namespace detail {
template <class V>
struct is_matrix_view : std::false_type {};
template <class T>
struct is_matrix_view<matrix_view<T>> : std::true_type {};
}  // namespace detail

/// True for `matrix_view<T>` of any `T`.
template <class V>
concept a_matrix_view = detail::is_matrix_view<std::remove_cvref_t<V>>::value;

/// `M` has a matrix_adapter giving a view of it (through an lvalue of `M`).
template <class M>
concept adaptable_matrix = requires(M& m) {
  { matrix_adapter<std::remove_cvref_t<M>>::view(m) } -> a_matrix_view;
};

/// `M` adapts to a view whose elements can be written.
template <class M>
concept writable_matrix = adaptable_matrix<M> && requires(M& m) {
  requires !std::is_const_v<typename decltype(matrix_adapter<std::remove_cvref_t<M>>::view(m))::element_type>;
};

/// The element types ternq algorithms compute on.
template <class S>
concept real_scalar = std::is_same_v < std::remove_cv_t<S>,
float > || std::is_same_v<std::remove_cv_t<S>, double>;

namespace detail {
template <class>
inline constexpr bool always_false = false;
}

/// The message every entry point gives for a type without an adapter.
#define TERNQ_NO_ADAPTER_MESSAGE                                                                    \
  "ternq: no matrix_adapter for this type. Include <ternq/adapters/eigen.hpp> or "                  \
  "<ternq/adapters/xtensor.hpp> for those backends, wrap raw memory with "                          \
  "ternq::row_major(ptr, rows, cols) / ternq::col_major(...), or specialize ternq::matrix_adapter " \
  "for your type."

/// The view of any adaptable matrix. A type without an adapter fails here
/// with one readable message instead of a wall of overload candidates.
template <class M>
constexpr auto as_view(M& m) {
  if constexpr (adaptable_matrix<M>) {
    return matrix_adapter<std::remove_cvref_t<M>>::view(m);
  } else {
    static_assert(detail::always_false<M>, TERNQ_NO_ADAPTER_MESSAGE);
    return matrix_view<const float>{};
  }
}

/// Read-only view of any adaptable matrix.
template <class M>
constexpr auto as_const_view(const M& m) {
  auto v = as_view(m);
  using T = typename decltype(v)::value_type;
  return matrix_view<const T>(v);
}

/// Writable view of any adaptable matrix; a read-only source fails to compile
/// with a readable message.
template <class M>
constexpr auto as_writable_view(M& m) {
  auto v = as_view(m);
  static_assert(!std::is_const_v<typename decltype(v)::element_type>,
                "ternq: this matrix is read-only (a const object or a const view); pass a "
                "writable matrix as the output");
  return v;
}

}  // namespace ternq
