// SPDX-License-Identifier: MIT
// Helpers for the io tests: raw file writing, and the shared models' location.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "temp_dir.hpp"

namespace ternq::testing {

/// Writes `bytes` to `path`, replacing it.
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

/// Reads a whole file.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// `n` as 8 little-endian bytes.
inline std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (std::size_t i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFFU);
  return s;
}

/// A safetensors file by hand: length field, `header` as given, then `data`.
inline std::string safetensors_bytes(std::string_view header, std::string_view data) {
  return le64(header.size()) + std::string(header) + std::string(data);
}

/// The shared models and text (../shared), or an empty path when absent.
inline std::filesystem::path shared_dir() {
  const std::filesystem::path p(TERNQ_SHARED_DIR);
  std::error_code ec;
  return std::filesystem::is_directory(p / "models", ec) ? p : std::filesystem::path{};
}

}  // namespace ternq::testing
