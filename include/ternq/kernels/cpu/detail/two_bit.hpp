// SPDX-License-Identifier: MIT
// Where the 2-bit formats (TQ2_0, Q2_0, PQ2_0, I2_S) keep each element's code, and the activation orders that let
// the vectorized row kernels multiply whole registers of codes by contiguous activations.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "ternq/config.hpp"
#include "ternq/pack/blocks.hpp"
#include "ternq/pack/format.hpp"

namespace ternq::kernels::detail {

/// The byte layout of a 2-bit format's block: `code_bytes` bytes of codes at `code_offset`, an fp16 scale at
/// `scale_offset` (none for I2_S, whose one f32 scale follows the tensor), and for byte `k` of the codes the
/// element whose code is in bits `2 l` (`element(k, l)`, FORMATS.md).
template <pack::format F>
struct two_bit_format;

template <>
struct two_bit_format<pack::format::tq2_0> {
  static constexpr std::size_t elements = 256;
  static constexpr std::size_t block_bytes = sizeof(pack::block_tq2_0);
  static constexpr std::size_t code_bytes = 64;
  static constexpr std::size_t code_offset = offsetof(pack::block_tq2_0, qs);
  static constexpr std::size_t scale_offset = offsetof(pack::block_tq2_0, d);
  static constexpr bool tensor_scale = false;
  static constexpr std::size_t element(std::size_t k, std::size_t l) { return 128 * (k / 32) + 32 * l + k % 32; }
};

template <>
struct two_bit_format<pack::format::q2_0> {
  static constexpr std::size_t elements = 64;
  static constexpr std::size_t block_bytes = sizeof(pack::block_q2_0);
  static constexpr std::size_t code_bytes = 16;
  static constexpr std::size_t code_offset = offsetof(pack::block_q2_0, qs);
  static constexpr std::size_t scale_offset = offsetof(pack::block_q2_0, d);
  static constexpr bool tensor_scale = false;
  static constexpr std::size_t element(std::size_t k, std::size_t l) { return 4 * k + l; }
};

template <>
struct two_bit_format<pack::format::pq2_0> {
  static constexpr std::size_t elements = 128;
  static constexpr std::size_t block_bytes = sizeof(pack::block_pq2_0);
  static constexpr std::size_t code_bytes = 32;
  static constexpr std::size_t code_offset = offsetof(pack::block_pq2_0, qs);
  static constexpr std::size_t scale_offset = offsetof(pack::block_pq2_0, d);
  static constexpr bool tensor_scale = false;
  static constexpr std::size_t element(std::size_t k, std::size_t l) { return 4 * k + l; }
};

template <>
struct two_bit_format<pack::format::i2_s> {
  static constexpr std::size_t elements = 128;
  static constexpr std::size_t block_bytes = sizeof(pack::block_i2_s);
  static constexpr std::size_t code_bytes = 32;
  static constexpr std::size_t code_offset = 0;
  static constexpr std::size_t scale_offset = 0;
  static constexpr bool tensor_scale = true;
  static constexpr std::size_t element(std::size_t k, std::size_t l) { return 32 * (3 - l) + k; }
};

/// A row's codes read `U` bytes at a time: a *unit* is `U` consecutive code bytes of the row (the blocks' code
/// bytes one after the other, scales left out), `4 U` elements. For every format here unit `u` holds exactly the
/// elements `[4 U u, 4 U (u + 1))`, so one table serves every unit: the *unit order* puts at `l U + p` the element
/// (relative to the unit) whose code is in bits `2 l` of the unit's byte `p`. A register of `U` code bytes shifted
/// right by `2 l` and masked to 2 bits then meets `U` contiguous activations in unit order.
template <pack::format F, std::size_t U>
struct unit_order {
  using fmt = two_bit_format<F>;
  static_assert(U % fmt::code_bytes == 0 || fmt::code_bytes % U == 0);
  /// Elements of one unit.
  static constexpr std::size_t elements = 4 * U;

  static constexpr std::array<std::uint16_t, 4 * U> make() {
    std::array<std::uint16_t, 4 * U> t{};
    for (std::size_t l = 0; l < 4; ++l) {
      for (std::size_t p = 0; p < U; ++p) {
        // byte p of unit 0 is byte k of block b (U >= block) or of the unit's part of block 0 (U < block)
        const std::size_t b = p / fmt::code_bytes;
        const std::size_t k = p % fmt::code_bytes;
        t[l * U + p] = static_cast<std::uint16_t>(b * fmt::elements + fmt::element(k, l));
      }
    }
    return t;
  }
  static constexpr std::array<std::uint16_t, 4 * U> table = make();
  /// True when the order moves runs of 32 consecutive elements (TQ2_0, I2_S): copied as such.
  static constexpr bool runs_of_32 = [] {
    for (std::size_t i = 0; i < 4 * U; ++i) {
      if (i % 32 != 0 && table[i] != table[i - 1] + 1) return false;
      if (i % 32 == 0 && table[i] % 32 != 0) return false;
    }
    return true;
  }();

  /// Units of a row of `cols` elements (the last one may be partial).
  static constexpr std::size_t units(std::size_t cols) { return (cols + elements - 1) / elements; }

  /// `src` (`cols` elements) in unit order into `dst` (`units(cols) * elements`), zeros where a partial last unit
  /// has no element.
  template <class T>
  static void permute(const T* src, std::size_t cols, T* dst) noexcept {
    const std::size_t full = cols / elements;
    for (std::size_t u = 0; u < full; ++u) {
      const T* s = src + u * elements;
      T* d = dst + u * elements;
      if constexpr (runs_of_32) {
        for (std::size_t i = 0; i < elements; i += 32) std::memcpy(d + i, s + table[i], 32 * sizeof(T));
      } else {
        for (std::size_t i = 0; i < elements; ++i) d[i] = s[table[i]];
      }
    }
    if (full * elements < cols) {
      const T* s = src + full * elements;
      T* d = dst + full * elements;
      const std::size_t rest = cols - full * elements;
      for (std::size_t i = 0; i < elements; ++i) d[i] = table[i] < rest ? s[table[i]] : T{};
    }
  }
};

/// The activation order of the f32 paths, block by block: a block's codes are read `G` bytes at a time (widened to
/// `G` 32-bit lanes, then shifted right by `2 l`), so the order puts at `4 G g + G l + j` the element whose code is
/// in bits `2 l` of byte `G g + j`.
template <pack::format F, std::size_t G>
struct group_order {
  using fmt = two_bit_format<F>;
  static_assert(fmt::code_bytes % G == 0);
  static constexpr std::array<std::uint16_t, fmt::elements> make() {
    std::array<std::uint16_t, fmt::elements> t{};
    for (std::size_t g = 0; g < fmt::code_bytes / G; ++g) {
      for (std::size_t l = 0; l < 4; ++l) {
        for (std::size_t j = 0; j < G; ++j) {
          t[4 * G * g + G * l + j] = static_cast<std::uint16_t>(fmt::element(G * g + j, l));
        }
      }
    }
    return t;
  }
  static constexpr std::array<std::uint16_t, fmt::elements> table = make();
  /// `src` (`cols` elements) in group order, block by block.
  static void permute(const float* src, std::size_t cols, float* dst) noexcept {
    for (std::size_t b = 0; b < cols / fmt::elements; ++b) {
      const float* s = src + b * fmt::elements;
      float* d = dst + b * fmt::elements;
      for (std::size_t i = 0; i < fmt::elements; ++i) d[i] = s[table[i]];
    }
  }
};

/// A 64-byte aligned scratch buffer of `T` that keeps its storage between uses.
template <class T>
class aligned_scratch {
 public:
  T* get(std::size_t n) {
    if (n > size_) {
      const std::size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
      data_.reset(static_cast<T*>(::operator new(bytes, std::align_val_t{64})));
      size_ = n;
    }
    return data_.get();
  }

 private:
  struct deleter {
    void operator()(T* p) const noexcept { ::operator delete(p, std::align_val_t{64}); }
  };
  std::unique_ptr<T, deleter> data_;
  std::size_t size_ = 0;
};

/// Activation vectors per pass over a row range: enough to fill about 256 KiB (L2) with their reordered copy,
/// so that each row tile's weights, decoded once, meet them all while they stay in cache.
inline std::size_t token_chunk(std::size_t bytes_per_vector, std::size_t n) noexcept {
  const std::size_t fit = (std::size_t{256} << 10) / (bytes_per_vector == 0 ? 1 : bytes_per_vector);
  return fit < 1 ? 1 : (fit > n ? n : fit);
}

}  // namespace ternq::kernels::detail
