// SPDX-License-Identifier: MIT
// The ternary storage formats ternq packs into, and their ggml type ids and sizes.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

#include "ternq/pack/ggml_types.hpp"

namespace ternq::pack {

/// A ternary block format (FORMATS.md, docs/formats.md).
enum class format : std::uint8_t {
  tq1_0,   ///< llama.cpp TQ1_0: 256 elements, base-3, 1.6875 bpw
  tq2_0,   ///< llama.cpp TQ2_0: 256 elements, 2-bit interleaved, 2.0625 bpw
  q2_0,    ///< mainline Q2_0: 64 elements, 2-bit sequential, 2.25 bpw
  pq2_0,   ///< PrismML PQ2_0: 128 elements, 2-bit sequential, 2.125 bpw
  ptq1_0,  ///< PrismML PTQ1_0: 128 elements, base-3, 1.75 bpw
  i2_s,    ///< bitnet.cpp I2_S (x86): 2-bit, one f32 scale per tensor
};

/// Every format, for loops in tests and benchmarks.
inline constexpr std::array<format, 6> all_formats = {format::tq1_0, format::tq2_0,  format::q2_0,
                                                      format::pq2_0, format::ptq1_0, format::i2_s};

/// The ggml type a format is stored as.
constexpr ggml_type ggml_type_of(format f) noexcept {
  switch (f) {
    case format::tq1_0:
      return ggml_type::tq1_0;
    case format::tq2_0:
      return ggml_type::tq2_0;
    case format::q2_0:
      return ggml_type::q2_0;
    case format::pq2_0:
      return ggml_type::pq2_0;
    case format::ptq1_0:
      return ggml_type::ptq1_0;
    case format::i2_s:
      return ggml_type::i2_s;
  }
  return ggml_type::tq2_0;
}

/// The format stored as ggml type `t`, or none for the float types.
constexpr std::optional<format> format_of(ggml_type t) noexcept {
  for (const format f : all_formats) {
    if (ggml_type_of(f) == t) return f;
  }
  return std::nullopt;
}

/// Sizes and name of a format (from the ggml type table).
inline const ggml_type_traits& traits_of(format f) { return traits_of(ggml_type_of(f)); }

/// The format's name as ggml spells it ("TQ2_0").
inline std::string_view name_of(format f) { return traits_of(f).name; }

/// True for I2_S, whose one scale covers the whole tensor.
constexpr bool per_tensor_scale(format f) noexcept { return f == format::i2_s; }

/// Bytes of a packed `rows x cols` matrix; `cols` must be a multiple of the block.
inline std::size_t packed_size(format f, std::size_t rows, std::size_t cols) {
  const ggml_type_traits& t = traits_of(f);
  return rows * (cols / t.block_elements) * t.block_bytes + t.tensor_trailer;
}

}  // namespace ternq::pack
