// SPDX-License-Identifier: MIT
// Packed ternary tensors with known contents for the kernel tests and benchmarks, written with the formats' codecs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#include <ternq/core/half.hpp>
#include <ternq/pack/bytes.hpp>
#include <ternq/pack/i2_s.hpp>
#include <ternq/pack/pack.hpp>

#include "llm_like.hpp"

namespace ternq::testing {

/// A packed `rows x cols` tensor of `format` and the float matrix it stands for (`values(r, j) = d v_j`).
struct packed_problem {
  pack::format format = pack::format::tq2_0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<std::uint8_t> bytes;
  row_matrix values;
};

/// Random codes (a fraction `zeros` of zeros, the rest +-1 evenly) and fp16 scales spread over two decades, as
/// ternary LLM layers have them; I2_S gets one f32 scale. With `code_three`, about one code in 50 of the 2-bit
/// formats is the non-ternary code 3 (value +2, as ggml dequantizes it).
inline packed_problem random_packed(pack::format f, std::size_t rows, std::size_t cols, std::uint64_t seed,
                                    double zeros = 0.4, bool code_three = false) {
  rng gen(seed);
  const auto u = [&gen] { return gen.uniform(); };
  const std::size_t block = pack::traits_of(f).block_elements;
  packed_problem p{f, rows, cols, std::vector<std::uint8_t>(pack::packed_size(f, rows, cols)), {}};
  p.values.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  const bool two_bit = f != pack::format::tq1_0 && f != pack::format::ptq1_0;
  const float tensor_scale = static_cast<float>(0.01 + 0.05 * u());
  std::vector<std::int8_t> t(block);
  std::uint8_t* dst = p.bytes.data();
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t b = 0; b < cols / block; ++b) {
      for (std::size_t j = 0; j < block; ++j) {
        const double x = u();
        t[j] = x < zeros ? 0 : (x < (1.0 + zeros) / 2.0 ? -1 : 1);
        if (code_three && two_bit && u() < 0.02) t[j] = 2;
      }
      const std::uint16_t bits = fp32_to_fp16_bits(static_cast<float>(0.002 * std::pow(100.0, u())));
      const float d = f == pack::format::i2_s ? tensor_scale : fp16_bits_to_fp32(bits);
      for (std::size_t j = 0; j < block; ++j) {
        p.values(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(b * block + j)) = d * static_cast<float>(t[j]);
      }
      if (f == pack::format::i2_s) {
        pack::i2_s::encode(t.data(), dst);
      } else {
        // The encoders store c = t + 1 in two bits, so t = 2 writes code 3.
        pack::detail::with_block_codec(f, [&](auto codec) { decltype(codec)::encode(t.data(), bits, dst); });
      }
      dst += pack::traits_of(f).block_bytes;
    }
  }
  if (f == pack::format::i2_s) pack::store_le(dst, tensor_scale);
  return p;
}

}  // namespace ternq::testing
