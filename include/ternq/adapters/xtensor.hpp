// SPDX-License-Identifier: MIT
// xtensor adapter: xtensor, xarray (2-D at run time), xt::adapt results and strided views become matrix_views.
#pragma once

#include <cstddef>
#include <type_traits>

#include <xtensor/xexpression.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xutils.hpp>

#include "ternq/core/adapt.hpp"
#include "ternq/core/dequantize.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/ternary_matrix.hpp"

namespace ternq {

namespace detail {
template <class E>
inline constexpr bool xtensor_strided_v =
    xt::is_xexpression<E>::value&& xt::has_data_interface<E>::value&& xt::has_strides<E>::value;
}  // namespace detail

/// Any xtensor expression with memory and strides: `xt::xtensor<T, 2>`,
/// `xt::xarray<T>` (must be 2-D at run time), the adaptors `xt::adapt`
/// returns, and strided views of those. Lazy expressions (`a + b`) fail to
/// compile with a message asking for `xt::eval`.
template <class E>
requires xt::is_xexpression<E>::value struct matrix_adapter<E> {
  template <class M>
  static auto view(M& m) {
    using scalar = typename E::value_type;
    if constexpr (!detail::xtensor_strided_v<E>) {
      static_assert(detail::xtensor_strided_v<E>,
                    "ternq: this xtensor expression has no strided storage; evaluate it first "
                    "(xt::eval(expr)) or pass the container it is computed from");
      return matrix_view<const scalar>{};
    } else {
      using element = std::conditional_t<std::is_const_v<M>, const scalar, scalar>;
      if (m.dimension() != 2) {
        fail(errc::shape_mismatch, "xtensor adapter: expression has ", m.dimension(), " dimensions, expected 2");
      }
      const auto& strides = m.strides();
      const auto& shape = m.shape();
      element* data = m.data() + m.data_offset();
      return strided(data, static_cast<std::size_t>(shape[0]), static_cast<std::size_t>(shape[1]),
                     static_cast<std::ptrdiff_t>(strides[0]), static_cast<std::ptrdiff_t>(strides[1]));
    }
  }
};

namespace xtensor {

/// The dequantized matrix as a new `xt::xtensor<float, 2>` (original column order).
inline xt::xtensor<float, 2> dequantize(const ternary_matrix& q) {
  xt::xtensor<float, 2> out = xt::xtensor<float, 2>::from_shape({q.rows(), q.cols()});
  ternq::dequantize(q, out);
  return out;
}

}  // namespace xtensor
}  // namespace ternq
