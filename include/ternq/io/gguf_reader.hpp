// SPDX-License-Identifier: MIT
// A validating GGUF reader: header, metadata and tensor infos checked against the file size; tensor data on demand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/io/gguf_types.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/ggml_types.hpp"
#include "ternq/pack/to_float.hpp"
#include "ternq/pack/unpack.hpp"

namespace ternq::io {

namespace detail {

/// Where the bytes come from: a buffer in memory, or a file read in order.
class gguf_source {
 public:
  gguf_source(std::vector<std::uint8_t> bytes, std::string name)
      : name_(std::move(name)), bytes_(std::move(bytes)), size_(bytes_.size()) {}
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
  [[nodiscard]] bool in_memory() const noexcept { return !file_backed_; }
  [[nodiscard]] std::span<const std::uint8_t> memory() const noexcept { return bytes_; }

  /// Reads `n` bytes at `offset`; the range must lie inside the source (the caller checks).
  void read(std::uint64_t offset, std::uint8_t* dst, std::size_t n) {
    TERNQ_ASSERT(offset <= size_ && n <= size_ - offset);
    if (n == 0) return;
    if (in_memory()) {
      std::memcpy(dst, bytes_.data() + offset, n);
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

/// Reads a GGUF file (version 2 or 3) and validates it as ggml's loader
/// does, with `corrupt_file` errors that say what is wrong and where:
/// magic, version, counts that cannot fit the file, truncated strings and
/// arrays, invalid or nested value types, bool bytes other than 0/1, empty
/// or duplicated keys, `general.alignment` not a UINT32 power of two,
/// tensor names of 64 bytes or more or duplicated, more than 4 extents,
/// negative extents, `ne[0]` not a multiple of the block, offsets other than
/// the running padded sum, and data reaching past the end of the file.
/// Every read is checked against the file size first, so hostile input
/// cannot make it read out of bounds or allocate more than the file holds.
/// Tensor types ternq does not know are `unsupported`.
///
/// `open` keeps only the header in memory and reads tensor data on demand;
/// `from_bytes` parses a buffer it owns and also gives views of the data.
class gguf_reader {
 public:
  /// Parses the file at `path`.
  static gguf_reader open(const std::filesystem::path& path) {
    return gguf_reader(
        std::make_shared<detail::gguf_source>(path, ternq::detail::concat("gguf_reader '", path.string(), "'")));
  }
  /// Parses a whole file held in memory.
  static gguf_reader from_bytes(std::vector<std::uint8_t> bytes) {
    return gguf_reader(std::make_shared<detail::gguf_source>(std::move(bytes), "gguf_reader"));
  }

  [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
  [[nodiscard]] std::uint32_t alignment() const noexcept { return alignment_; }
  /// File offset of the data section (tensor offsets are relative to it).
  [[nodiscard]] std::uint64_t data_offset() const noexcept { return data_offset_; }
  [[nodiscard]] std::uint64_t file_size() const noexcept { return source_->size(); }
  [[nodiscard]] const gguf_metadata& metadata() const noexcept { return metadata_; }
  [[nodiscard]] const std::vector<gguf_tensor_info>& tensors() const noexcept { return tensors_; }

  /// The tensor named `name`, or null.
  [[nodiscard]] const gguf_tensor_info* find_tensor(std::string_view name) const noexcept {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
  }
  /// The tensor named `name`; throws `invalid_argument` when absent.
  [[nodiscard]] const gguf_tensor_info& tensor(std::string_view name) const {
    const gguf_tensor_info* t = find_tensor(name);
    if (t == nullptr) fail(errc::invalid_argument, source_->name(), ": no tensor '", name, "'");
    return *t;
  }

  /// Copies a tensor's bytes into `out` (exactly `info.size` bytes).
  void read_tensor_data(const gguf_tensor_info& info, std::span<std::uint8_t> out) const {
    if (out.size() != info.size) {
      fail(errc::shape_mismatch, source_->name(), ": tensor '", info.name, "' has ", info.size, " bytes, not ",
           out.size());
    }
    source_->read_at(data_offset_ + info.offset, out.data(), out.size());
  }
  /// A tensor's bytes.
  [[nodiscard]] std::vector<std::uint8_t> read_tensor_data(const gguf_tensor_info& info) const {
    std::vector<std::uint8_t> out(static_cast<std::size_t>(info.size));
    read_tensor_data(info, out);
    return out;
  }
  /// A view of a tensor's bytes; only for readers made by `from_bytes`.
  [[nodiscard]] std::span<const std::uint8_t> tensor_bytes(const gguf_tensor_info& info) const {
    if (!source_->in_memory()) {
      fail(errc::invalid_argument, source_->name(),
           ": tensor_bytes() needs a reader made by from_bytes(); use "
           "read_tensor_data()");
    }
    return source_->memory().subspan(static_cast<std::size_t>(data_offset_ + info.offset),
                                     static_cast<std::size_t>(info.size));
  }

  /// A tensor dequantized to floats with ggml's rules (`rows()` x `cols()`, row-major).
  [[nodiscard]] std::vector<float> read_floats(const gguf_tensor_info& info) const {
    return pack::to_float(info.type, read_tensor_data(info), info.rows(), info.cols());
  }
  /// A ternary tensor unpacked into a `ternary_matrix` (`rows()` x `cols()`, one group per block).
  [[nodiscard]] ternary_matrix read_ternary(const gguf_tensor_info& info) const {
    const auto f = pack::format_of(info.type);
    if (!f) {
      fail(errc::invalid_argument, source_->name(), ": tensor '", info.name, "' is ", pack::ggml_type_name(info.type),
           ", not a ternary format");
    }
    return pack::unpack(*f, read_tensor_data(info), info.rows(), info.cols());
  }

 private:
  explicit gguf_reader(std::shared_ptr<detail::gguf_source> source) : source_(std::move(source)) {
    parse();
    source_->end_parse();
  }

  template <class... Args>
  [[noreturn]] void corrupt(const Args&... args) const {
    fail(errc::corrupt_file, source_->name(), ": ", args...);
  }

  void parse() {
    detail::gguf_cursor c(*source_);
    c.need(4, "the magic");
    std::uint8_t magic[4];
    source_->read(0, magic, 4);
    if (pack::load_le<std::uint32_t>(magic) != gguf_magic) {
      std::string shown;
      for (const std::uint8_t b : magic) {
        if (b >= 0x20 && b < 0x7F && b != '"' && b != '\\') {
          shown += static_cast<char>(b);
        } else {
          static constexpr char hex[] = "0123456789abcdef";
          const char escaped[] = {'\\', 'x', hex[b >> 4U], hex[b & 15U], '\0'};
          shown += escaped;
        }
      }
      corrupt("bad magic \"", shown, "\" (expected \"GGUF\")");
    }
    static_cast<void>(c.get<std::uint32_t>("the magic"));
    version_ = c.get<std::uint32_t>("the version");
    if (version_ != 2 && version_ != 3) {
      fail(errc::unsupported, source_->name(), ": GGUF version ", version_, " is not supported (2 and 3 are)");
    }
    const auto n_tensors = c.get<std::uint64_t>("the tensor count");
    const auto n_kv = c.get<std::uint64_t>("the key-value count");
    // Each pair takes at least 13 bytes (key length, type, one byte of
    // value); each tensor info at least 24 (name length, n_dims, type, offset).
    if (n_kv > c.remaining() / 13) corrupt("the header declares ", n_kv, " key-value pairs, more than the file holds");
    if (n_tensors > c.remaining() / 24)
      corrupt("the header declares ", n_tensors, " tensors, more than the file holds");

    for (std::uint64_t k = 0; k < n_kv; ++k) read_kv(c, k);
    alignment_ = gguf_default_alignment;
    if (const gguf_value* a = metadata_.find(gguf_alignment_key)) {
      const auto* u = std::get_if<std::uint32_t>(a);
      if (u == nullptr) corrupt(gguf_alignment_key, " is ", gguf_type_name(type_of(*a)), ", not UINT32");
      if (*u == 0 || (*u & (*u - 1)) != 0) corrupt(gguf_alignment_key, " = ", *u, " is not a power of two");
      alignment_ = *u;
    }

    tensors_.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t k = 0; k < n_tensors; ++k) read_tensor_info(c, k);

    data_offset_ = gguf_align(c.position(), alignment_);
    std::uint64_t expected = 0;
    for (const gguf_tensor_info& t : tensors_) {
      if (t.offset != expected) corrupt("tensor '", t.name, "' has offset ", t.offset, ", expected ", expected);
      const std::uint64_t begin = data_offset_ + t.offset;
      if (begin > file_size() || t.size > file_size() - begin) {
        corrupt("tensor '", t.name, "' data [", begin, ", ", begin + t.size, ") extends beyond the end of the file (",
                file_size(), " bytes)");
      }
      expected = t.offset + gguf_align(t.size, alignment_);
    }
  }

  void read_kv(detail::gguf_cursor& c, std::uint64_t index) {
    const std::string key = c.get_string(ternq::detail::concat("the key of pair ", index));
    if (key.empty()) corrupt("key ", index, " is empty");
    if (metadata_.contains(key)) corrupt("duplicated key '", key, "'");
    const auto type = c.get<std::int32_t>("the type of", key);
    gguf_value value;
    if (type == static_cast<std::int32_t>(gguf_type::array)) {
      const auto element = c.get<std::int32_t>("the element type of", key);
      if (element == static_cast<std::int32_t>(gguf_type::array)) corrupt("key '", key, "' is an array of arrays");
      if (!detail::valid_scalar_type(element)) corrupt("key '", key, "' has invalid element type ", element);
      const auto n = c.get<std::uint64_t>("the element count of", key);
      const auto et = static_cast<gguf_type>(element);
      if (n > c.remaining() / detail::min_element_bytes(et)) {
        corrupt("key '", key, "' declares ", n, " ", gguf_type_name(et), " elements, more than the file holds");
      }
      value = detail::get_array_of(c, et, n, key);
    } else {
      if (!detail::valid_scalar_type(type)) corrupt("key '", key, "' has invalid value type ", type);
      value = detail::get_value(c, static_cast<gguf_type>(type), key);
    }
    metadata_.add(key, std::move(value));
  }

  void read_tensor_info(detail::gguf_cursor& c, std::uint64_t index) {
    gguf_tensor_info t;
    t.name = c.get_string(ternq::detail::concat("the name of tensor ", index));
    if (t.name.size() >= gguf_max_name_bytes) {
      corrupt("tensor ", index, " has a name of ", t.name.size(), " bytes (at most ", gguf_max_name_bytes - 1, ")");
    }
    if (by_name_.count(t.name) != 0) corrupt("duplicated tensor name '", t.name, "'");
    const auto n_dims = c.get<std::uint32_t>("the dimension count of tensor", t.name);
    if (n_dims > gguf_max_dims) corrupt("tensor '", t.name, "' has ", n_dims, " dimensions (at most 4)");
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      t.ne.push_back(c.get<std::int64_t>("the extents of tensor", t.name));
      if (t.ne.back() < 0) corrupt("tensor '", t.name, "' has a negative extent ne[", d, "] = ", t.ne.back());
    }
    const auto type = c.get<std::int32_t>("the type of tensor", t.name);
    if (type < 0 || pack::find_ggml_type(static_cast<std::uint32_t>(type)) == nullptr) {
      fail(errc::unsupported, source_->name(), ": tensor '", t.name, "' has ggml type ", type,
           ", which ternq does not read");
    }
    t.type = static_cast<pack::ggml_type>(type);
    t.size = pack::ggml_nbytes(t.type, t.ne, errc::corrupt_file,
                               ternq::detail::concat(source_->name(), ": tensor '", t.name, "'"));
    t.offset = c.get<std::uint64_t>("the offset of tensor", t.name);
    by_name_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  std::shared_ptr<detail::gguf_source> source_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = gguf_default_alignment;
  std::uint64_t data_offset_ = 0;
  gguf_metadata metadata_;
  std::vector<gguf_tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> by_name_;
};

}  // namespace ternq::io
