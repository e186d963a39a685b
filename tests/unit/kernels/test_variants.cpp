// SPDX-License-Identifier: MIT
// Every instruction-set variant of the packed-matrix products against the portable reference where the variants
// have their edge paths: row counts around the row tiles and pieces, blocks that leave a register unit partial,
// batches around the token tiles and chunks, the code 3, scales and activations over the whole range; and the
// vectorized activation quantizer byte for byte.
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <doctest/doctest.h>
#include <Eigen/Core>

#include <ternq/kernels.hpp>

#include "llm_like.hpp"

namespace {

using ternq::pack::format;
using ternq::testing::row_matrix;
namespace kernels = ternq::kernels;

/// A packed matrix and the float matrix it stands for.
struct problem {
  format f = format::tq2_0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<std::uint8_t> bytes;
  row_matrix values;
};

/// fp16 scales over the whole range: denormals, the smallest normal, negatives, the largest finite, zeros.
constexpr std::uint16_t extreme_scales[] = {0x0001, 0x03FF, 0x0400, 0x3C00, 0xBA00, 0x7BFF, 0xFBFF,
                                            0x0000, 0x8000, 0x2E66, 0x1400, 0x5A00, 0xC000};

/// Codes with a fraction of zeros, +-1, and about one code in 30 the 2-bit code 3 (+2) where the format has it;
/// with `extreme`, the block scales cycle through `extreme_scales` (I2_S: a tiny tensor scale), else they spread
/// over two decades.
problem make_problem(format f, std::size_t rows, std::size_t cols, std::uint64_t seed, bool extreme) {
  ternq::testing::rng gen(seed);
  const std::size_t block = ternq::pack::traits_of(f).block_elements;
  problem p{f, rows, cols, std::vector<std::uint8_t>(ternq::pack::packed_size(f, rows, cols)), {}};
  p.values.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  const bool two_bit = f != format::tq1_0 && f != format::ptq1_0;
  const float tensor_scale = extreme ? 3.5e-30F : 0.03F;
  std::vector<std::int8_t> t(block);
  std::uint8_t* dst = p.bytes.data();
  std::size_t k = seed % std::size(extreme_scales);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t b = 0; b < cols / block; ++b) {
      for (std::size_t j = 0; j < block; ++j) {
        const double u = gen.uniform();
        t[j] = u < 0.35 ? 0 : (u < 0.67 ? -1 : 1);
        if (two_bit && gen.uniform() < 0.033) t[j] = 2;
      }
      const std::uint16_t bits = extreme ? extreme_scales[k++ % std::size(extreme_scales)]
                                         : ternq::fp32_to_fp16_bits(static_cast<float>(0.002 * std::pow(100.0, gen.uniform())));
      const float d = f == format::i2_s ? tensor_scale : ternq::fp16_bits_to_fp32(bits);
      for (std::size_t j = 0; j < block; ++j) {
        p.values(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(b * block + j)) = d * static_cast<float>(t[j]);
      }
      if (f == format::i2_s) {
        ternq::pack::i2_s::encode(t.data(), dst);
      } else {
        ternq::pack::detail::with_block_codec(f, [&](auto codec) { decltype(codec)::encode(t.data(), bits, dst); });
      }
      dst += ternq::pack::traits_of(f).block_bytes;
    }
  }
  if (f == format::i2_s) ternq::pack::store_le(dst, tensor_scale);
  return p;
}

/// LLM-like activations; with `extreme`, blocks of 64 cycle through all zeros, tiny (1e-30), huge (1e4), one
/// spike among zeros, and plain values.
row_matrix make_activations(std::size_t n, std::size_t cols, std::uint64_t seed, bool extreme) {
  row_matrix x = ternq::testing::llm_like_activations(n, cols, seed);
  if (!extreme) return x;
  for (std::size_t t = 0; t < n; ++t) {
    for (std::size_t j = 0; j < cols; ++j) {
      const auto i = static_cast<Eigen::Index>(t);
      const auto c = static_cast<Eigen::Index>(j);
      switch ((j / 64 + t) % 5) {
        case 0: x(i, c) = 0.0F; break;
        case 1: x(i, c) *= 1e-30F; break;
        case 2: x(i, c) *= 1e4F; break;
        case 3: x(i, c) = j % 64 == 17 ? -2.5F : 0.0F; break;
        default: break;
      }
    }
  }
  return x;
}

row_matrix run(const problem& p, const row_matrix& x, const kernels::product_options& o) {
  const kernels::packed_view w = kernels::make_packed_view(p.f, p.rows, p.cols, p.bytes);
  row_matrix y(x.rows(), static_cast<Eigen::Index>(p.rows));
  kernels::matmul(w, ternq::row_major(x.data(), static_cast<std::size_t>(x.rows()), p.cols),
                  ternq::row_major(y.data(), static_cast<std::size_t>(y.rows()), p.rows), o);
  return y;
}

bool identical(const row_matrix& a, const row_matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::equal(a.data(), a.data() + a.size(), b.data(), [](float u, float v) {
           return std::bit_cast<std::uint32_t>(u) == std::bit_cast<std::uint32_t>(v);
         });
}

/// The first entry of `y` farther from `ref` than `f32_path_bound`, or none (-1).
Eigen::Index first_outside_bound(const row_matrix& y, const row_matrix& ref, const problem& p, const row_matrix& x) {
  const Eigen::MatrixXd abs_sum = x.cast<double>().cwiseAbs() * p.values.cast<double>().cwiseAbs().transpose();
  for (Eigen::Index i = 0; i < y.size(); ++i) {
    const Eigen::Index t = i / y.cols();
    const Eigen::Index r = i % y.cols();
    const double err = std::abs(static_cast<double>(y(t, r)) - static_cast<double>(ref(t, r)));
    if (!(err <= kernels::f32_path_bound(p.cols, abs_sum(t, r)) + 1e-30)) return i;
  }
  return -1;
}

/// Every supported variant and 1 or 3 threads against the portable reference on `p` and `x`.
void check_variants(const problem& p, const row_matrix& x) {
  const ternq::cpu_exec one{.threads = 1, .simd = ternq::simd_level::portable};
  const row_matrix ref8 = run(p, x, {.exec = one});
  const row_matrix ref32 = run(p, x, {.activations = kernels::activation_precision::f32, .exec = one});
  for (const ternq::simd_level level : ternq::supported_simd_levels()) {
    if (level == ternq::simd_level::portable) continue;
    for (const unsigned threads : {1U, 3U}) {
      CAPTURE(ternq::simd_level_name(level));
      CAPTURE(threads);
      const ternq::cpu_exec exec{.threads = threads, .simd = level};
      CHECK(identical(run(p, x, {.exec = exec}), ref8));
      CHECK(first_outside_bound(run(p, x, {.activations = kernels::activation_precision::f32, .exec = exec}), ref32, p,
                                x) == -1);
    }
  }
}

constexpr format two_bit_formats[] = {format::tq2_0, format::q2_0, format::pq2_0, format::i2_s};

}  // namespace

TEST_CASE("variants: row counts around the 8-row tiles and 64-row pieces, blocks that leave a unit partial") {
  for (const format f : two_bit_formats) {
    CAPTURE(ternq::pack::name_of(f));
    const std::size_t block = ternq::pack::traits_of(f).block_elements;
    for (const std::size_t blocks : {1U, 2U, 3U, 4U, 5U, 7U, 9U}) {
      for (const std::size_t rows : {1U, 7U, 8U, 9U, 17U, 63U, 65U, 130U}) {
        CAPTURE(blocks);
        CAPTURE(rows);
        const problem p = make_problem(f, rows, blocks * block, 100 * rows + blocks, false);
        check_variants(p, make_activations(1, blocks * block, rows + blocks, false));
      }
    }
  }
}

TEST_CASE("variants: batches around the token tiles (2 for the int8 path, 4 for the f32 path)") {
  for (const format f : two_bit_formats) {
    CAPTURE(ternq::pack::name_of(f));
    const std::size_t cols = 3 * ternq::pack::traits_of(f).block_elements;
    const problem p = make_problem(f, 19, cols, 7, false);
    for (std::size_t n = 1; n <= 10; ++n) {
      CAPTURE(n);
      check_variants(p, make_activations(n, cols, 40 + n, false));
    }
  }
}

TEST_CASE("variants: batches that span several reordered-activation chunks") {
  // 1024 columns: 256 vectors per int8 chunk and 64 per f32 chunk (about 256 KiB each).
  for (const format f : two_bit_formats) {
    CAPTURE(ternq::pack::name_of(f));
    const problem p = make_problem(f, 9, 1024, 3, false);
    check_variants(p, make_activations(263, 1024, 5, false));
  }
}

TEST_CASE("variants: scales over the whole fp16 range (denormals, negatives, zeros, the largest), the code 3, "
          "extreme activations") {
  for (const format f : two_bit_formats) {
    CAPTURE(ternq::pack::name_of(f));
    const std::size_t block = ternq::pack::traits_of(f).block_elements;
    for (const std::size_t blocks : {1U, 4U, 6U}) {
      CAPTURE(blocks);
      const problem p = make_problem(f, 21, blocks * block, 11 + blocks, true);
      check_variants(p, make_activations(3, blocks * block, 13 + blocks, true));
      check_variants(p, make_activations(2, blocks * block, 17 + blocks, false));
    }
  }
}

TEST_CASE("variants: activations quantized by the caller, including the code -128") {
  for (const format f : two_bit_formats) {
    CAPTURE(ternq::pack::name_of(f));
    const std::size_t block = ternq::pack::traits_of(f).block_elements;
    const std::size_t cols = 5 * block;
    const problem p = make_problem(f, 12, cols, 23, false);
    const kernels::packed_view w = kernels::make_packed_view(p.f, p.rows, p.cols, p.bytes);
    kernels::int8_activations q{.n = 3, .cols = cols, .block = block, .q = {}, .scale = {}, .sum = {}};
    ternq::testing::rng gen(29);
    for (std::size_t i = 0; i < q.n * cols; ++i) {
      q.q.push_back(static_cast<std::int8_t>(static_cast<int>(gen.next() % 256) - 128));
      if (i % 7 == 0) q.q.back() = -128;
    }
    for (std::size_t k = 0; k < q.n * q.blocks(); ++k) {
      q.scale.push_back(static_cast<float>(gen.uniform()));
      std::int32_t s = 0;
      for (std::size_t j = 0; j < block; ++j) s += q.q[k * block + j];
      q.sum.push_back(s);
    }
    row_matrix ref(3, 12);
    kernels::matmul(w, q, ternq::row_major(ref.data(), 3, 12), {.threads = 1, .simd = ternq::simd_level::portable});
    for (const ternq::simd_level level : ternq::supported_simd_levels()) {
      CAPTURE(ternq::simd_level_name(level));
      row_matrix y(3, 12);
      kernels::matmul(w, q, ternq::row_major(y.data(), 3, 12), {.threads = 2, .simd = level});
      CHECK(identical(y, ref));
    }
  }
}

namespace {

/// Activations whose quantized values fall exactly halfway between integers, and other awkward blocks.
row_matrix awkward_activations(std::size_t n, std::size_t cols) {
  row_matrix x = ternq::testing::llm_like_activations(n, cols, 3);
  for (Eigen::Index j = 0; j < static_cast<Eigen::Index>(cols); ++j) {
    // with amax 127 in a block, x itself is the quantized value before rounding: halves round to even
    x(0, j) = j % 64 == 0 ? 127.0F : static_cast<float>(j % 64) * 0.5F - 16.0F;
  }
  if (n > 1) {
    // a zero block; a block of float denormals, whose 127 / amax overflows (every value then quantizes to +-127:
    // a zero there would make the rule's product 0 x inf); huge and tiny values together
    for (Eigen::Index j = 0; j < static_cast<Eigen::Index>(cols); ++j) {
      const float tiny = (j % 2 == 0 ? 1e-39F : -2e-39F) * static_cast<float>(1 + j % 3);
      x(1, j) = j < 64 ? 0.0F : (j < 128 ? tiny : (j % 2 == 0 ? -3e38F : 1e-30F));
    }
  }
  return x;
}

}  // namespace

TEST_CASE("quantize_activations: every variant gives the same codes, scales and sums, in every rounding mode") {
  const int saved = std::fegetround();
  for (const int mode : {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO}) {
    for (const std::size_t block : {8U, 24U, 32U, 64U, 128U, 256U}) {
      for (const bool awkward : {false, true}) {
        CAPTURE(mode);
        CAPTURE(block);
        CAPTURE(awkward);
        const std::size_t cols = 2048 / block * block;
        const row_matrix x = awkward ? awkward_activations(2, cols) : ternq::testing::llm_like_activations(5, cols, 9);
        const auto view = ternq::row_major(x.data(), static_cast<std::size_t>(x.rows()), cols);
        REQUIRE(std::fesetround(mode) == 0);
        kernels::int8_activations ref;
        kernels::quantize_activations(view, block, ref, ternq::simd_level::portable);
        for (const ternq::simd_level level : ternq::supported_simd_levels()) {
          CAPTURE(ternq::simd_level_name(level));
          kernels::int8_activations q;
          kernels::quantize_activations(view, block, q, level);
          CHECK(q.q == ref.q);
          CHECK(q.sum == ref.sum);
          CHECK(std::equal(q.scale.begin(), q.scale.end(), ref.scale.begin(), ref.scale.end(), [](float a, float b) {
            return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
          }));
        }
        std::fesetround(saved);
      }
    }
  }
  std::fesetround(saved);
}
