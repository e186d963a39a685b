// SPDX-License-Identifier: MIT
// Reading float-dtype elements from a file into fp32, in chunks through pread.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/core/half.hpp"
#include "ternq/io/detail/bytes.hpp"
#include "ternq/io/mapped_file.hpp"
#include "ternq/io/safetensors_dtype.hpp"

namespace ternq::io::detail {

/// IEEE binary16 bits -> fp32, bit-identical to `fp16_bits_to_fp32` (tested
/// over all 65,536 patterns) but written with selects instead of a
/// normalization loop, so the compilers vectorize the bulk conversion.
/// Denormals use the magic-number trick: `(m | 2^-14 exponent) - 2^-14`,
/// exact because both operands share one exponent.
constexpr float fp16_bits_to_fp32_branchless(std::uint16_t h) noexcept {
  const std::uint32_t sign = (static_cast<std::uint32_t>(h) & 0x8000U) << 16U;
  const std::uint32_t bits = (static_cast<std::uint32_t>(h) & 0x7FFFU) << 13U;  // exponent and mantissa, in place
  const std::uint32_t normal = bits + 0x38000000U;                              // rebias 15 -> 127
  const std::uint32_t inf_nan = bits | 0x7F800000U;
  const std::uint32_t denormal =
      std::bit_cast<std::uint32_t>(std::bit_cast<float>(bits + 0x38800000U) - std::bit_cast<float>(0x38800000U));
  // Masks rather than ?: so that GCC if-converts the loop too.
  const std::uint32_t is_inf_nan = 0U - static_cast<std::uint32_t>(bits >= 0x0F800000U);
  const std::uint32_t is_denormal = 0U - static_cast<std::uint32_t>(bits < 0x00800000U);
  const std::uint32_t magnitude =
      (inf_nan & is_inf_nan) | (denormal & is_denormal) | (normal & ~(is_inf_nan | is_denormal));
  return std::bit_cast<float>(sign | magnitude);
}

/// Decodes `n` little-endian elements of a float dtype (F32, F16, BF16) into fp32.
inline void decode_to_float(dtype t, const std::byte* src, std::size_t n, float* dst) noexcept {
  switch (t) {
    case dtype::f32:
      decode_f32_le(src, n, dst);
      return;
    case dtype::f16:
      for (std::size_t i = 0; i < n; ++i) dst[i] = fp16_bits_to_fp32_branchless(load_u16_le(src + 2 * i));
      return;
    case dtype::bf16:
      for (std::size_t i = 0; i < n; ++i) dst[i] = bf16_bits_to_fp32(load_u16_le(src + 2 * i));
      return;
    default:
      TERNQ_ASSERT(false && "decode_to_float: not a float dtype");
  }
}

/// Reads `out.size()` elements of float dtype `t` starting at byte `offset`
/// of `file` into `out`. F32 on a little-endian host is read straight into
/// `out`; everything else goes through a small buffer and is converted.
inline void read_as_float(const mapped_file& file, std::size_t offset, dtype t, std::span<float> out) {
  if (t == dtype::f32 && std::endian::native == std::endian::little) {
    file.read(offset, std::as_writable_bytes(out));
    return;
  }
  std::array<std::byte, std::size_t{1} << 16U> buffer{};
  const std::size_t size = dtype_size(t);
  const std::size_t per_chunk = buffer.size() / size;
  for (std::size_t done = 0; done < out.size();) {
    const std::size_t n = std::min(per_chunk, out.size() - done);
    file.read(offset + done * size, std::span(buffer).first(n * size));
    decode_to_float(t, buffer.data(), n, out.data() + done);
    done += n;
  }
}

}  // namespace ternq::io::detail
