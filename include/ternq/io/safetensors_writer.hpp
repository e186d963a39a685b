// SPDX-License-Identifier: MIT
// safetensors_writer: writes float tensors as F32, F16 or BF16 safetensors files in a deterministic layout.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/core/view.hpp"
#include "ternq/io/atomic_output.hpp"
#include "ternq/io/detail/bytes.hpp"
#include "ternq/io/detail/safetensors_header.hpp"
#include "ternq/io/safetensors_dtype.hpp"
#include "ternq/io/safetensors_reader.hpp"

namespace ternq::io {

/// Collects float tensors and writes them as one safetensors file.
///
/// The layout does not depend on the order of `add` calls: tensors are laid
/// out by element size (largest first, so every tensor is aligned to its own
/// element size) and then by name, the header lists `__metadata__` (when
/// set) and then the tensors in that order, and it is padded with spaces so
/// the data section starts at a multiple of 8 bytes. Floats are stored
/// rounded to nearest even (F16 overflows to Inf, as IEEE conversion does).
///
/// The writer does not copy: `add` keeps a view of the caller's values and
/// `write` reads them, so they must stay alive (and unchanged) until then.
class safetensors_writer {
 public:
  /// Sets (or replaces) a `__metadata__` entry.
  void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

  /// Adds tensor `name` of `shape` (empty for a scalar) whose row-major
  /// elements are `values`, to be stored as `type` (F32, F16 or BF16).
  void add(std::string name, dtype type, std::vector<std::size_t> shape, std::span<const float> values) {
    std::size_t count = 1;
    for (const std::size_t d : shape) {
      const auto next = detail::checked_mul(count, d);
      if (!next) fail(errc::invalid_argument, "safetensors_writer: tensor '", name, "': shape overflows");
      count = static_cast<std::size_t>(*next);
    }
    if (count != values.size()) {
      fail(errc::shape_mismatch, "safetensors_writer: tensor '", name, "' of shape ", shape_string(shape), " needs ",
           count, " values, got ", values.size());
    }
    push(std::move(name), type, std::move(shape), matrix_view<const float>(values.data(), 1, values.size(), 0, 1));
  }

  /// Adds a 2-D tensor from a view (any strides), to be stored as `type`.
  void add(std::string name, dtype type, matrix_view<const float> m) {
    std::vector<std::size_t> shape{m.rows(), m.cols()};
    push(std::move(name), type, std::move(shape), m);
  }

  /// Number of tensors added.
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

  /// Writes the file (through a temporary file beside it, fsynced and renamed when complete (atomic_output));
  /// `[ternq.io]` on failure.
  void write(const std::filesystem::path& path) const {
    std::vector<std::size_t> order(entries_.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const entry& x = entries_[a];
      const entry& y = entries_[b];
      if (dtype_size(x.type) != dtype_size(y.type)) return dtype_size(x.type) > dtype_size(y.type);
      return x.name < y.name;
    });

    std::vector<detail::header_entry> header;
    header.reserve(order.size());
    for (const std::size_t i : order) {
      const entry& e = entries_[i];
      header.push_back({e.name, e.type, &e.shape, e.view.size() * dtype_size(e.type)});
    }
    const std::string text = detail::header_text(metadata_, header, "safetensors_writer");
    atomic_output out(path, "safetensors_writer");
    detail::write_header(out, text);
    for (const std::size_t i : order) write_tensor(out, entries_[i]);
    out.commit();
  }

 private:
  struct entry {
    std::string name;
    dtype type;
    std::vector<std::size_t> shape;
    matrix_view<const float> view;
  };

  void push(std::string name, dtype type, std::vector<std::size_t> shape, matrix_view<const float> view) {
    if (!is_float_dtype(type)) {
      fail(errc::unsupported, "safetensors_writer: tensor '", name, "': ternq writes F32, F16 and BF16, not ",
           dtype_name(type));
    }
    if (name.empty() || name == "__metadata__") {
      fail(errc::invalid_argument, "safetensors_writer: '", name, "' is not a valid tensor name");
    }
    if (std::any_of(entries_.begin(), entries_.end(), [&](const entry& e) { return e.name == name; })) {
      fail(errc::invalid_argument, "safetensors_writer: tensor '", name, "' was already added");
    }
    entries_.push_back({std::move(name), type, std::move(shape), view});
  }

  static void write_tensor(atomic_output& out, const entry& e) {
    constexpr std::size_t chunk = 4096;  // elements converted per write
    std::vector<std::byte> buffer(chunk * dtype_size(e.type));
    std::size_t used = 0;
    for (std::size_t i = 0; i < e.view.rows(); ++i) {
      for (std::size_t j = 0; j < e.view.cols(); ++j) {
        std::byte* p = buffer.data() + used * dtype_size(e.type);
        const float x = e.view(i, j);
        if (e.type == dtype::f32) {
          detail::store_f32_le(p, x);
        } else if (e.type == dtype::f16) {
          detail::store_u16_le(p, fp32_to_fp16_bits(x));
        } else {
          detail::store_u16_le(p, fp32_to_bf16_bits(x));
        }
        if (++used == chunk) {
          out.write(buffer);
          used = 0;
        }
      }
    }
    out.write(std::span(buffer).first(used * dtype_size(e.type)));
  }

  std::map<std::string, std::string> metadata_;
  std::vector<entry> entries_;
};

}  // namespace ternq::io
