// SPDX-License-Identifier: MIT
// GGUF parsing internals: a bounds-checked byte source (memory or file) and the readers of typed values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"
#include "ternq/io/gguf_types.hpp"
#include "ternq/io/mapped_file.hpp"
#include "ternq/pack/bytes.hpp"

namespace ternq::io {

namespace detail {

/// Where the bytes come from: a buffer in memory, a memory-mapped file, or a file read in order.
class gguf_source {
 public:
  gguf_source(std::vector<std::uint8_t> bytes, std::string name)
      : name_(std::move(name)), bytes_(std::move(bytes)), size_(bytes_.size()) {}
  /// A mapped file: parsed from the mapping, tensor data copied with pread (`mapped_file::read`) or viewed in place.
  gguf_source(mapped_file map, std::string name)
      : name_(std::move(name)), map_(std::move(map)), mapped_(true), size_(map_.size()) {}
  gguf_source(const std::filesystem::path& path, std::string name)
      : name_(std::move(name)), path_(path), file_backed_(true) {
    file_ = std::make_unique<std::ifstream>(path, std::ios::binary);
    if (!file_->is_open()) fail(errc::io, name_, ": cannot open the file");
    file_->seekg(0, std::ios::end);
    const std::streamoff end = file_->tellg();
    if (end < 0) fail(errc::io, name_, ": cannot determine the file size");
    size_ = static_cast<std::uint64_t>(end);
    file_->seekg(0, std::ios::beg);
  }

  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// Whether the whole file is addressable in memory (a buffer or a mapping), so that `memory()` views it.
  [[nodiscard]] bool in_memory() const noexcept { return !file_backed_; }
  [[nodiscard]] bool mapped() const noexcept { return mapped_; }
  [[nodiscard]] std::span<const std::uint8_t> memory() const noexcept {
    if (mapped_) {
      const std::span<const std::byte> b = map_.bytes();
      return {reinterpret_cast<const std::uint8_t*>(b.data()), b.size()};
    }
    return bytes_;
  }

  /// Reads `n` bytes at `offset`; the range must lie inside the source (the caller checks).
  void read(std::uint64_t offset, std::uint8_t* dst, std::size_t n) {
    TERNQ_ASSERT(offset <= size_ && n <= size_ - offset);
    if (n == 0) return;
    if (in_memory()) {
      std::memcpy(dst, memory().data() + offset, n);
      return;
    }
    if (position_ != offset) {
      file_->clear();
      file_->seekg(static_cast<std::streamoff>(offset), std::ios::beg);
    }
    file_->read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!file_->good()) fail(errc::io, name_, ": reading ", n, " bytes at offset ", offset, " failed");
    position_ = offset + n;
  }

  /// Closes the stream used for parsing (tensor data is read through `read_at`).
  void end_parse() noexcept { file_.reset(); }

  /// Reads a byte range of the file through a new stream (for tensor data; safe to call on a const reader).
  void read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t n) const {
    TERNQ_ASSERT(offset <= size_ && n <= size_ - offset);
    if (n == 0) return;
    if (mapped_) {
      map_.read(static_cast<std::size_t>(offset), std::span<std::byte>(reinterpret_cast<std::byte*>(dst), n));
      return;
    }
    if (in_memory()) {
      std::memcpy(dst, bytes_.data() + offset, n);
      return;
    }
    std::ifstream in(path_, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset), std::ios::beg);
    in.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in.good()) fail(errc::io, name_, ": reading ", n, " bytes at offset ", offset, " failed");
  }

 private:
  std::string name_;
  std::vector<std::uint8_t> bytes_;
  mapped_file map_;
  bool mapped_ = false;
  std::filesystem::path path_;
  bool file_backed_ = false;
  std::unique_ptr<std::ifstream> file_;
  std::uint64_t size_ = 0;
  std::uint64_t position_ = 0;
};

/// A bounds-checked sequential parser over a source.
class gguf_cursor {
 public:
  explicit gguf_cursor(gguf_source& src) : src_(src) {}

  [[nodiscard]] std::uint64_t position() const noexcept { return pos_; }
  [[nodiscard]] std::uint64_t remaining() const noexcept { return src_.size() - pos_; }

  /// Throws `corrupt_file` unless `n` more bytes exist; `what` and `key` name what is being read.
  void need(std::uint64_t n, std::string_view what, std::string_view key = {}) const {
    if (n <= remaining()) return;
    fail(errc::corrupt_file, src_.name(), ": truncated file: ", what, key.empty() ? "" : " '", key,
         key.empty() ? "" : "'", " needs ", n, " bytes at offset ", pos_, ", only ", remaining(), " remain");
  }

  template <pack::little_endian_storable T>
  T get(std::string_view what, std::string_view key = {}) {
    need(sizeof(T), what, key);
    std::uint8_t b[sizeof(T)];
    src_.read(pos_, b, sizeof(T));
    pos_ += sizeof(T);
    return pack::load_le<T>(b);
  }

  std::string get_string(std::string_view what, std::string_view key = {}) {
    const auto n = get<std::uint64_t>(what, key);
    need(n, what, key);
    std::string s(static_cast<std::size_t>(n), '\0');
    src_.read(pos_, reinterpret_cast<std::uint8_t*>(s.data()), s.size());
    pos_ += n;
    return s;
  }

  bool get_bool(std::string_view what, std::string_view key) {
    const auto b = get<std::uint8_t>(what, key);
    if (b > 1) fail(errc::corrupt_file, src_.name(), ": ", what, " '", key, "': bool byte ", int(b), " is not 0 or 1");
    return b == 1;
  }

 private:
  gguf_source& src_;
  std::uint64_t pos_ = 0;
};

/// Bytes one stored element of a non-array type occupies at least (strings: their length field).
inline std::uint64_t min_element_bytes(gguf_type t) noexcept {
  switch (t) {
    case gguf_type::uint8:
    case gguf_type::int8:
    case gguf_type::boolean:
      return 1;
    case gguf_type::uint16:
    case gguf_type::int16:
      return 2;
    case gguf_type::uint32:
    case gguf_type::int32:
    case gguf_type::float32:
      return 4;
    default:
      return 8;
  }
}

template <class T>
T get_scalar(gguf_cursor& c, std::string_view key) {
  if constexpr (std::is_same_v<T, bool>) {
    return c.get_bool("the value of", key);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return c.get_string("the value of", key);
  } else {
    return c.get<T>("the value of", key);
  }
}

template <class T>
gguf_array get_array(gguf_cursor& c, std::uint64_t n, std::string_view key) {
  std::vector<T> v;
  v.reserve(static_cast<std::size_t>(n));  // n is bounded by the bytes left (checked by the caller)
  for (std::uint64_t k = 0; k < n; ++k) v.push_back(get_scalar<T>(c, key));
  return gguf_array(std::move(v));
}

/// Reads a scalar of non-array type `t`.
inline gguf_value get_value(gguf_cursor& c, gguf_type t, std::string_view key) {
  switch (t) {
    case gguf_type::uint8:
      return get_scalar<std::uint8_t>(c, key);
    case gguf_type::int8:
      return get_scalar<std::int8_t>(c, key);
    case gguf_type::uint16:
      return get_scalar<std::uint16_t>(c, key);
    case gguf_type::int16:
      return get_scalar<std::int16_t>(c, key);
    case gguf_type::uint32:
      return get_scalar<std::uint32_t>(c, key);
    case gguf_type::int32:
      return get_scalar<std::int32_t>(c, key);
    case gguf_type::float32:
      return get_scalar<float>(c, key);
    case gguf_type::boolean:
      return get_scalar<bool>(c, key);
    case gguf_type::string:
      return get_scalar<std::string>(c, key);
    case gguf_type::uint64:
      return get_scalar<std::uint64_t>(c, key);
    case gguf_type::int64:
      return get_scalar<std::int64_t>(c, key);
    default:
      return get_scalar<double>(c, key);
  }
}

inline gguf_array get_array_of(gguf_cursor& c, gguf_type t, std::uint64_t n, std::string_view key) {
  switch (t) {
    case gguf_type::uint8:
      return get_array<std::uint8_t>(c, n, key);
    case gguf_type::int8:
      return get_array<std::int8_t>(c, n, key);
    case gguf_type::uint16:
      return get_array<std::uint16_t>(c, n, key);
    case gguf_type::int16:
      return get_array<std::int16_t>(c, n, key);
    case gguf_type::uint32:
      return get_array<std::uint32_t>(c, n, key);
    case gguf_type::int32:
      return get_array<std::int32_t>(c, n, key);
    case gguf_type::float32:
      return get_array<float>(c, n, key);
    case gguf_type::boolean:
      return get_array<bool>(c, n, key);
    case gguf_type::string:
      return get_array<std::string>(c, n, key);
    case gguf_type::uint64:
      return get_array<std::uint64_t>(c, n, key);
    case gguf_type::int64:
      return get_array<std::int64_t>(c, n, key);
    default:
      return get_array<double>(c, n, key);
  }
}

inline bool valid_scalar_type(std::int32_t t) noexcept { return t >= 0 && t <= 12 && t != 9; }

}  // namespace detail

}  // namespace ternq::io
