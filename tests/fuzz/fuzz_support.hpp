// SPDX-License-Identifier: MIT
// Shared by the fuzz targets: bytes as a span, and the rule that only ternq::error may escape a reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "ternq/core/error.hpp"

namespace ternq::fuzz {

inline std::span<const std::byte> bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}
inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Runs `f`; a `ternq::error` is the reader refusing bad input (expected). Anything else — another
/// exception, a crash, a sanitizer report — escapes to libFuzzer as a finding.
template <class F>
int guarded(F&& f) {
  try {
    f();
  } catch (const ternq::error&) {
  }
  return 0;
}

}  // namespace ternq::fuzz
