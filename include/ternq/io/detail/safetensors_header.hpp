// SPDX-License-Identifier: MIT
// The header of a safetensors file, as both writers lay it out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ternq/core/error.hpp"
#include "ternq/io/atomic_output.hpp"
#include "ternq/io/detail/bytes.hpp"
#include "ternq/io/safetensors_dtype.hpp"

namespace ternq::io::detail {

/// One tensor of a header: its data follow the previous tensor's.
struct header_entry {
  std::string_view name;
  dtype type = dtype::f32;
  const std::vector<std::size_t>* shape = nullptr;
  std::uint64_t bytes = 0;
};

/// The JSON header: `__metadata__` first (when any), then `entries` in their
/// order with consecutive `data_offsets`, padded with spaces so the data
/// section starts at a multiple of 8 bytes. `writer` names the caller in the
/// error for a name or metadata entry JSON cannot hold.
inline std::string header_text(const std::map<std::string, std::string>& metadata,
                               std::span<const header_entry> entries, std::string_view writer) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const header_entry& e : entries) {
    header[std::string(e.name)] = {
        {"dtype", dtype_name(e.type)}, {"shape", *e.shape}, {"data_offsets", {offset, offset + e.bytes}}};
    offset += e.bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(errc::invalid_argument, writer, ": a name or metadata entry cannot be written: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + header length: a multiple of 8
  return text;
}

/// Writes the 8-byte length and the header `text`.
inline void write_header(atomic_output& out, const std::string& text) {
  std::array<std::byte, 8> length{};
  store_u64_le(length.data(), text.size());
  out.write(length);
  out.write(std::as_bytes(std::span(text)));
}

}  // namespace ternq::io::detail
