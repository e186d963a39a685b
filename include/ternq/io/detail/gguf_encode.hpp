// SPDX-License-Identifier: MIT
// GGUF encoding internals: little-endian scalars, strings and typed values appended to a byte buffer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "ternq/io/gguf_types.hpp"
#include "ternq/pack/bytes.hpp"

namespace ternq::io {

namespace detail {

/// Appends little-endian encodings to a byte buffer.
class byte_builder {
 public:
  template <pack::little_endian_storable T>
  void put(T v) {
    std::array<std::uint8_t, sizeof(T)> b{};
    pack::store_le(b.data(), v);
    bytes_.insert(bytes_.end(), b.begin(), b.end());
  }
  void put_bool(bool v) { bytes_.push_back(v ? 1 : 0); }
  void put_string(std::string_view s) {
    put(static_cast<std::uint64_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void pad_to(std::uint64_t alignment) { bytes_.resize(gguf_align(bytes_.size(), alignment), 0); }
  [[nodiscard]] const std::vector<std::uint8_t>& bytes() const noexcept { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

template <class T>
void put_scalar(byte_builder& out, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    out.put_bool(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    out.put_string(v);
  } else {
    out.put(v);
  }
}

inline void put_value(byte_builder& out, const gguf_value& value) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, gguf_array>) {
          out.put(static_cast<std::int32_t>(v.element_type()));
          out.put(static_cast<std::uint64_t>(v.size()));
          std::visit(
              [&](const auto& elements) {
                for (const auto& e : elements) {
                  using E = std::decay_t<decltype(elements[0])>;
                  put_scalar<E>(out, static_cast<E>(e));
                }
              },
              v.values());
        } else {
          put_scalar(out, v);
        }
      },
      value);
}

}  // namespace detail

}  // namespace ternq::io
