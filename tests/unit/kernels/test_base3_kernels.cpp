// SPDX-License-Identifier: MIT
// The vectorized kernels of the base-3 formats (TQ1_0, PTQ1_0) against the portable reference on what the shared
// product tests do not reach: every byte value (243..255 are no base-3 number; the codec's reading defines them),
// scales from fp16 subnormals to 65504 of either sign, activations over 40 decades, row counts and vector counts
// off the kernels' row blocks and tiles, rows longer than one decoded chunk, and the extreme int8 codes.
#include <cmath>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include <ternq/kernels.hpp>
#include <ternq/pack/to_float.hpp>

#include "llm_like.hpp"

namespace {

namespace kernels = ternq::kernels;
namespace pack = ternq::pack;

constexpr pack::format base3_formats[] = {pack::format::tq1_0, pack::format::ptq1_0};

/// A finite fp16 of either sign, its exponent uniform over the whole range (subnormals and zero included).
std::uint16_t random_scale(ternq::testing::rng& gen) {
  const auto bits = static_cast<std::uint16_t>(gen.next() >> 48U);
  const auto exponent = static_cast<std::uint16_t>((bits >> 10U) & 0x1FU);
  return exponent == 0x1F ? static_cast<std::uint16_t>(bits & 0xBFFFU) : bits;  // Inf/NaN -> exponent 15
}

/// `rows x cols` of format `f` with uniformly random code bytes (all 256 values) and `random_scale` scales.
std::vector<std::uint8_t> random_bytes(pack::format f, std::size_t rows, std::size_t cols, std::uint64_t seed) {
  ternq::testing::rng gen(seed);
  const auto& traits = pack::traits_of(f);
  std::vector<std::uint8_t> bytes(pack::packed_size(f, rows, cols));
  for (std::size_t b = 0; b < bytes.size() / traits.block_bytes; ++b) {
    std::uint8_t* block = bytes.data() + b * traits.block_bytes;
    for (std::size_t k = 0; k + 2 < traits.block_bytes; ++k) block[k] = static_cast<std::uint8_t>(gen.next() >> 56U);
    pack::store_le(block + traits.block_bytes - 2, random_scale(gen));
  }
  return bytes;
}

/// LLM-like activations, each block of each vector scaled by 10^u, u uniform in [-20, 20]: block terms of very
/// different sizes, so the double sums round differently in any other order.
ternq::testing::row_matrix spread_activations(std::size_t n, std::size_t cols, std::size_t block, std::uint64_t seed) {
  ternq::testing::row_matrix x = ternq::testing::llm_like_activations(n, cols, seed);
  ternq::testing::rng gen(seed + 1);
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    for (std::size_t b = 0; b < cols / block; ++b) {
      const auto factor = static_cast<float>(std::pow(10.0, 40.0 * gen.uniform() - 20.0));
      x.row(t).segment(static_cast<Eigen::Index>(b * block), static_cast<Eigen::Index>(block)) *= factor;
    }
  }
  return x;
}

ternq::testing::row_matrix run(const kernels::packed_view& w, const ternq::testing::row_matrix& x,
                               kernels::activation_precision precision, ternq::cpu_exec exec) {
  ternq::testing::row_matrix y(x.rows(), static_cast<Eigen::Index>(w.rows));
  kernels::matmul(w, ternq::row_major(x.data(), static_cast<std::size_t>(x.rows()), w.cols),
                  ternq::row_major(y.data(), static_cast<std::size_t>(y.rows()), w.rows),
                  {.activations = precision, .exec = exec});
  return y;
}

bool identical(const ternq::testing::row_matrix& a, const ternq::testing::row_matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::equal(a.data(), a.data() + a.size(), b.data(), [](float u, float v) {
           return std::bit_cast<std::uint32_t>(u) == std::bit_cast<std::uint32_t>(v);
         });
}

struct shape {
  std::size_t rows, blocks, n;
};

}  // namespace

TEST_CASE("base-3 variants: any byte, any scale, any row and vector count, long rows, as the reference") {
  // Rows around the row blocks (8 for AVX2, 16 for AVX-512) and pieces (64); vector counts around the tile (4);
  // rows of more than one decoded chunk (AVX2: 2048 elements, AVX-512: 1024), some with a partial last chunk.
  const shape shapes[] = {{1, 1, 1},   {7, 3, 2},   {9, 9, 3},  {17, 17, 5}, {40, 1, 7},
                          {130, 5, 4}, {33, 20, 9}, {16, 8, 1}, {8, 2, 6}};
  const std::vector<ternq::simd_level> levels = ternq::supported_simd_levels();
  for (const pack::format f : base3_formats) {
    CAPTURE(pack::name_of(f));
    const std::size_t block = pack::traits_of(f).block_elements;
    for (const shape& sh : shapes) {
      const std::size_t rows = sh.rows, blocks = sh.blocks, n = sh.n;  // CAPTURE cannot name structured bindings
      CAPTURE(rows);
      CAPTURE(blocks);
      CAPTURE(n);
      const std::size_t cols = blocks * block;
      const std::vector<std::uint8_t> bytes = random_bytes(f, rows, cols, 1000 * rows + blocks);
      const kernels::packed_view w = kernels::make_packed_view(f, rows, cols, bytes);
      const ternq::testing::row_matrix x = spread_activations(n, cols, block, 7 * n + blocks);
      const ternq::cpu_exec portable{.threads = 1, .simd = ternq::simd_level::portable};
      const auto ref8 = run(w, x, kernels::activation_precision::int8, portable);
      const auto ref32 = run(w, x, kernels::activation_precision::f32, portable);
      // The f32 bound's sum_j |d_b v_j x_j|, from the codec's reading of the bytes.
      const std::vector<float> values = pack::to_float(pack::ggml_type_of(f), bytes, rows, cols);
      for (const ternq::simd_level level : levels) {
        for (const unsigned threads : {1U, 3U}) {
          CAPTURE(ternq::simd_level_name(level));
          CAPTURE(threads);
          const ternq::cpu_exec exec{.threads = threads, .simd = level};
          CHECK(identical(run(w, x, kernels::activation_precision::int8, exec), ref8));
          const auto y32 = run(w, x, kernels::activation_precision::f32, exec);
          bool within = true;
          for (std::size_t t = 0; t < n; ++t) {
            for (std::size_t r = 0; r < rows; ++r) {
              double abs_sum = 0.0;
              for (std::size_t j = 0; j < cols; ++j) {
                abs_sum += std::abs(static_cast<double>(values[r * cols + j]) *
                                    static_cast<double>(x(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(j))));
              }
              const auto ti = static_cast<Eigen::Index>(t);
              const auto ri = static_cast<Eigen::Index>(r);
              within = within && std::abs(static_cast<double>(y32(ti, ri)) - static_cast<double>(ref32(ti, ri))) <=
                                     kernels::f32_path_bound(cols, abs_sum) + 1e-30;
            }
          }
          CHECK(within);
        }
      }
    }
  }
}

TEST_CASE("base-3 variants: the extreme int8 codes -128 and 127 against all-2 codes stay exact") {
  // Bytes 0xFF decode to code 2 in every digit: the largest products. int8_activations is a plain struct, so a
  // caller may hold -128, which the quantizer never writes; the sums are the struct's (sum of the codes).
  for (const pack::format f : base3_formats) {
    CAPTURE(pack::name_of(f));
    const std::size_t block = pack::traits_of(f).block_elements;
    const std::size_t rows = 19;
    const std::size_t cols = 3 * block;
    std::vector<std::uint8_t> bytes = random_bytes(f, rows, cols, 5);
    const std::size_t block_bytes = pack::traits_of(f).block_bytes;
    for (std::size_t b = 0; b < bytes.size() / block_bytes; ++b) {
      std::fill_n(bytes.data() + b * block_bytes, block_bytes - 2, std::uint8_t{0xFF});
      pack::store_le(bytes.data() + b * block_bytes + block_bytes - 2, ternq::fp32_to_fp16_bits(0.75F));
    }
    const kernels::packed_view w = kernels::make_packed_view(f, rows, cols, bytes);
    kernels::int8_activations x;
    x.n = 3;
    x.cols = cols;
    x.block = block;
    x.q.resize(x.n * cols);
    x.scale.resize(x.n * x.blocks());
    x.sum.resize(x.n * x.blocks());
    for (std::size_t t = 0; t < x.n; ++t) {
      for (std::size_t b = 0; b < x.blocks(); ++b) {
        // Vector 0: all -128; vector 1: all 127; vector 2: -128 and 127 alternating by block.
        const std::int8_t code = (t == 0 || (t == 2 && b % 2 == 0)) ? std::int8_t{-128} : std::int8_t{127};
        std::fill_n(x.q.data() + t * cols + b * block, block, code);
        x.scale[t * x.blocks() + b] = 0.5F + static_cast<float>(b);
        x.sum[t * x.blocks() + b] = static_cast<std::int32_t>(block) * code;
      }
    }
    std::vector<float> ref(x.n * rows);
    kernels::matmul(w, x, ternq::row_major(ref.data(), x.n, rows), {.threads = 1, .simd = ternq::simd_level::portable});
    CHECK(ref[0] == static_cast<float>(-128.0 * static_cast<double>(block) * 0.75 * (0.5 + 1.5 + 2.5)));
    for (const ternq::simd_level level : ternq::supported_simd_levels()) {
      CAPTURE(ternq::simd_level_name(level));
      std::vector<float> y(x.n * rows);
      kernels::matmul(w, x, ternq::row_major(y.data(), x.n, rows), {.threads = 2, .simd = level});
      CHECK(std::equal(y.begin(), y.end(), ref.begin(), [](float u, float v) {
        return std::bit_cast<std::uint32_t>(u) == std::bit_cast<std::uint32_t>(v);
      }));
    }
  }
}

TEST_CASE("base-3 variants: a vector gives the same bits alone and in any batch, in every variant") {
  // Batches of 9 run as tiles of 4, 4 and 1 (int8 of at most 4: decoded straight into the dot products; more:
  // through the decoded chunks); the f32 sums must not depend on the tile either.
  for (const pack::format f : base3_formats) {
    CAPTURE(pack::name_of(f));
    const std::size_t block = pack::traits_of(f).block_elements;
    const std::size_t rows = 21;
    const std::size_t cols = 11 * block;
    const std::vector<std::uint8_t> bytes = random_bytes(f, rows, cols, 31);
    const kernels::packed_view w = kernels::make_packed_view(f, rows, cols, bytes);
    const ternq::testing::row_matrix x = spread_activations(9, cols, block, 32);
    for (const ternq::simd_level level : ternq::supported_simd_levels()) {
      CAPTURE(ternq::simd_level_name(level));
      const ternq::cpu_exec exec{.threads = 1, .simd = level};
      for (const auto precision : {kernels::activation_precision::int8, kernels::activation_precision::f32}) {
        const auto batch = run(w, x, precision, exec);
        for (const Eigen::Index count : {1, 2, 3, 4}) {
          for (Eigen::Index t = 0; t + count <= x.rows(); t += 3) {
            const ternq::testing::row_matrix part = x.middleRows(t, count);
            CHECK(identical(run(w, part, precision, exec), batch.middleRows(t, count)));
          }
        }
      }
    }
  }
}
