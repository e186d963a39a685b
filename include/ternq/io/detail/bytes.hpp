// SPDX-License-Identifier: MIT
// Explicit little-endian loads and stores, and overflow-checked size arithmetic, for the file formats.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>

namespace ternq::io::detail {

/// Every format ternq reads stores numbers little-endian; these decode them
/// byte by byte, so they are right on any host (compilers turn them into
/// plain loads on little-endian ones).
template <class U>
[[nodiscard]] constexpr U load_le(const std::byte* p) noexcept {
  U v = 0;
  for (std::size_t i = sizeof(U); i-- > 0;) v = static_cast<U>((v << 8U) | std::to_integer<U>(p[i]));
  return v;
}
[[nodiscard]] inline std::uint16_t load_u16_le(const std::byte* p) noexcept { return load_le<std::uint16_t>(p); }
[[nodiscard]] inline std::uint32_t load_u32_le(const std::byte* p) noexcept { return load_le<std::uint32_t>(p); }
[[nodiscard]] inline std::uint64_t load_u64_le(const std::byte* p) noexcept { return load_le<std::uint64_t>(p); }
[[nodiscard]] inline std::int32_t load_i32_le(const std::byte* p) noexcept {
  return std::bit_cast<std::int32_t>(load_u32_le(p));
}
[[nodiscard]] inline float load_f32_le(const std::byte* p) noexcept { return std::bit_cast<float>(load_u32_le(p)); }

template <class U>
constexpr void store_le(std::byte* p, U v) noexcept {
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<std::byte>((v >> (8U * i)) & 0xFFU);
}
inline void store_u16_le(std::byte* p, std::uint16_t v) noexcept { store_le(p, v); }
inline void store_u32_le(std::byte* p, std::uint32_t v) noexcept { store_le(p, v); }
inline void store_u64_le(std::byte* p, std::uint64_t v) noexcept { store_le(p, v); }
inline void store_i32_le(std::byte* p, std::int32_t v) noexcept { store_le(p, std::bit_cast<std::uint32_t>(v)); }
inline void store_f32_le(std::byte* p, float v) noexcept { store_le(p, std::bit_cast<std::uint32_t>(v)); }

/// Decodes `n` little-endian float32 values (a bulk copy on little-endian hosts).
inline void decode_f32_le(const std::byte* src, std::size_t n, float* dst) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    if (n != 0) std::memcpy(dst, src, n * sizeof(float));
  } else {
    for (std::size_t i = 0; i < n; ++i) dst[i] = load_f32_le(src + 4 * i);
  }
}

/// `a * b`, or nothing when it overflows 64 bits (sizes read from files are untrusted).
[[nodiscard]] constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) noexcept {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
  return a * b;
}
/// `a + b`, or nothing when it overflows 64 bits.
[[nodiscard]] constexpr std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) noexcept {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return std::nullopt;
  return a + b;
}

}  // namespace ternq::io::detail
