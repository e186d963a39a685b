// SPDX-License-Identifier: MIT
// The ggml tensor types ternq reads and writes: type id <-> name, elements and bytes per block, tensor sizes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>

#include "ternq/core/error.hpp"

namespace ternq::pack {

/// ggml type ids (FORMATS.md). The values are the ids stored in GGUF tensor
/// infos; only the types below are known to ternq.
enum class ggml_type : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q8_0 = 8,      ///< 8-bit, 32-element blocks (kept tensors: `--keep PATTERN=q8_0`)
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
  i2_s = 36,     ///< bitnet.cpp fork (x86 layout)
  q2_0 = 42,     ///< mainline Q2_0: 64-element blocks, never the old 128-element layout
  pq2_0 = 142,   ///< PrismML fork
  ptq1_0 = 143,  ///< PrismML fork
};

/// Storage facts of a ggml type.
struct ggml_type_traits {
  ggml_type type;
  std::string_view name;       ///< as ggml spells it ("TQ2_0")
  std::size_t block_elements;  ///< elements per block; `ne[0]` must be a multiple of it
  std::size_t block_bytes;     ///< bytes per block
  std::size_t tensor_trailer;  ///< bytes after the blocks, once per tensor (I2_S: its f32 scale, zero-padded to 32)
  bool ternary;                ///< a ternary block format (codes {-1, 0, +1} and a scale)

  /// Bits per weight of the blocks (the I2_S trailer is not counted).
  [[nodiscard]] constexpr double bits_per_weight() const noexcept {
    return 8.0 * static_cast<double>(block_bytes) / static_cast<double>(block_elements);
  }
};

/// Every type ternq knows, in id order.
inline constexpr std::array<ggml_type_traits, 10> ggml_types = {{
    {ggml_type::f32, "F32", 1, 4, 0, false},
    {ggml_type::f16, "F16", 1, 2, 0, false},
    {ggml_type::q8_0, "Q8_0", 32, 34, 0, false},
    {ggml_type::bf16, "BF16", 1, 2, 0, false},
    {ggml_type::tq1_0, "TQ1_0", 256, 54, 0, true},
    {ggml_type::tq2_0, "TQ2_0", 256, 66, 0, true},
    {ggml_type::i2_s, "I2_S", 128, 32, 32, true},
    {ggml_type::q2_0, "Q2_0", 64, 18, 0, true},
    {ggml_type::pq2_0, "PQ2_0", 128, 34, 0, true},
    {ggml_type::ptq1_0, "PTQ1_0", 128, 28, 0, true},
}};

/// The traits of type id `id`, or null when ternq does not know it.
constexpr const ggml_type_traits* find_ggml_type(std::uint32_t id) noexcept {
  for (const auto& t : ggml_types) {
    if (static_cast<std::uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

/// The traits of `type`; throws `unsupported` for a value outside the table.
inline const ggml_type_traits& traits_of(ggml_type type) {
  const ggml_type_traits* t = find_ggml_type(static_cast<std::uint32_t>(type));
  if (t == nullptr) fail(errc::unsupported, "ggml type ", static_cast<std::uint32_t>(type), " is not known to ternq");
  return *t;
}

/// The name of type id `id` ("TQ2_0"), or "type <id>" when unknown.
inline std::string ggml_type_name(std::uint32_t id) {
  const ggml_type_traits* t = find_ggml_type(id);
  return t != nullptr ? std::string(t->name) : ternq::detail::concat("type ", id);
}
inline std::string ggml_type_name(ggml_type type) { return ggml_type_name(static_cast<std::uint32_t>(type)); }

/// Bytes of a tensor of `type` with extents `ne` (`ne[0]` innermost).
/// Throws `code` (with `context`) when an extent is negative, `ne[0]` is not a
/// multiple of the block, or the size overflows 64 bits.
inline std::uint64_t ggml_nbytes(ggml_type type, std::span<const std::int64_t> ne, errc code,
                                 std::string_view context) {
  const ggml_type_traits& t = traits_of(type);
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t elements = 1;
  for (std::size_t k = 0; k < ne.size(); ++k) {
    if (ne[k] < 0) fail(code, context, ": ne[", k, "] = ", ne[k], " is negative");
    const auto n = static_cast<std::uint64_t>(ne[k]);
    if (n != 0 && elements > max / n) fail(code, context, ": the element count overflows 64 bits");
    elements *= n;
  }
  const std::uint64_t ne0 = ne.empty() ? 1 : static_cast<std::uint64_t>(ne[0]);
  if (ne0 % t.block_elements != 0) {
    fail(code, context, ": ne[0] = ", ne0, " is not a multiple of the ", t.block_elements, "-element block of ",
         t.name);
  }
  const std::uint64_t blocks = elements / t.block_elements;
  if (blocks > (max - t.tensor_trailer) / t.block_bytes) fail(code, context, ": the size in bytes overflows 64 bits");
  return blocks * t.block_bytes + t.tensor_trailer;
}

}  // namespace ternq::pack
