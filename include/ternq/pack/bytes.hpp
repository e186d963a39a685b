// SPDX-License-Identifier: MIT
// Little-endian loads and stores of fixed-width numbers, written byte by byte whatever the host's byte order.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace ternq::pack {

namespace detail {
template <std::size_t N>
struct unsigned_of;
template <>
struct unsigned_of<1> {
  using type = std::uint8_t;
};
template <>
struct unsigned_of<2> {
  using type = std::uint16_t;
};
template <>
struct unsigned_of<4> {
  using type = std::uint32_t;
};
template <>
struct unsigned_of<8> {
  using type = std::uint64_t;
};
}  // namespace detail

/// An integer or IEEE float of 1, 2, 4 or 8 bytes: what the file formats store.
template <class T>
concept little_endian_storable = (std::is_integral_v<T> || std::is_floating_point_v<T>)&&!std::is_same_v<T, bool> &&
                                 (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);

/// Writes `value` at `dst` as `sizeof(T)` little-endian bytes.
template <little_endian_storable T>
constexpr void store_le(std::uint8_t* dst, T value) noexcept {
  using U = typename detail::unsigned_of<sizeof(T)>::type;
  const U u = std::bit_cast<U>(value);
  for (std::size_t k = 0; k < sizeof(T); ++k) dst[k] = static_cast<std::uint8_t>(u >> (8U * k));
}

/// Reads a `T` stored as `sizeof(T)` little-endian bytes at `src`.
template <little_endian_storable T>
constexpr T load_le(const std::uint8_t* src) noexcept {
  using U = typename detail::unsigned_of<sizeof(T)>::type;
  U u = 0;
  for (std::size_t k = 0; k < sizeof(T); ++k) u = static_cast<U>(u | (static_cast<U>(src[k]) << (8U * k)));
  return std::bit_cast<T>(u);
}

}  // namespace ternq::pack
