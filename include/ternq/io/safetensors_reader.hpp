// SPDX-License-Identifier: MIT
// safetensors_file: a memory-mapped safetensors file, its header validated, tensors as views or float copies.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/view.hpp"
#include "ternq/io/detail/bytes.hpp"
#include "ternq/io/detail/json.hpp"
#include "ternq/io/detail/read_float.hpp"
#include "ternq/io/float_matrix.hpp"
#include "ternq/io/mapped_file.hpp"
#include "ternq/io/safetensors_dtype.hpp"

namespace ternq::io {

/// One tensor as a (validated) safetensors header describes it.
struct tensor_info {
  std::string name;
  io::dtype type = io::dtype::f32;
  std::vector<std::size_t> shape;  ///< empty for a scalar
  std::size_t begin = 0;           ///< first byte, relative to the data section
  std::size_t end = 0;             ///< one past the last byte

  /// Product of the shape (1 for a scalar).
  [[nodiscard]] std::size_t element_count() const noexcept {
    std::size_t n = 1;
    for (const std::size_t d : shape) n *= d;  // validated not to overflow when the header was read
    return n;
  }
  [[nodiscard]] std::size_t byte_size() const noexcept { return end - begin; }
};

/// A shape as text, "[4096, 11008]", for messages.
inline std::string shape_string(std::span<const std::size_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace detail {

/// The matrix extents of a tensor: a scalar is 1x1, a vector one row, a 2-D tensor itself.
inline std::pair<std::size_t, std::size_t> matrix_extents(const tensor_info& t, std::string_view context) {
  switch (t.shape.size()) {
    case 0:
      return {1, 1};
    case 1:
      return {1, t.shape[0]};
    case 2:
      return {t.shape[0], t.shape[1]};
    default:
      fail(errc::shape_mismatch, context, ": tensor '", t.name, "' has shape ", shape_string(t.shape),
           "; a matrix needs at most 2 dimensions (values() gives the flat elements)");
  }
}

}  // namespace detail

/// A safetensors file (8-byte little-endian header length, a JSON header,
/// then the data section), memory-mapped. The constructor validates the
/// whole header against the file before any tensor byte is touched:
/// header length bounded, JSON well-formed with no repeated key, every tensor
/// with a known dtype, non-negative integer shape and offsets, offsets inside
/// the data section, `shape product x dtype size == end - begin`, and the
/// tensors tiling the data section with no overlap and no hole (as the format
/// requires). Every violation is `[ternq.corrupt_file]` (an unknown dtype
/// name `[ternq.unsupported]`) naming the path and the tensor.
///
/// Tensors of any known dtype are listed; reading one as float needs F32, F16
/// or BF16 (`[ternq.unsupported]` otherwise).
class safetensors_file {
 public:
  /// The largest header accepted (the format's reference implementation uses the same bound).
  static constexpr std::uint64_t max_header_size = 100'000'000;

  explicit safetensors_file(const std::filesystem::path& path)
      : map_(path), context_("safetensors '" + path.string() + "'") {
    parse_header();
  }

  /// A whole safetensors file held in memory (not copied: `bytes` must
  /// outlive the object), validated exactly as a file is; `name` stands for
  /// the path in messages.
  safetensors_file(std::span<const std::byte> bytes, const std::string& name)
      : map_(mapped_file::borrow(bytes, name)), context_("safetensors '" + name + "'") {
    parse_header();
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return map_.path(); }
  /// Every tensor, in data-section order.
  [[nodiscard]] std::span<const tensor_info> tensors() const noexcept { return tensors_; }
  /// The optional `__metadata__` string map.
  [[nodiscard]] const std::map<std::string, std::string, std::less<>>& metadata() const noexcept { return metadata_; }
  /// Where the data section starts in the file (8 + header length).
  [[nodiscard]] std::size_t data_offset() const noexcept { return data_offset_; }

  /// The tensor named `name`, or null.
  [[nodiscard]] const tensor_info* find(std::string_view name) const noexcept {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
  }
  [[nodiscard]] bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }

  /// The tensor named `name`; `[ternq.invalid_argument]` when there is none.
  [[nodiscard]] const tensor_info& info(std::string_view name) const {
    const tensor_info* t = find(name);
    if (t == nullptr) fail(errc::invalid_argument, context_, ": no tensor named '", name, "'");
    return *t;
  }

  /// The tensor's raw little-endian bytes, in place.
  [[nodiscard]] std::span<const std::byte> bytes(std::string_view name) const {
    const tensor_info& t = info(name);
    return map_.bytes().subspan(data_offset_ + t.begin, t.byte_size());
  }

  /// An F32 tensor of at most 2 dimensions viewed in place on the mapping
  /// (a vector is one row). Valid while this object lives. Other dtypes, or
  /// a tensor not 4-byte aligned in the file, are `[ternq.unsupported]`:
  /// `matrix()` converts or copies them.
  [[nodiscard]] matrix_view<const float> view(std::string_view name) const {
    const tensor_info& t = info(name);
    if (t.type != dtype::f32) {
      fail(errc::unsupported, context_, ": tensor '", t.name, "' is ", dtype_name(t.type),
           "; only F32 tensors can be viewed in place (matrix() converts)");
    }
    const auto [rows, cols] = detail::matrix_extents(t, context_);
    if constexpr (std::endian::native != std::endian::little) {
      fail(errc::unsupported, context_, ": in-place views need a little-endian host (matrix() converts)");
    }
    const std::byte* p = map_.bytes().data() + data_offset_ + t.begin;
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(float) != 0) {
      fail(errc::unsupported, context_, ": tensor '", t.name, "' starts at file offset ", data_offset_ + t.begin,
           ", not a multiple of 4, so it cannot be viewed in place (matrix() copies it)");
    }
    return row_major(reinterpret_cast<const float*>(p), rows, cols);
  }

  /// A float copy of a tensor of at most 2 dimensions (F32, F16 or BF16).
  [[nodiscard]] float_matrix matrix(std::string_view name) const {
    const tensor_info& t = info(name);
    const auto [rows, cols] = detail::matrix_extents(t, context_);
    float_matrix m(rows, cols);
    convert(t, m.values());
    return m;
  }

  /// All elements of a tensor of any rank as float, row-major (F32, F16 or BF16).
  [[nodiscard]] std::vector<float> values(std::string_view name) const {
    const tensor_info& t = info(name);
    std::vector<float> v(t.element_count());
    convert(t, v);
    return v;
  }

  /// Converts a tensor (F32, F16 or BF16) into `out`, which must hold exactly its elements.
  void read_values(std::string_view name, std::span<float> out) const { convert(info(name), out); }

  /// Converts rows `[first, first + out.size() / cols)` of a matrix (F32, F16 or BF16) into `out`, whose size
  /// must be a whole number of rows: a model's embedding is read a token at a time, never widened whole.
  void read_rows(std::string_view name, std::size_t first, std::span<float> out) const {
    const tensor_info& t = info(name);
    const auto [rows, cols] = detail::matrix_extents(t, context_);
    if (!is_float_dtype(t.type)) {
      fail(errc::unsupported, context_, ": tensor '", t.name, "' has dtype ", dtype_name(t.type),
           "; ternq reads F32, F16 and BF16");
    }
    if (cols == 0 || out.size() % cols != 0 || first > rows || out.size() / cols > rows - first) {
      fail(errc::shape_mismatch, context_, ": rows from ", first, " of tensor '", t.name, "' (", rows, "x", cols,
           ") cannot fill ", out.size(), " values");
    }
    detail::read_as_float(map_, data_offset_ + t.begin + first * cols * dtype_size(t.type), t.type, out);
  }

 private:
  void convert(const tensor_info& t, std::span<float> out) const {
    if (!is_float_dtype(t.type)) {
      fail(errc::unsupported, context_, ": tensor '", t.name, "' has dtype ", dtype_name(t.type),
           "; ternq reads F32, F16 and BF16");
    }
    if (out.size() != t.element_count()) {
      fail(errc::shape_mismatch, context_, ": tensor '", t.name, "' has ", t.element_count(), " elements, the output ",
           out.size());
    }
    detail::read_as_float(map_, data_offset_ + t.begin, t.type, out);
  }

  void parse_header() {
    const std::span<const std::byte> file = map_.bytes();
    if (file.size() < 8) {
      fail(errc::corrupt_file, context_, ": ", file.size(), " bytes are too few for the 8-byte header length");
    }
    const std::uint64_t header_size = detail::load_u64_le(file.data());
    if (header_size > max_header_size) {
      fail(errc::corrupt_file, context_, ": header length ", header_size, " exceeds the limit of ", max_header_size,
           " bytes");
    }
    if (header_size > file.size() - 8) {
      fail(errc::corrupt_file, context_, ": header length ", header_size, " exceeds the ", file.size() - 8,
           " bytes after the length field");
    }
    data_offset_ = 8 + static_cast<std::size_t>(header_size);
    const std::size_t data_size = file.size() - data_offset_;
    const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), static_cast<std::size_t>(header_size));
    const nlohmann::json header = detail::parse_json(text, context_ + " header");
    if (!header.is_object()) {
      fail(errc::corrupt_file, context_, ": the header is a JSON ", header.type_name(), ", not an object");
    }
    for (const auto& [key, value] : header.items()) {
      if (key == "__metadata__") {
        parse_metadata(value);
      } else {
        tensors_.push_back(parse_tensor(key, value, data_size));
      }
    }
    std::sort(tensors_.begin(), tensors_.end(), [](const tensor_info& a, const tensor_info& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    check_tiling(data_size);
    for (std::size_t i = 0; i < tensors_.size(); ++i) by_name_.emplace(tensors_[i].name, i);
  }

  void parse_metadata(const nlohmann::json& value) {
    if (!value.is_object()) {
      fail(errc::corrupt_file, context_, ": __metadata__ is a JSON ", value.type_name(), ", not an object");
    }
    for (const auto& [k, v] : value.items()) {
      if (!v.is_string()) {
        fail(errc::corrupt_file, context_, ": __metadata__ entry '", k, "' is a JSON ", v.type_name(),
             ", not a string");
      }
      metadata_.emplace(k, v.get<std::string>());
    }
  }

  [[nodiscard]] tensor_info parse_tensor(const std::string& name, const nlohmann::json& value,
                                         std::size_t data_size) const {
    const std::string where = context_ + ": tensor '" + name + "'";
    if (!value.is_object()) fail(errc::corrupt_file, where, " is a JSON ", value.type_name(), ", not an object");
    tensor_info t;
    t.name = name;

    const auto dt = value.find("dtype");
    if (dt == value.end() || !dt->is_string()) fail(errc::corrupt_file, where, ": 'dtype' is missing or not a string");
    const auto type = parse_dtype(dt->get_ref<const std::string&>());
    if (!type) {
      fail(errc::unsupported, where, " has dtype '", dt->get_ref<const std::string&>(),
           "', which is not a safetensors dtype ternq knows");
    }
    t.type = *type;

    const auto shape = value.find("shape");
    if (shape == value.end() || !shape->is_array())
      fail(errc::corrupt_file, where, ": 'shape' is missing or not a list");
    std::uint64_t count = 1;
    for (const auto& d : *shape) {
      if (!d.is_number_unsigned()) {
        fail(errc::corrupt_file, where, ": shape ", detail::json_excerpt(*shape),
             " is not a list of non-negative integers");
      }
      const auto next = detail::checked_mul(count, d.get<std::uint64_t>());
      if (!next)
        fail(errc::corrupt_file, where, ": shape ", detail::json_excerpt(*shape), " has more elements than 2^64");
      count = *next;
      t.shape.push_back(d.get<std::size_t>());
    }

    const auto offsets = value.find("data_offsets");
    if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned()) {
      fail(errc::corrupt_file, where, ": 'data_offsets' ",
           offsets == value.end() ? "is missing" : detail::json_excerpt(*offsets),
           offsets == value.end() ? "" : " is not a pair of non-negative integers");
    }
    const auto begin = (*offsets)[0].get<std::uint64_t>();
    const auto end = (*offsets)[1].get<std::uint64_t>();
    const std::string range = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (begin > end) fail(errc::corrupt_file, where, ": ", range, " end before they begin");
    if (end > data_size) {
      fail(errc::corrupt_file, where, ": ", range, " reach past the end of the ", data_size, "-byte data section");
    }
    const auto needed = detail::checked_mul(count, dtype_size(t.type));
    if (!needed || *needed != end - begin) {
      fail(errc::corrupt_file, where, ": shape ", shape_string(t.shape), " of ", dtype_name(t.type), " needs ",
           needed ? std::to_string(*needed) : std::string("more than 2^64"), " bytes, ", range, " hold ", end - begin);
    }
    t.begin = static_cast<std::size_t>(begin);
    t.end = static_cast<std::size_t>(end);
    return t;
  }

  /// Sorted by offset, the tensors must cover [0, data_size) exactly once.
  void check_tiling(std::size_t data_size) const {
    std::size_t covered = 0;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const tensor_info& t = tensors_[i];
      if (t.begin < covered) {
        const tensor_info& prev = tensors_[i - 1];
        fail(errc::corrupt_file, context_, ": tensors '", prev.name, "' [", prev.begin, ", ", prev.end, ") and '",
             t.name, "' [", t.begin, ", ", t.end, ") overlap");
      }
      if (t.begin > covered) {
        fail(errc::corrupt_file, context_, ": bytes [", covered, ", ", t.begin,
             ") of the data section belong to no tensor");
      }
      covered = t.end;
    }
    if (covered != data_size) {
      fail(errc::corrupt_file, context_, ": bytes [", covered, ", ", data_size,
           ") of the data section belong to no tensor");
    }
  }

  mapped_file map_;
  std::string context_;
  std::size_t data_offset_ = 0;
  std::vector<tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> by_name_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

}  // namespace ternq::io
