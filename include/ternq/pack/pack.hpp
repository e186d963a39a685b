// SPDX-License-Identifier: MIT
// Packing a ternary_matrix into a block format (checked, refit only on request) and unpacking it back.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/compatibility.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/i2_s.hpp"
#include "ternq/pack/pq2_0.hpp"
#include "ternq/pack/ptq1_0.hpp"
#include "ternq/pack/q2_0.hpp"
#include "ternq/pack/refit.hpp"
#include "ternq/pack/tq1_0.hpp"
#include "ternq/pack/tq2_0.hpp"

namespace ternq::pack {

/// A packed matrix: the bytes of one ggml tensor of `rows x cols`
/// (`ne = [cols, rows]`), and the re-fit record when one was requested and needed.
struct packed_tensor {
  format fmt = format::tq2_0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<std::uint8_t> data;
  std::optional<refit_report> refit;  ///< set exactly when the weights were re-fitted

  [[nodiscard]] ggml_type type() const noexcept { return ggml_type_of(fmt); }
  /// GGUF extents: `ne[0]` = columns (innermost), `ne[1]` = rows.
  [[nodiscard]] std::array<std::int64_t, 2> ne() const noexcept {
    return {static_cast<std::int64_t>(cols), static_cast<std::int64_t>(rows)};
  }
};

namespace detail {

/// Calls `fn(codec{})` with the block codec of `f` (not I2_S).
template <class Fn>
decltype(auto) with_block_codec(format f, Fn&& fn) {
  switch (f) {
    case format::tq1_0:
      return fn(tq1_0{});
    case format::tq2_0:
      return fn(tq2_0{});
    case format::q2_0:
      return fn(q2_0{});
    case format::pq2_0:
      return fn(pq2_0{});
    case format::ptq1_0:
      return fn(ptq1_0{});
    case format::i2_s:
      break;
  }
  fail(errc::unsupported, "pack: ", name_of(f), " is not a block-scaled format");
}

template <class Codec>
void encode_blocks(const ternary_matrix& q, std::span<std::uint8_t> out) noexcept {
  const group_layout& layout = q.layout();
  std::uint8_t* dst = out.data();
  for (std::size_t i = 0; i < q.rows(); ++i) {
    const std::int8_t* codes = q.row_codes(i).data();
    // Walk the groups alongside the blocks (no division per block); a
    // compatible matrix has one scale per block, the scale of the group
    // holding its first element.
    std::size_t k = 0;
    std::size_t group_end = layout.end(0);
    std::uint16_t d = fp32_to_fp16_bits(q.scale(i, 0));
    for (std::size_t begin = 0; begin < q.cols(); begin += Codec::elements) {
      while (begin >= group_end) {
        ++k;
        group_end = layout.end(k);
        d = fp32_to_fp16_bits(q.scale(i, k));
      }
      Codec::encode(codes + begin, d, dst);
      dst += Codec::bytes;
    }
  }
}

inline void encode_i2_s(const ternary_matrix& q, std::span<std::uint8_t> out) noexcept {
  const std::span<const std::int8_t> codes = q.codes();
  const std::size_t groups = codes.size() / i2_s::elements;
  for (std::size_t g = 0; g < groups; ++g)
    i2_s::encode(codes.data() + g * i2_s::elements, out.data() + g * i2_s::bytes);
  std::uint8_t* trailer = out.data() + groups * i2_s::bytes;
  std::fill(trailer, trailer + i2_s_trailer_bytes, std::uint8_t{0});
  store_le(trailer, q.scale(0, 0));
}

/// Packs a matrix known to be compatible into `out` (exactly `packed_size` bytes).
inline void encode(const ternary_matrix& q, format f, std::span<std::uint8_t> out) {
  if (f == format::i2_s) {
    encode_i2_s(q, out);
    return;
  }
  with_block_codec(f, [&](auto codec) { encode_blocks<decltype(codec)>(q, out); });
}

inline void require_size(format f, std::size_t got, std::size_t rows, std::size_t cols, const char* what) {
  const std::size_t expected = packed_size(f, rows, cols);
  if (got != expected) {
    fail(errc::shape_mismatch, what, " ", name_of(f), ": ", got, " bytes for a ", rows, "x", cols, " matrix (expected ",
         expected, ")");
  }
}

}  // namespace detail

/// Packs `q` into `out` (exactly `packed_size(f, rows, cols)` bytes) without
/// allocating. Strict: any conflict (see `find_conflict`) throws; nothing is
/// re-fitted. Scales are rounded to fp16 (f32 for I2_S), the format's
/// precision; codes are stored exactly.
inline void pack_into(const ternary_matrix& q, format f, std::span<std::uint8_t> out) {
  require_compatible(q, f);
  detail::require_size(f, out.size(), q.rows(), q.cols(), "pack");
  detail::encode(q, f, out);
}

/// Packs `q` into a new tensor of format `f`. A conflict throws its
/// `ternq::error`, unless it is one a re-fit resolves and
/// `options.refit == refit_policy::symmetric_per_block`: then the matrix is
/// re-fitted (`refit_symmetric`), and the result's `refit` records why and
/// the relative weight error. A compatible matrix is never re-fitted.
inline packed_tensor pack(const ternary_matrix& q, format f, const pack_options& options = {}) {
  packed_tensor p;
  p.fmt = f;
  p.rows = q.rows();
  p.cols = q.cols();
  std::optional<conflict> c = find_conflict(q, f);
  if (!c) {
    p.data.resize(packed_size(f, q.rows(), q.cols()));
    detail::encode(q, f, p.data);
    return p;
  }
  if (!c->refittable || options.refit == refit_policy::none) throw error(c->code, c->message);
  refit_report report{std::move(c->message), 0.0};
  const ternary_matrix fitted = refit_symmetric(q, f, &report.relative_error);
  require_compatible(fitted, f);  // what a re-fit cannot fix (a scale beyond fp16)
  p.data.resize(packed_size(f, q.rows(), q.cols()));
  detail::encode(fitted, f, p.data);
  p.refit = std::move(report);
  return p;
}

}  // namespace ternq::pack
