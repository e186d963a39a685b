// SPDX-License-Identifier: MIT
// The row loops the vectorized base-3 kernels (TQ1_0, PTQ1_0) share: row blocks, column chunks, token tiles, and
// the exact double sums per block. The instruction-set parts (decode, dot products) come from a kernel policy.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ternq/core/view.hpp"
#include "ternq/kernels/cpu/activations.hpp"
#include "ternq/kernels/cpu/packed_view.hpp"
#include "ternq/pack/blocks.hpp"
#include "ternq/pack/format.hpp"

namespace ternq::kernels::detail::base3 {

// The staged base-3 layout puts digit n of a run of consecutive stored bytes on consecutive elements (TQ1_0: byte
// m of the first stage holds elements 32 n + m). Decoding the same digit of 4 (AVX2) or 8 (AVX-512) consecutive
// bytes therefore gives that many consecutive elements, already in the activations' order: the kernels decode
// several rows at once, one row per 32- or 64-bit lane, into "digit groups" (the codes c = v + 1 in 0..2 of
// elements 4g..4g+3, or 8g..8g+7, of every row) and multiply each group by the activations of those elements,
// broadcast to every lane. A lane then sums one row: no horizontal sums, and every lane of a vector shares one
// multiplier 3^n. Each stored byte is decoded as the codec reads it, ((byte 3^n mod 256) 3) >> 8, for any byte.

/// The block constants of a base-3 format.
template <pack::format F>
struct layout;
template <>
struct layout<pack::format::tq1_0> {
  static constexpr std::size_t elements = pack::block_tq1_0::elements;
  static constexpr std::size_t bytes = sizeof(pack::block_tq1_0);
};
template <>
struct layout<pack::format::ptq1_0> {
  static constexpr std::size_t elements = pack::block_ptq1_0::elements;
  static constexpr std::size_t bytes = sizeof(pack::block_ptq1_0);
};

using int8_rows_fn = void (*)(const packed_view&, const int8_activations&, std::size_t, std::size_t,
                              matrix_view<float>);
using f32_rows_fn = void (*)(const packed_view&, matrix_view<const float>, std::size_t, std::size_t,
                             matrix_view<float>);

/// The most activation vectors one tile multiplies at a time (each decoded block is read once per tile).
inline constexpr std::size_t max_tile = 4;

/// Runs `tile.operator()<T>(t0)` over `n` vectors: tiles of `T = max_tile` vectors from `t0`, then one smaller
/// tile for the rest (`T` a compile-time constant).
template <class Tile>
void for_each_tile(std::size_t n, Tile&& tile) {
  std::size_t t = 0;
  for (; t + max_tile <= n; t += max_tile) tile.template operator()<max_tile>(t);
  switch (n - t) {
    case 3:
      tile.template operator()<3>(t);
      break;
    case 2:
      tile.template operator()<2>(t);
      break;
    case 1:
      tile.template operator()<1>(t);
      break;
    default:
      break;
  }
}

/// The rows `[rb, rb + Kern::rows)` clipped to `r1`: rows past the end repeat the last one (their results are
/// computed and dropped, so the vector loops always run full).
template <std::size_t R>
void row_block(const packed_view& w, std::size_t rb, std::size_t r1, const std::uint8_t* (&rows)[R]) {
  for (std::size_t i = 0; i < R; ++i) rows[i] = w.row(std::min(rb + i, r1 - 1));
}

/// Decodes blocks `[c0, c0 + kc)` of the row block into `digits` and their scales into `d` (`d[bl R + i]`).
template <class Kern, pack::format F, std::size_t R>
void decode_chunk(const std::uint8_t* const (&rows)[R], std::size_t c0, std::size_t kc, std::uint8_t* digits,
                  float* d) {
  using L = layout<F>;
  const std::uint8_t* p[R];
  for (std::size_t bl = 0; bl < kc; ++bl) {
    for (std::size_t i = 0; i < R; ++i) p[i] = rows[i] + (c0 + bl) * L::bytes;
    Kern::decode(p, digits + bl * R * L::elements, d + bl * R);
  }
}

/// The integer path (the reference's definition, bit for bit) with the instruction-set policy `Kern`,
/// `Kern::rows` rows at a time. Up to `max_tile` vectors, `Kern::int8_rows<T>` decodes each block straight into
/// the dot products; more, and `Kern::chunk_blocks` blocks are decoded into a buffer at a time, then multiplied by
/// every vector in tiles (`Kern::int8_tile<T>`). Both add each block's exact double term to `acc` in block order.
template <class Kern, pack::format F>
void rows_int8(const packed_view& w, const int8_activations& x, std::size_t r0, std::size_t r1, matrix_view<float> y) {
  using L = layout<F>;
  constexpr std::size_t R = Kern::rows;
  constexpr std::size_t K = Kern::chunk_blocks;
  std::vector<double> acc(R * x.n);
  const std::size_t nb = w.blocks_per_row();
  const auto store = [&](std::size_t rb) {
    for (std::size_t t = 0; t < x.n; ++t) {
      for (std::size_t i = 0; i < std::min(R, r1 - rb); ++i) y(t, rb + i) = static_cast<float>(acc[t * R + i]);
    }
  };
  if (x.n <= max_tile) {
    for (std::size_t rb = r0; rb < r1; rb += R) {
      const std::uint8_t* rows[R];
      row_block(w, rb, r1, rows);
      for_each_tile(x.n, [&]<std::size_t T>(std::size_t t0) {  // a single tile
        const std::int8_t* q[T];
        const float* s[T];
        const std::int32_t* sums[T];
        for (std::size_t t = 0; t < T; ++t) {
          q[t] = x.codes(t0 + t);
          s[t] = x.scales(t0 + t);
          sums[t] = x.sums(t0 + t);
        }
        Kern::template int8_rows<T>(rows, nb, q, s, sums, acc.data() + t0 * R);
      });
      store(rb);
    }
    return;
  }
  alignas(64) std::uint8_t digits[K * R * L::elements];
  alignas(64) float d[K * R];
  for (std::size_t rb = r0; rb < r1; rb += R) {
    const std::uint8_t* rows[R];
    row_block(w, rb, r1, rows);
    std::fill(acc.begin(), acc.end(), 0.0);
    for (std::size_t c0 = 0; c0 < nb; c0 += K) {
      const std::size_t kc = std::min(K, nb - c0);
      decode_chunk<Kern, F>(rows, c0, kc, digits, d);
      for_each_tile(x.n, [&]<std::size_t T>(std::size_t t0) {
        const std::int8_t* q[T];
        const float* s[T];
        const std::int32_t* sums[T];
        for (std::size_t t = 0; t < T; ++t) {
          q[t] = x.codes(t0 + t) + c0 * L::elements;
          s[t] = x.scales(t0 + t) + c0;
          sums[t] = x.sums(t0 + t) + c0;
        }
        Kern::template int8_tile<T>(digits, d, kc, q, s, sums, acc.data() + t0 * R);
      });
    }
    store(rb);
  }
}

/// The f32 path with the policy `Kern`: float lanes, one per row, summing `d_b v_j x_j` over a fixed number of
/// chains per variant (`Kern::f32_tile<T>`), so that a vector's result does not depend on its tile; within
/// `f32_path_bound` of the reference.
template <class Kern, pack::format F>
void rows_f32(const packed_view& w, matrix_view<const float> x, std::size_t r0, std::size_t r1, matrix_view<float> y) {
  using L = layout<F>;
  constexpr std::size_t R = Kern::rows;
  constexpr std::size_t K = Kern::chunk_blocks;
  alignas(64) std::uint8_t digits[K * R * L::elements];
  alignas(64) float d[K * R];
  std::vector<float> acc(R * x.rows());
  const std::size_t nb = w.blocks_per_row();
  for (std::size_t rb = r0; rb < r1; rb += R) {
    const std::uint8_t* rows[R];
    row_block(w, rb, r1, rows);
    std::fill(acc.begin(), acc.end(), 0.0F);
    for (std::size_t c0 = 0; c0 < nb; c0 += K) {
      const std::size_t kc = std::min(K, nb - c0);
      decode_chunk<Kern, F>(rows, c0, kc, digits, d);
      for_each_tile(x.rows(), [&]<std::size_t T>(std::size_t t0) {
        const float* xs[T];
        for (std::size_t t = 0; t < T; ++t) xs[t] = &x(t0 + t, 0) + c0 * L::elements;
        Kern::template f32_tile<T>(digits, d, kc, xs, acc.data() + t0 * R);
      });
    }
    for (std::size_t t = 0; t < x.rows(); ++t) {
      for (std::size_t i = 0; i < std::min(R, r1 - rb); ++i) y(t, rb + i) = acc[t * R + i];
    }
  }
}

}  // namespace ternq::kernels::detail::base3
