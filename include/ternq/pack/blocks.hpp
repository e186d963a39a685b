// SPDX-License-Identifier: MIT
// The block structs of the ternary formats: field order and sizes, checked at compile time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ternq::pack {

// Every field is a byte array, so a struct has no padding and alignment 1
// on every compiler: its layout is the file's. Scales are IEEE fp16 bits,
// little-endian (`d[0]` the low byte). The codecs read and write these
// offsets on byte buffers (no struct is ever copied to or from a file).

/// TQ1_0 (ggml type 34): 256 elements, 5 base-3 digits a byte in `qs`, 4 in
/// `qh`, scale last. 54 bytes: 1.6875 bits per weight.
struct block_tq1_0 {
  static constexpr std::size_t elements = 256;
  std::uint8_t qs[48];  ///< elements 0..159 (stage of 32 bytes), 160..239 (stage of 16 bytes)
  std::uint8_t qh[4];   ///< elements 240..255, 4 digits a byte
  std::uint8_t d[2];    ///< fp16 scale
};
static_assert(sizeof(block_tq1_0) == 54 && alignof(block_tq1_0) == 1);
static_assert(offsetof(block_tq1_0, qh) == 48 && offsetof(block_tq1_0, d) == 52);

/// TQ2_0 (ggml type 35): 256 elements, 2-bit codes interleaved 32 apart,
/// scale last. 66 bytes: 2.0625 bits per weight.
struct block_tq2_0 {
  static constexpr std::size_t elements = 256;
  std::uint8_t qs[64];  ///< element 128h + 32l + m in byte 32h + m, bits 2l
  std::uint8_t d[2];    ///< fp16 scale
};
static_assert(sizeof(block_tq2_0) == 66 && alignof(block_tq2_0) == 1);
static_assert(offsetof(block_tq2_0, d) == 64);

/// Mainline Q2_0 (ggml type 42): 64 elements, scale first, 2-bit codes in
/// order. 18 bytes: 2.25 bits per weight.
struct block_q2_0 {
  static constexpr std::size_t elements = 64;
  std::uint8_t d[2];    ///< fp16 scale
  std::uint8_t qs[16];  ///< element j in byte j / 4, bits 2 (j % 4)
};
static_assert(sizeof(block_q2_0) == 18 && alignof(block_q2_0) == 1);
static_assert(offsetof(block_q2_0, qs) == 2);

/// PrismML PQ2_0 (ggml type 142): Q2_0's codec at 128 elements. 34 bytes:
/// 2.125 bits per weight.
struct block_pq2_0 {
  static constexpr std::size_t elements = 128;
  std::uint8_t d[2];    ///< fp16 scale
  std::uint8_t qs[32];  ///< element j in byte j / 4, bits 2 (j % 4)
};
static_assert(sizeof(block_pq2_0) == 34 && alignof(block_pq2_0) == 1);
static_assert(offsetof(block_pq2_0, qs) == 2);

/// PrismML PTQ1_0 (ggml type 143): TQ1_0's codec at 128 elements. 28 bytes:
/// 1.75 bits per weight.
struct block_ptq1_0 {
  static constexpr std::size_t elements = 128;
  std::uint8_t qs[24];  ///< elements 0..79 (stage of 16 bytes), 80..119 (stage of 8 bytes)
  std::uint8_t qh[2];   ///< elements 120..127, 4 digits a byte
  std::uint8_t d[2];    ///< fp16 scale
};
static_assert(sizeof(block_ptq1_0) == 28 && alignof(block_ptq1_0) == 1);
static_assert(offsetof(block_ptq1_0, qh) == 24 && offsetof(block_ptq1_0, d) == 26);

/// One 128-element group of bitnet.cpp's I2_S (ggml type 36, x86 layout):
/// 32 bytes of 2-bit codes, no scale (the tensor's one f32 scale follows the
/// last group). 2 bits per weight, plus 32 bytes per tensor.
struct block_i2_s {
  static constexpr std::size_t elements = 128;
  std::uint8_t qs[32];  ///< element j in byte j % 32, bits 6 - 2 (j / 32)
};
static_assert(sizeof(block_i2_s) == 32 && alignof(block_i2_s) == 1);

/// Bytes after the last I2_S group: the f32 scale, then zeros up to 32.
inline constexpr std::size_t i2_s_trailer_bytes = 32;

/// Q8_0 (ggml type 8, not ternary): 32 signed 8-bit values and an fp16
/// scale first; value `qs[j] d`. 34 bytes: 8.5 bits per weight. For tensors
/// kept at a higher precision than the ternary layers.
struct block_q8_0 {
  static constexpr std::size_t elements = 32;
  std::uint8_t d[2];    ///< fp16 scale (max |x| / 127)
  std::int8_t qs[32];   ///< element j, two's complement
};
static_assert(sizeof(block_q8_0) == 34 && alignof(block_q8_0) == 1);
static_assert(offsetof(block_q8_0, qs) == 2);

/// Q1_0 (ggml type 41, binary, not ternary): 128 signs and a scale. Only for
/// FORMATS.md's golden vector of ggml's reference quantizer. 18 bytes:
/// 1.125 bits per weight.
struct block_q1_0 {
  static constexpr std::size_t elements = 128;
  std::uint8_t d[2];    ///< fp16 scale (mean |x| of the block)
  std::uint8_t qs[16];  ///< bit j % 8 of byte j / 8: 1 for x >= 0
};
static_assert(sizeof(block_q1_0) == 18 && alignof(block_q1_0) == 1);
static_assert(offsetof(block_q1_0, qs) == 2);

}  // namespace ternq::pack
