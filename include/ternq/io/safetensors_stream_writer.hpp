// SPDX-License-Identifier: MIT
// safetensors_stream_writer: writes a safetensors file whose tensors arrive in pieces, holding one piece at a time.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/io/atomic_output.hpp"
#include "ternq/io/detail/bytes.hpp"
#include "ternq/io/detail/safetensors_header.hpp"
#include "ternq/io/safetensors_dtype.hpp"
#include "ternq/io/safetensors_reader.hpp"

namespace ternq::io {

/// Writes a safetensors file without ever holding a whole tensor: for files
/// larger than memory (a 7B model is 13 GB in BF16), whose values are
/// produced or converted piece by piece.
///
/// Use in three steps:
///  1. describe: `add_tensor(name, dtype, shape)` for every tensor (F32, F16
///     or BF16) and any `set_metadata(key, value)`;
///  2. `open(path)` writes the 8-byte header length and the JSON header
///     (`__metadata__` first when set, then the tensors in declaration
///     order, laid out in that order, padded with spaces so the data section
///     starts at a multiple of 8 bytes, as `safetensors_writer` does);
///  3. `write(values)` any number of times: the row-major values of the
///     tensors in declaration order, in pieces of any size (a piece may end
///     inside a tensor or span several); `close()` checks that every value
///     was written and commits the file.
///
/// Unlike `safetensors_writer`, the layout follows the declaration order (the
/// data cannot be reordered once streamed), so a tensor after one of an odd
/// number of 2-byte elements may not be aligned to its element size; the
/// reader copies such tensors instead of viewing them in place.
///
/// Values are rounded to nearest even as `safetensors_writer` rounds them
/// (F16 overflows to Inf). The bytes go through `atomic_output`: nothing
/// appears under `path` until `close()` succeeds, and a writer destroyed
/// before (an exception, a cancelled job) removes its temporary file.
/// Memory: the descriptions plus one converted block of 64 Ki elements
/// (and `atomic_output`'s 1 MiB buffer), whatever the tensor sizes.
class safetensors_stream_writer {
 public:
  /// Sets (or replaces) a `__metadata__` entry; only before `open`.
  void set_metadata(std::string key, std::string value) {
    require_state(state::describing, "set_metadata");
    metadata_[std::move(key)] = std::move(value);
  }

  /// Declares tensor `name` of `shape` (empty for a scalar), stored as `type`
  /// (F32, F16 or BF16); only before `open`. Names must be unique and not
  /// `__metadata__`.
  void add_tensor(std::string name, dtype type, std::vector<std::size_t> shape) {
    require_state(state::describing, "add_tensor");
    if (!is_float_dtype(type)) {
      fail(errc::unsupported, "safetensors_stream_writer: tensor '", name, "': ternq writes F32, F16 and BF16, not ",
           dtype_name(type));
    }
    if (name.empty() || name == "__metadata__") {
      fail(errc::invalid_argument, "safetensors_stream_writer: '", name, "' is not a valid tensor name");
    }
    if (std::any_of(entries_.begin(), entries_.end(), [&](const entry& e) { return e.name == name; })) {
      fail(errc::invalid_argument, "safetensors_stream_writer: tensor '", name, "' was already added");
    }
    std::uint64_t count = 1;
    for (const std::size_t d : shape) {
      const auto next = detail::checked_mul(count, d);
      if (!next) fail(errc::invalid_argument, "safetensors_stream_writer: tensor '", name, "': shape overflows");
      count = *next;
    }
    const auto bytes = detail::checked_mul(count, dtype_size(type));
    const auto end = bytes ? detail::checked_add(data_size_, *bytes) : std::nullopt;
    if (!end) fail(errc::invalid_argument, "safetensors_stream_writer: tensor '", name, "': the data size overflows");
    data_size_ = *end;
    left_ += count;  // cannot overflow: the byte count did not
    entries_.push_back({std::move(name), type, std::move(shape), count});
  }

  /// Number of tensors declared.
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  /// Bytes of the data section (every tensor declared so far).
  [[nodiscard]] std::uint64_t data_size() const noexcept { return data_size_; }
  /// True between a successful `open` and a successful `close`.
  [[nodiscard]] bool is_open() const noexcept { return state_ == state::open; }
  /// Values still to be written, across all remaining tensors.
  [[nodiscard]] std::uint64_t values_left() const noexcept { return left_; }

  /// Writes the header to a temporary file beside `path` (`[ternq.io]` when
  /// it cannot be created); the data follows through `write`.
  void open(const std::filesystem::path& path) {
    require_state(state::describing, "open");
    std::vector<detail::header_entry> header;
    header.reserve(entries_.size());
    for (const entry& e : entries_) header.push_back({e.name, e.type, &e.shape, e.count * dtype_size(e.type)});
    const std::string text = detail::header_text(metadata_, header, "safetensors_stream_writer");
    out_ = std::make_unique<atomic_output>(path, "safetensors_stream_writer");
    detail::write_header(*out_, text);
    state_ = state::open;
    skip_empty();
  }

  /// Appends `values` to the data: the rest of the current tensor, then the
  /// next ones in declaration order. More values than remain is
  /// `[ternq.shape_mismatch]`, checked before anything of this piece is
  /// written (the writer stays usable).
  void write(std::span<const float> values) {
    require_state(state::open, "write");
    if (values.size() > left_) {
      fail(errc::shape_mismatch, "safetensors_stream_writer: '", out_->path().string(), "': a piece of ", values.size(),
           " values, but only ", left_, " remain to be written",
           current_ < entries_.size() ? " (in tensor '" + entries_[current_].name + "' and after)" : std::string());
    }
    while (!values.empty()) {
      const entry& e = entries_[current_];
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(values.size(), e.count - written_));
      convert(e.type, values.first(n));
      values = values.subspan(n);
      written_ += n;
      left_ -= n;
      if (written_ == e.count) {
        ++current_;
        written_ = 0;
        skip_empty();
      }
    }
  }

  /// Commits the file once every value of every tensor is written. Closing
  /// early is `[ternq.invalid_argument]` naming the first incomplete tensor;
  /// the writer stays open, so the rest can still be written.
  void close() {
    require_state(state::open, "close");
    if (current_ < entries_.size()) {
      const entry& e = entries_[current_];
      fail(errc::invalid_argument, "safetensors_stream_writer: '", out_->path().string(), "': close() with tensor '",
           e.name, "' written ", written_, " of ", e.count, " values and ", entries_.size() - current_ - 1,
           " more tensors after it");
    }
    out_->commit();
    state_ = state::closed;
  }

 private:
  enum class state { describing, open, closed };

  struct entry {
    std::string name;
    dtype type;
    std::vector<std::size_t> shape;
    std::uint64_t count;
  };

  static constexpr const char* state_name(state s) noexcept {
    switch (s) {
      case state::describing:
        return "before open()";
      case state::open:
        return "while open";
      case state::closed:
        return "after close()";
    }
    return "";
  }

  void require_state(state wanted, const char* what) const {
    if (state_ == wanted) return;
    fail(errc::invalid_argument, "safetensors_stream_writer: ", what, "() ", state_name(state_),
         "; it is allowed only ", state_name(wanted));
  }

  /// Moves past tensors without elements, which take no bytes and no values.
  void skip_empty() noexcept {
    while (current_ < entries_.size() && entries_[current_].count == 0) ++current_;
  }

  void convert(dtype type, std::span<const float> values) {
    const std::size_t size = dtype_size(type);
    buffer_.resize(block * size);
    while (!values.empty()) {
      const std::size_t n = std::min(block, values.size());
      std::byte* p = buffer_.data();
      if (type == dtype::f32) {
        for (std::size_t i = 0; i < n; ++i) detail::store_f32_le(p + 4 * i, values[i]);
      } else if (type == dtype::f16) {
        for (std::size_t i = 0; i < n; ++i) detail::store_u16_le(p + 2 * i, fp32_to_fp16_bits(values[i]));
      } else {
        for (std::size_t i = 0; i < n; ++i) detail::store_u16_le(p + 2 * i, fp32_to_bf16_bits(values[i]));
      }
      out_->write(std::span(buffer_).first(n * size));
      values = values.subspan(n);
    }
  }

  static constexpr std::size_t block = std::size_t{1} << 16U;  // elements converted per write

  std::map<std::string, std::string> metadata_;
  std::vector<entry> entries_;
  std::uint64_t data_size_ = 0;
  state state_ = state::describing;
  std::unique_ptr<atomic_output> out_;
  std::size_t current_ = 0;        // the tensor being written
  std::uint64_t written_ = 0;      // its values written so far
  std::uint64_t left_ = 0;         // values still to be written, all tensors
  std::vector<std::byte> buffer_;  // one converted block
};

}  // namespace ternq::io
