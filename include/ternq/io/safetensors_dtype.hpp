// SPDX-License-Identifier: MIT
// The element types of the safetensors format: names, sizes, and which ones ternq converts to float.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ternq::io {

/// Every dtype the safetensors format defines. A file holding any of them
/// opens (its sizes can be validated); only F32, F16 and BF16 convert to float.
enum class dtype : std::uint8_t {
  f32,
  f16,
  bf16,
  f64,
  i64,
  i32,
  i16,
  i8,
  u64,
  u32,
  u16,
  u8,
  boolean,
  f8_e5m2,
  f8_e4m3
};

namespace detail {
struct dtype_entry {
  dtype type;
  std::string_view name;
  std::size_t size;
};
inline constexpr std::array<dtype_entry, 15> dtype_table{{{dtype::f32, "F32", 4},
                                                          {dtype::f16, "F16", 2},
                                                          {dtype::bf16, "BF16", 2},
                                                          {dtype::f64, "F64", 8},
                                                          {dtype::i64, "I64", 8},
                                                          {dtype::i32, "I32", 4},
                                                          {dtype::i16, "I16", 2},
                                                          {dtype::i8, "I8", 1},
                                                          {dtype::u64, "U64", 8},
                                                          {dtype::u32, "U32", 4},
                                                          {dtype::u16, "U16", 2},
                                                          {dtype::u8, "U8", 1},
                                                          {dtype::boolean, "BOOL", 1},
                                                          {dtype::f8_e5m2, "F8_E5M2", 1},
                                                          {dtype::f8_e4m3, "F8_E4M3", 1}}};
}  // namespace detail

/// The dtype's name in safetensors headers ("F32", "BF16", ...).
constexpr std::string_view dtype_name(dtype t) noexcept {
  return detail::dtype_table[static_cast<std::size_t>(t)].name;
}

/// Bytes per element.
constexpr std::size_t dtype_size(dtype t) noexcept { return detail::dtype_table[static_cast<std::size_t>(t)].size; }

/// The dtype a header names, or nothing for a name the format does not define.
constexpr std::optional<dtype> parse_dtype(std::string_view name) noexcept {
  for (const auto& e : detail::dtype_table) {
    if (e.name == name) return e.type;
  }
  return std::nullopt;
}

/// True for the dtypes ternq reads as float: F32, F16, BF16.
constexpr bool is_float_dtype(dtype t) noexcept { return t == dtype::f32 || t == dtype::f16 || t == dtype::bf16; }

}  // namespace ternq::io
