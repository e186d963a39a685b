// SPDX-License-Identifier: MIT
// The one quantize() entry point: any backend, any method, optional calibration statistics.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string_view>
#include <type_traits>

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/ternary_matrix.hpp"

namespace ternq {

/// `Method` quantizes from the weights alone: `quantize_view(exec, view, method)` exists.
template <class Method, class T>
concept data_free_method = requires(const cpu_exec& exec, const matrix_view<const T>& w, const Method& m) {
  { quantize_view(exec, w, m) } -> std::same_as<ternary_matrix>;
};

/// `Method` uses a Gram matrix `C = X X^T`: `quantize_view(exec, view, method, gram)` exists.
template <class Method, class T, class G>
concept gram_method = requires(const cpu_exec& exec, const matrix_view<const T>& w, const Method& m,
                               const matrix_view<const G>& c) {
  { quantize_view(exec, w, m, c) } -> std::same_as<ternary_matrix>;
};

/// Relative asymmetry `|C_ij - C_ji| / sqrt(C_ii C_jj)` a Gram matrix may have (rounding in its assembly).
inline constexpr double gram_symmetry_tolerance = 1e-4;

/// Checks that `gram` is the `m x m` Gram matrix for weights with `m`
/// columns: square of that size (`shape_mismatch`), finite (`non_finite`),
/// a non-negative diagonal and symmetric within `gram_symmetry_tolerance`
/// (`invalid_argument` naming the first offending entry). Positive
/// semi-definiteness, which costs a factorization, is checked by the
/// methods that rely on it (`linalg::require_psd`).
template <class G>
void require_gram_for(const matrix_view<const G>& gram, std::size_t cols, std::string_view context) {
  if (gram.rows() != gram.cols() || gram.rows() != cols) {
    fail(errc::shape_mismatch, context, ": gram matrix is ", gram.rows(), "x", gram.cols(), " but the weights have ",
         cols, " columns (expected ", cols, "x", cols, ")");
  }
  require_finite(gram, context, "gram matrix");
  const std::size_t m = cols;
  for (std::size_t j = 0; j < m; ++j) {
    if (gram(j, j) < G(0)) {
      fail(errc::invalid_argument, context, ": gram matrix has a negative diagonal entry (", j, ", ", j,
           ") = ", gram(j, j), "; a Gram matrix X X^T has none");
    }
  }
  constexpr std::size_t tile = 64;  // compare C with C^T tile by tile, so both are read in cache-sized pieces
  for (std::size_t i0 = 0; i0 < m; i0 += tile) {
    for (std::size_t j0 = 0; j0 <= i0; j0 += tile) {
      for (std::size_t i = i0; i < std::min(m, i0 + tile); ++i) {
        for (std::size_t j = j0; j < std::min(i, j0 + tile); ++j) {
          const double a = static_cast<double>(gram(i, j));
          const double b = static_cast<double>(gram(j, i));
          if (a == b) continue;
          const double scale = std::sqrt(static_cast<double>(gram(i, i)) * static_cast<double>(gram(j, j)));
          if (!(std::abs(a - b) <= gram_symmetry_tolerance * scale)) {
            fail(errc::invalid_argument, context, ": gram matrix is not symmetric: (", i, ", ", j, ") = ", a, " but (",
                 j, ", ", i, ") = ", b);
          }
        }
      }
    }
  }
}

/// Quantizes `w` (any adaptable `n x m` matrix: Eigen, xtensor, a
/// `matrix_view`) with `method` (`absmean{}`, `twn{}`, `optimal_symmetric{}`,
/// ...) under the execution policy `exec`.
template <class W, class Method>
requires(!std::is_same_v<std::remove_cvref_t<W>, cpu_exec>) ternary_matrix
    quantize(const cpu_exec& exec, const W& w, const Method& method) {
  if constexpr (!adaptable_matrix<const W>) {
    static_assert(detail::always_false<W>, TERNQ_NO_ADAPTER_MESSAGE);
    return {};
  } else {
    const auto view = as_const_view(w);
    using T = typename decltype(view)::value_type;
    static_assert(real_scalar<T>, "ternq::quantize: weights must be float or double");
    if constexpr (data_free_method<Method, T>) {
      return quantize_view(exec, view, method);
    } else {
      static_assert(detail::always_false<Method>,
                    "ternq::quantize: this method needs calibration statistics; call "
                    "quantize(w, method, gram) with the m x m Gram matrix C = X X^T");
      return {};
    }
  }
}

/// Quantizes with calibration statistics: `gram` is the `m x m` matrix
/// `C = X X^T` of the layer's input activations (any adaptable matrix,
/// e.g. `gram_accumulator::view()`). Methods that need no data check its
/// shape and then ignore it, so a table of methods can call one signature.
template <class W, class Method, class G>
requires(!std::is_same_v<std::remove_cvref_t<W>, cpu_exec>) ternary_matrix
    quantize(const cpu_exec& exec, const W& w, const Method& method, const G& gram) {
  if constexpr (!adaptable_matrix<const W> || !adaptable_matrix<const G>) {
    static_assert(detail::always_false<W>, TERNQ_NO_ADAPTER_MESSAGE);
    return {};
  } else {
    const auto view = as_const_view(w);
    const auto c = as_const_view(gram);
    using T = typename decltype(view)::value_type;
    using C = typename decltype(c)::value_type;
    static_assert(real_scalar<T>, "ternq::quantize: weights must be float or double");
    static_assert(real_scalar<C>, "ternq::quantize: the Gram matrix must be float or double");
    if constexpr (gram_method<Method, T, C>) {
      return quantize_view(exec, view, method, c);
    } else {
      require_gram_for(c, view.cols(), "quantize");
      return quantize(exec, w, method);
    }
  }
}

/// `quantize(cpu_exec{}, w, method)`: all hardware threads.
template <class W, class Method>
requires(!std::is_same_v<std::remove_cvref_t<W>, cpu_exec>) ternary_matrix quantize(const W& w, const Method& method) {
  return quantize(cpu_exec{}, w, method);
}

/// `quantize(cpu_exec{}, w, method, gram)`: all hardware threads.
template <class W, class Method, class G>
requires(!std::is_same_v<std::remove_cvref_t<W>, cpu_exec>) ternary_matrix
    quantize(const W& w, const Method& method, const G& gram) {
  return quantize(cpu_exec{}, w, method, gram);
}

}  // namespace ternq
