// SPDX-License-Identifier: MIT
// A validating GGUF reader: header, metadata and tensor infos checked against the file size; tensor data on demand.
#pragma once

#include <algorithm>
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
#include "ternq/io/detail/gguf_parse.hpp"
#include "ternq/io/gguf_types.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/ggml_types.hpp"
#include "ternq/pack/to_float.hpp"
#include "ternq/pack/unpack.hpp"

namespace ternq::io {

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
/// `map` maps the file read-only (tensor data still copied on demand with
/// pread, or viewed in place with `tensor_bytes`); `from_bytes` parses a
/// buffer it owns and also gives views of the data.
class gguf_reader {
 public:
  /// Parses the file at `path`.
  static gguf_reader open(const std::filesystem::path& path) {
    return gguf_reader(
        std::make_shared<detail::gguf_source>(path, ternq::detail::concat("gguf_reader '", path.string(), "'")));
  }
  /// Maps the file at `path` read-only and parses it: `tensor_bytes` then views tensor data in the mapping (no
  /// copy; pages are read from the file as they are touched). The file must not shrink while mapped.
  static gguf_reader map(const std::filesystem::path& path) {
    std::string name = ternq::detail::concat("gguf_reader '", path.string(), "'");
    return gguf_reader(std::make_shared<detail::gguf_source>(mapped_file(path), std::move(name)));
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
  /// Whether `tensor_bytes` views the data in place: readers made by `map` or `from_bytes`.
  [[nodiscard]] bool views_data() const noexcept { return source_->in_memory(); }
  /// Whether the reader maps its file (`map`).
  [[nodiscard]] bool mapped() const noexcept { return source_->mapped(); }
  /// A view of a tensor's bytes, valid while the reader (or a copy of it) lives; only for readers made by
  /// `map` or `from_bytes`.
  [[nodiscard]] std::span<const std::uint8_t> tensor_bytes(const gguf_tensor_info& info) const {
    if (!source_->in_memory()) {
      fail(errc::invalid_argument, source_->name(),
           ": tensor_bytes() needs a reader made by map() or from_bytes(); use "
           "read_tensor_data()");
    }
    return source_->memory().subspan(static_cast<std::size_t>(data_offset_ + info.offset),
                                     static_cast<std::size_t>(info.size));
  }

  /// A tensor dequantized to floats with ggml's rules (`rows()` x `cols()`, row-major).
  [[nodiscard]] std::vector<float> read_floats(const gguf_tensor_info& info) const {
    return pack::to_float(info.type, read_tensor_data(info), info.rows(), info.cols());
  }
  /// Rows `[first, first + out.size() / cols())` of a 2-D tensor dequantized into `out` (a whole number of
  /// rows): every ggml row is a whole number of blocks, so a row range is a byte range.
  void read_rows(const gguf_tensor_info& info, std::uint64_t first, std::span<float> out) const {
    const std::uint64_t rows = info.rows(), cols = info.cols();
    if (cols == 0 || out.size() % cols != 0 || first > rows || out.size() / cols > rows - first) {
      fail(errc::shape_mismatch, source_->name(), ": rows from ", first, " of tensor '", info.name, "' (", rows, "x",
           cols, ") cannot fill ", out.size(), " values");
    }
    const std::uint64_t n = out.size() / cols;
    if (pack::traits_of(info.type).tensor_trailer != 0) {  // a per-tensor trailer (I2_S): rows are not byte ranges
      const std::vector<float> all = read_floats(info);
      std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(first * cols), out.size(), out.begin());
      return;
    }
    const std::uint64_t row_bytes = info.size / rows;
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(n * row_bytes));
    source_->read_at(data_offset_ + info.offset + first * row_bytes, bytes.data(), bytes.size());
    pack::to_float_into(info.type, bytes, static_cast<std::size_t>(n), static_cast<std::size_t>(cols), out);
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
