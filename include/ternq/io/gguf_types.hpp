// SPDX-License-Identifier: MIT
// GGUF vocabulary: metadata value types, typed values and arrays, the ordered key-value list, tensor infos.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/pack/ggml_types.hpp"

namespace ternq::io {

/// `"GGUF"`, the first four bytes of a file.
inline constexpr std::uint32_t gguf_magic = 0x46554747U;  // "GGUF" read as a little-endian u32
/// The version ternq writes.
inline constexpr std::uint32_t gguf_version = 3;
/// The data alignment when `general.alignment` is absent.
inline constexpr std::uint32_t gguf_default_alignment = 32;
/// Tensor names are shorter than this many bytes (ggml's GGML_MAX_NAME, NUL included).
inline constexpr std::size_t gguf_max_name_bytes = 64;
/// At most this many extents per tensor.
inline constexpr std::size_t gguf_max_dims = 4;
/// The alignment key.
inline constexpr std::string_view gguf_alignment_key = "general.alignment";

/// Metadata value type ids, as stored (an i32 in the file).
enum class gguf_type : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

/// The type's name as GGUF documents spell it ("UINT32").
constexpr std::string_view gguf_type_name(gguf_type t) noexcept {
  constexpr std::string_view names[] = {"UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                        "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
  const auto k = static_cast<std::size_t>(t);
  return k < 13 ? names[k] : std::string_view("INVALID");
}

/// An array value: elements of one non-array type. The alternatives follow
/// the type ids, skipping ARRAY (arrays do not nest).
class gguf_array {
 public:
  using storage = std::variant<std::vector<std::uint8_t>, std::vector<std::int8_t>, std::vector<std::uint16_t>,
                               std::vector<std::int16_t>, std::vector<std::uint32_t>, std::vector<std::int32_t>,
                               std::vector<float>, std::vector<bool>, std::vector<std::string>,
                               std::vector<std::uint64_t>, std::vector<std::int64_t>, std::vector<double>>;

  gguf_array() = default;
  /// An array of the vector's element type.
  template <class T>
  requires std::is_constructible_v<storage, std::vector<T>> gguf_array(std::vector<T> values)  // NOLINT: implicit
      : values_(std::move(values)) {}

  /// The element type (never ARRAY).
  [[nodiscard]] gguf_type element_type() const noexcept {
    const std::size_t k = values_.index();
    return static_cast<gguf_type>(k < 9 ? k : k + 1);
  }
  [[nodiscard]] std::size_t size() const noexcept {
    return std::visit([](const auto& v) { return v.size(); }, values_);
  }
  [[nodiscard]] const storage& values() const noexcept { return values_; }
  /// The elements as `std::vector<T>`; throws `invalid_argument` for another element type.
  template <class T>
  [[nodiscard]] const std::vector<T>& get() const {
    const auto* v = std::get_if<std::vector<T>>(&values_);
    if (v == nullptr) {
      fail(errc::invalid_argument, "gguf_array: the elements are ", gguf_type_name(element_type()),
           ", not the requested type");
    }
    return *v;
  }

  friend bool operator==(const gguf_array&, const gguf_array&) = default;

 private:
  storage values_;
};

/// A metadata value. The alternatives follow the type ids, so
/// `value.index()` is the stored type id.
using gguf_value = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t,
                                float, bool, std::string, gguf_array, std::uint64_t, std::int64_t, double>;

/// The type id of a value.
inline gguf_type type_of(const gguf_value& v) noexcept { return static_cast<gguf_type>(v.index()); }

/// One key-value pair.
struct gguf_kv {
  std::string key;
  gguf_value value;
  friend bool operator==(const gguf_kv&, const gguf_kv&) = default;
};

/// The metadata of a GGUF file: key-value pairs in file order, keys unique
/// and non-empty.
class gguf_metadata {
 public:
  /// Appends a pair; throws `invalid_argument` for an empty or duplicated key.
  void add(std::string key, gguf_value value) { insert(entries_.size(), std::move(key), std::move(value)); }

  /// Inserts a pair at `position` (0 = first); same checks as `add`.
  void insert(std::size_t position, std::string key, gguf_value value) {
    if (key.empty()) fail(errc::invalid_argument, "gguf_metadata: empty key");
    if (index_.count(key) != 0) fail(errc::invalid_argument, "gguf_metadata: duplicated key '", key, "'");
    if (position > entries_.size()) position = entries_.size();
    entries_.insert(entries_.begin() + static_cast<std::ptrdiff_t>(position),
                    gguf_kv{std::move(key), std::move(value)});
    reindex(position);
  }

  /// Replaces the value of `key` in place, or appends the pair.
  void assign(std::string key, gguf_value value) {
    if (auto it = index_.find(key); it != index_.end()) {
      entries_[it->second].value = std::move(value);
      return;
    }
    add(std::move(key), std::move(value));
  }

  /// The value of `key`, or null.
  [[nodiscard]] const gguf_value* find(std::string_view key) const noexcept {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries_[it->second].value;
  }
  [[nodiscard]] bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }

  /// The value of `key` as `T` (one of `gguf_value`'s alternatives); throws
  /// `invalid_argument` when the key is absent or holds another type.
  template <class T>
  [[nodiscard]] const T& get(std::string_view key) const {
    const gguf_value* v = find(key);
    if (v == nullptr) fail(errc::invalid_argument, "gguf_metadata: no key '", key, "'");
    const T* typed = std::get_if<T>(v);
    if (typed == nullptr) {
      fail(errc::invalid_argument, "gguf_metadata: key '", key, "' holds ", gguf_type_name(type_of(*v)),
           ", not the requested type");
    }
    return *typed;
  }

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] const std::vector<gguf_kv>& entries() const noexcept { return entries_; }
  [[nodiscard]] auto begin() const noexcept { return entries_.begin(); }
  [[nodiscard]] auto end() const noexcept { return entries_.end(); }

  friend bool operator==(const gguf_metadata& a, const gguf_metadata& b) { return a.entries_ == b.entries_; }

 private:
  void reindex(std::size_t from) {
    for (std::size_t k = from; k < entries_.size(); ++k) index_[entries_[k].key] = k;
  }

  std::vector<gguf_kv> entries_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

/// One tensor of a GGUF file.
struct gguf_tensor_info {
  std::string name;
  pack::ggml_type type = pack::ggml_type::f32;
  std::vector<std::int64_t> ne;  ///< extents, `ne[0]` innermost (a `[out, in]` matrix has `ne = [in, out]`)
  std::uint64_t offset = 0;      ///< from the start of the data section
  std::uint64_t size = 0;        ///< bytes of data

  /// `ne[0]`: elements per row.
  [[nodiscard]] std::size_t cols() const noexcept { return ne.empty() ? 1 : static_cast<std::size_t>(ne[0]); }
  /// The product of the other extents.
  [[nodiscard]] std::size_t rows() const noexcept {
    std::size_t r = 1;
    for (std::size_t k = 1; k < ne.size(); ++k) r *= static_cast<std::size_t>(ne[k]);
    return r;
  }
  friend bool operator==(const gguf_tensor_info&, const gguf_tensor_info&) = default;
};

/// `x` rounded up to a multiple of `alignment` (a power of two).
constexpr std::uint64_t gguf_align(std::uint64_t x, std::uint64_t alignment) noexcept {
  return (x + alignment - 1) & ~(alignment - 1);
}

}  // namespace ternq::io
