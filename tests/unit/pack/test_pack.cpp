// SPDX-License-Identifier: MIT
// pack/unpack: identity for every format and edge case, byte positions, compatibility errors, the opt-in re-fit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "llm_like.hpp"
#include "ternq/core/dequantize.hpp"
#include "ternq/core/half.hpp"
#include "ternq/pack/pack.hpp"
#include "ternq/pack/to_float.hpp"
#include "ternq/pack/unpack.hpp"

namespace {

using ternq::ternary_matrix;
using ternq::pack::format;

float fp16_round(float x) { return ternq::fp16_bits_to_fp32(ternq::fp32_to_fp16_bits(x)); }

std::size_t block_of(format f) { return ternq::pack::traits_of(f).block_elements; }

/// Random codes; scales per group from `scale(i, k)`.
template <class Scale>
ternary_matrix make_matrix(std::size_t rows, std::size_t cols, ternq::group_size_option g, std::uint64_t seed,
                           Scale scale) {
  ternary_matrix q(rows, cols, g);
  ternq::testing::rng r(seed);
  for (auto& c : q.codes()) c = static_cast<std::int8_t>(static_cast<int>(r.next() % 3) - 1);
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t k = 0; k < q.groups_per_row(); ++k) q.scale(i, k) = scale(i, k);
  }
  return q;
}

/// The group size a format's blocks carry (one scale per block; per tensor for I2_S).
ternq::group_size_option native_group(format f) {
  return ternq::pack::per_tensor_scale(f) ? ternq::per_row : ternq::group_size_option(block_of(f));
}

/// pack then unpack; the codes must come back exactly and every element's
/// scale must be the fp16 (f32 for I2_S) rounding of the original.
void check_identity(const ternary_matrix& q, format f) {
  CAPTURE(ternq::pack::name_of(f));
  const ternq::pack::packed_tensor p = ternq::pack::pack(q, f);
  REQUIRE(p.data.size() == ternq::pack::packed_size(f, q.rows(), q.cols()));
  CHECK_FALSE(p.refit.has_value());
  const ternary_matrix back = ternq::pack::unpack(p);
  REQUIRE(back.rows() == q.rows());
  REQUIRE(back.cols() == q.cols());
  CHECK(std::equal(back.codes().begin(), back.codes().end(), q.codes().begin()));
  const bool f32 = ternq::pack::per_tensor_scale(f);
  int scale_mismatches = 0;
  for (std::size_t i = 0; i < q.rows(); ++i) {
    for (std::size_t j = 0; j < q.cols(); ++j) {
      const float expected = f32 ? q.scale(i, q.layout().group_of(j)) : fp16_round(q.scale(i, q.layout().group_of(j)));
      const float got = back.scale(i, back.layout().group_of(j));
      scale_mismatches += (std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(expected)) ? 0 : 1;
    }
  }
  CHECK(scale_mismatches == 0);
  // ggml's to_float of the bytes equals the dequantized unpacked matrix, bit for bit.
  const std::vector<float> floats = ternq::pack::to_float(p.type(), p.data, q.rows(), q.cols());
  CHECK(floats == ternq::dequantize(back));
  // Packing the unpacked matrix gives the same bytes.
  CHECK(ternq::pack::pack(back, f).data == p.data);
}

}  // namespace

TEST_CASE("pack/unpack identity: every format, multi-row, random codes, fp16-exact and rounded scales") {
  for (const format f : ternq::pack::all_formats) {
    if (ternq::pack::per_tensor_scale(f)) continue;  // below
    const std::size_t cols = 2 * block_of(f) * (f == format::q2_0 ? 4 : 1);
    check_identity(make_matrix(3, cols, native_group(f), 7,
                               [](std::size_t i, std::size_t k) { return 0.001F * static_cast<float>(1 + i * 7 + k); }),
                   f);
  }
  // I2_S: one scale everywhere, any float (stored as f32, exactly).
  check_identity(make_matrix(5, 384, ternq::per_row, 8, [](std::size_t, std::size_t) { return 0.123456789F; }),
                 format::i2_s);
}

TEST_CASE("pack/unpack identity: all -1, all 0, all +1, and tiny, huge, zero and negative scales") {
  for (const format f : ternq::pack::all_formats) {
    for (const int value : {-1, 0, 1}) {
      for (const float s : {1.0F, 0.0F, 65504.0F, 1e-7F, 6e-8F, 1e-30F, -0.5F, 0.333333343F}) {
        CAPTURE(value);
        CAPTURE(s);
        ternary_matrix q(2, 2 * block_of(f), native_group(f));
        std::fill(q.codes().begin(), q.codes().end(), static_cast<std::int8_t>(value));
        std::fill(q.scales().begin(), q.scales().end(), s);
        check_identity(q, f);
      }
    }
  }
}

TEST_CASE("pack/unpack identity: a single block, the last block ending exactly at the end of the buffer") {
  for (const format f : ternq::pack::all_formats) {
    const std::size_t n = block_of(f);
    ternary_matrix q = make_matrix(1, n, native_group(f), 3, [](std::size_t, std::size_t) { return 0.5F; });
    // Exactly-sized heap buffer: any write past the last block is caught by sanitizers.
    std::vector<std::uint8_t> out(ternq::pack::packed_size(f, 1, n));
    ternq::pack::pack_into(q, f, out);
    const ternary_matrix back = ternq::pack::unpack(f, out, 1, n);
    CHECK(std::equal(back.codes().begin(), back.codes().end(), q.codes().begin()));
  }
}

TEST_CASE("group sizes: g128 into Q2_0 repeats the scale, g256 and per-row into TQ, equal scales span blocks") {
  // g128 -> Q2_0 (64-element blocks): the scale appears in both halves.
  const ternary_matrix g128 = make_matrix(
      2, 256, 128, 11, [](std::size_t i, std::size_t k) { return 0.25F * static_cast<float>(1 + 2 * i + k); });
  const auto q2 = ternq::pack::pack(g128, format::q2_0);
  for (std::size_t i = 0; i < 2; ++i) {
    for (std::size_t b = 0; b < 4; ++b) {
      const std::uint16_t d = ternq::pack::load_le<std::uint16_t>(&q2.data[(i * 4 + b) * 18]);
      CHECK(d == ternq::fp32_to_fp16_bits(g128.scale(i, b / 2)));
    }
  }
  CHECK(ternq::dequantize(ternq::pack::unpack(q2)) == ternq::dequantize(g128));  // scales 0.25 k are fp16-exact
  // g128 -> PQ2_0 and PTQ1_0: one block per group.
  CHECK(ternq::dequantize(ternq::pack::unpack(ternq::pack::pack(g128, format::pq2_0))) == ternq::dequantize(g128));
  CHECK(ternq::dequantize(ternq::pack::unpack(ternq::pack::pack(g128, format::ptq1_0))) == ternq::dequantize(g128));
  // g256 and per-row (512 columns) -> TQ1_0 / TQ2_0.
  for (const ternq::group_size_option g : {ternq::group_size_option(256), ternq::group_size_option(ternq::per_row)}) {
    const ternary_matrix m = make_matrix(2, 512, g, 12, [](std::size_t i, std::size_t k) { return 0.5F + i + k; });
    for (const format f : {format::tq1_0, format::tq2_0, format::q2_0, format::pq2_0, format::ptq1_0}) {
      CHECK(ternq::dequantize(ternq::pack::unpack(ternq::pack::pack(m, f))) == ternq::dequantize(m));
    }
  }
  // g128 -> TQ2_0 when both halves of every block share one scale.
  const ternary_matrix pairs =
      make_matrix(1, 512, 128, 13, [](std::size_t, std::size_t k) { return k < 2 ? 1.0F : 2.0F; });
  CHECK(ternq::dequantize(ternq::pack::unpack(ternq::pack::pack(pairs, format::tq2_0))) == ternq::dequantize(pairs));
  // g96 -> Q2_0: blocks straddling two groups are fine when the scales agree.
  const ternary_matrix g96 = make_matrix(1, 192, 96, 14, [](std::size_t, std::size_t) { return 0.75F; });
  CHECK(ternq::dequantize(ternq::pack::unpack(ternq::pack::pack(g96, format::q2_0))) == ternq::dequantize(g96));
  // I2_S: any group size when the whole tensor shares one scale.
  const ternary_matrix same = make_matrix(3, 256, 64, 15, [](std::size_t, std::size_t) { return 0.1F; });
  CHECK(ternq::dequantize(ternq::pack::unpack(ternq::pack::pack(same, format::i2_s))) == ternq::dequantize(same));
}

TEST_CASE("byte positions: TQ2_0 element 128h + 32l + m in byte 32h + m at bits 2l; scale last or first") {
  ternary_matrix q(1, 256, 256);
  q.scale(0, 0) = 1.0F;
  q.codes()[128 + 64 + 5] = 1;  // h = 1, l = 2, m = 5: byte 37, bits 4-5 hold code 2 instead of 1
  const auto p = ternq::pack::pack(q, format::tq2_0);
  for (std::size_t b = 0; b < 64; ++b) CHECK(p.data[b] == (b == 37 ? 0x65U : 0x55U));
  CHECK(ternq::pack::load_le<std::uint16_t>(&p.data[64]) == 0x3C00U);
  // TQ1_0: element 200 = 160 + 16 * 2 + 8 -> qs[32 + 8], digit 2.
  ternary_matrix t(1, 256, 256);
  t.scale(0, 0) = 1.0F;
  t.codes()[200] = -1;
  const auto p1 = ternq::pack::pack(t, format::tq1_0);
  for (std::size_t b = 0; b < 52; ++b) {
    const unsigned digit2 = (b == 40) ? 0U : 1U;
    const unsigned q5 = 81U + 27U + digit2 * 9U + 3U + 1U;
    CHECK(p1.data[b] == ternq::pack::base3_byte(b < 48 ? q5 : (81U + 27U + 9U + 3U)));
  }
  CHECK(ternq::pack::load_le<std::uint16_t>(&p1.data[52]) == 0x3C00U);
  // Q2_0: scale first.
  ternary_matrix s(1, 64, 64);
  s.scale(0, 0) = -2.0F;
  const auto p2 = ternq::pack::pack(s, format::q2_0);
  CHECK(ternq::pack::load_le<std::uint16_t>(&p2.data[0]) == 0xC000U);
  CHECK(p2.data[2] == 0x55U);
}

TEST_CASE("compatibility errors name the conflict") {
  using ternq::pack::pack;
  const ternq::pack::pack_options refit{.refit = ternq::pack::refit_policy::symmetric_per_block};
  const std::string hint =
      " (pack_options{.refit = refit_policy::symmetric_per_block} re-fits it, changing the weights)";

  const ternary_matrix narrow(2, 300, 128);
  CHECK_THROWS_WITH_AS(pack(narrow, format::tq2_0),
                       "[ternq.shape_mismatch] pack TQ2_0: in_features 300 is not a multiple of the 256-element block",
                       ternq::error);
  CHECK_THROWS_WITH_AS(pack(narrow, format::tq2_0, refit),
                       "[ternq.shape_mismatch] pack TQ2_0: in_features 300 is not a multiple of the 256-element block",
                       ternq::error);
  CHECK_THROWS_WITH_AS(pack(ternary_matrix(0, 256, 128), format::q2_0),
                       "[ternq.empty_matrix] pack Q2_0: the matrix is empty (0x256)", ternq::error);

  ternary_matrix asym(2, 256, 128, /*with_offsets=*/true);
  CHECK_THROWS_WITH_AS(pack(asym, format::pq2_0),
                       ("[ternq.unsupported] pack PQ2_0: the matrix is asymmetric (alpha T + mu); no ternary GGML "
                        "format stores an offset" +
                        hint)
                           .c_str(),
                       ternq::error);

  ternary_matrix perm(1, 128, 128);
  std::vector<std::size_t> order(128);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::swap(order[0], order[1]);
  perm.set_permutation(order);
  CHECK_THROWS_WITH_AS(pack(perm, format::ptq1_0),
                       ("[ternq.unsupported] pack PTQ1_0: the matrix has a column permutation; the format stores "
                        "columns in their original order" +
                        hint)
                           .c_str(),
                       ternq::error);

  const ternary_matrix g128 =
      make_matrix(2, 512, 128, 21, [](std::size_t i, std::size_t k) { return (i == 1 && k == 3) ? 0.25F : 0.5F; });
  CHECK_THROWS_WITH_AS(pack(g128, format::tq1_0),
                       ("[ternq.unsupported] pack TQ1_0: row 1, block 1 (columns 256..511) spans groups 2 and 3 with "
                        "different scales (0.5 and 0.25); a block stores one scale, so the group size 128 must be a "
                        "multiple of 256 or the groups inside a block must share their scale" +
                        hint)
                           .c_str(),
                       ternq::error);
  CHECK_THROWS_WITH_AS(pack(g128, format::i2_s),
                       ("[ternq.unsupported] pack I2_S: the format stores one scale per tensor, but row 1, group 3 "
                        "has scale 0.25 and row 0, group 0 has 0.5" +
                        hint)
                           .c_str(),
                       ternq::error);

  ternary_matrix bad_code(1, 64, 64);
  bad_code.codes()[5] = 2;
  CHECK_THROWS_WITH_AS(pack(bad_code, format::q2_0, refit),
                       "[ternq.invalid_argument] pack Q2_0: code 2 at (0, 5) is not in {-1, 0, +1}", ternq::error);

  ternary_matrix nan_scale(1, 64, 64);
  nan_scale.scale(0, 0) = std::nanf("");
  CHECK_THROWS_WITH_AS(pack(nan_scale, format::q2_0),
                       "[ternq.non_finite] pack Q2_0: the scale of row 0, group 0 is not finite (nan)", ternq::error);

  ternary_matrix huge(1, 128, 64);
  huge.scale(0, 1) = 65520.0F;  // rounds to fp16 Inf
  CHECK_THROWS_WITH_AS(pack(huge, format::q2_0, refit),
                       "[ternq.unsupported] pack Q2_0: the scale 65520 of row 0, group 1 overflows fp16 (largest "
                       "finite 65504)",
                       ternq::error);
  huge.scale(0, 1) = 65519.0F;  // rounds to 65504: the format's precision, not a conflict
  CHECK(ternq::pack::unpack(pack(huge, format::q2_0)).scale(0, 1) == 65504.0F);
  CHECK(pack(huge, format::i2_s, refit).refit.has_value());  // I2_S holds f32, but one scale: re-fitted

  std::vector<std::uint8_t> short_buffer(10);
  CHECK_THROWS_WITH_AS(ternq::pack::pack_into(ternary_matrix(1, 64, 64), format::q2_0, short_buffer),
                       "[ternq.shape_mismatch] pack Q2_0: 10 bytes for a 1x64 matrix (expected 18)", ternq::error);
}

TEST_CASE("re-fit: only on request, only when needed, and reported") {
  ternq::testing::rng r(5);
  ternary_matrix asym(4, 256, 128, /*with_offsets=*/true);
  for (auto& c : asym.codes()) c = static_cast<std::int8_t>(static_cast<int>(r.next() % 3) - 1);
  for (auto& s : asym.scales()) s = 0.5F + static_cast<float>(r.uniform());
  for (auto& o : asym.offsets()) o = 0.1F * static_cast<float>(r.uniform() - 0.5);
  const ternq::pack::pack_options opt{.refit = ternq::pack::refit_policy::symmetric_per_block};

  for (const format f : ternq::pack::all_formats) {
    CAPTURE(ternq::pack::name_of(f));
    const auto p = ternq::pack::pack(asym, f, opt);
    REQUIRE(p.refit.has_value());
    CHECK(p.refit->reason.rfind("pack " + std::string(ternq::pack::name_of(f)) + ": the matrix is asymmetric", 0) == 0);
    // The recorded error is the true relative change of the weights (up to the fp16 rounding of the scales).
    const std::vector<float> before = ternq::dequantize(asym);
    const std::vector<float> after = ternq::pack::to_float(p.type(), p.data, 4, 256);
    double err = 0.0;
    double norm = 0.0;
    for (std::size_t k = 0; k < before.size(); ++k) {
      err += (before[k] - after[k]) * static_cast<double>(before[k] - after[k]);
      norm += before[k] * static_cast<double>(before[k]);
    }
    CHECK(p.refit->relative_error == doctest::Approx(err / norm).epsilon(1e-2));
    CHECK(p.refit->relative_error > 0.0);
    CHECK(p.refit->relative_error < 0.05);
  }

  // A permuted matrix is re-fitted in the original column order.
  ternary_matrix perm(1, 128, 128);
  for (std::size_t j = 0; j < 128; ++j) perm.codes()[j] = static_cast<std::int8_t>(j % 2 == 0 ? 1 : -1);
  perm.scale(0, 0) = 0.5F;
  std::vector<std::size_t> order(128);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::reverse(order.begin(), order.end());
  perm.set_permutation(order);
  const auto p = ternq::pack::pack(perm, format::pq2_0, opt);
  REQUIRE(p.refit.has_value());
  CHECK(p.refit->relative_error == 0.0);  // ternary already: the optimum reproduces it exactly
  CHECK(ternq::pack::to_float(p.type(), p.data, 1, 128) == ternq::dequantize(perm));

  // A compatible matrix is packed as it is even when re-fit is allowed.
  const ternary_matrix ok = make_matrix(1, 256, 256, 9, [](std::size_t, std::size_t) { return 0.3F; });
  const auto same = ternq::pack::pack(ok, format::tq2_0, opt);
  CHECK_FALSE(same.refit.has_value());
  CHECK(same.data == ternq::pack::pack(ok, format::tq2_0).data);
}

TEST_CASE("unpack: sizes, code 3, non-finite scales and the output's grid are checked") {
  std::vector<std::uint8_t> q2(18, 0x55U);
  ternq::pack::store_le(&q2[0], std::uint16_t{0x3C00U});
  q2[2 + 3] = 0x57U;  // element 12 has code 3
  CHECK_THROWS_WITH_AS(ternq::pack::unpack(format::q2_0, q2, 1, 64),
                       "[ternq.unsupported] unpack Q2_0: code 3 (+2 d) at (0, 12) is not ternary", ternq::error);
  // ggml's decoding reads it as +2 d.
  CHECK(ternq::pack::to_float(ternq::pack::ggml_type::q2_0, q2, 1, 64)[12] == 2.0F);
  q2[5] = 0x55U;
  ternq::pack::store_le(&q2[0], std::uint16_t{0x7C00U});
  CHECK_THROWS_WITH_AS(ternq::pack::unpack(format::q2_0, q2, 1, 64),
                       "[ternq.non_finite] unpack Q2_0: the scale of row 0, block 0 is not finite (inf)", ternq::error);
  CHECK_THROWS_WITH_AS(ternq::pack::unpack(format::q2_0, q2, 2, 64),
                       "[ternq.shape_mismatch] unpack Q2_0: 18 bytes for a 2x64 matrix (expected 36)", ternq::error);
  CHECK_THROWS_WITH_AS(ternq::pack::unpack(format::tq2_0, q2, 1, 64),
                       "[ternq.shape_mismatch] unpack TQ2_0: in_features 64 is not a multiple of the 256-element block",
                       ternq::error);
  std::vector<std::uint8_t> tq(66, 0);
  ternary_matrix wrong(1, 256, 128);
  CHECK_THROWS_WITH_AS(ternq::pack::unpack_into(format::tq2_0, tq, wrong),
                       "[ternq.invalid_argument] unpack TQ2_0: the output matrix must be symmetric with group size 256 "
                       "(it has group size 128)",
                       ternq::error);
  // I2_S code 3 is located in row and column.
  std::vector<std::uint8_t> i2(2 * 128 / 4 + 32, 0x55U);
  std::fill(i2.begin() + 64, i2.end(), std::uint8_t{0});
  ternq::pack::store_le(&i2[64], 1.0F);
  i2[32 + 2] = 0xD5U;  // group 1 (row 1), element 2 has code 3
  CHECK_THROWS_WITH_AS(ternq::pack::unpack(format::i2_s, i2, 2, 128),
                       "[ternq.unsupported] unpack I2_S: code 3 (+2 d) at (1, 2) is not ternary", ternq::error);
}

TEST_CASE("format table: ids, block sizes and bits per weight") {
  using ternq::pack::traits_of;
  CHECK(traits_of(format::tq1_0).bits_per_weight() == 1.6875);
  CHECK(traits_of(format::tq2_0).bits_per_weight() == 2.0625);
  CHECK(traits_of(format::q2_0).bits_per_weight() == 2.25);
  CHECK(traits_of(format::pq2_0).bits_per_weight() == 2.125);
  CHECK(traits_of(format::ptq1_0).bits_per_weight() == 1.75);
  CHECK(traits_of(format::i2_s).bits_per_weight() == 2.0);
  CHECK(static_cast<int>(ternq::pack::ggml_type_of(format::q2_0)) == 42);
  CHECK(static_cast<int>(ternq::pack::ggml_type_of(format::pq2_0)) == 142);
  CHECK(static_cast<int>(ternq::pack::ggml_type_of(format::ptq1_0)) == 143);
  CHECK(static_cast<int>(ternq::pack::ggml_type_of(format::i2_s)) == 36);
  CHECK(ternq::pack::packed_size(format::i2_s, 4, 256) == 4 * 256 / 4 + 32);
  CHECK(ternq::pack::find_ggml_type(2) == nullptr);
  CHECK(ternq::pack::ggml_type_name(2) == "type 2");
  CHECK(ternq::pack::format_of(ternq::pack::ggml_type::bf16) == std::nullopt);
  CHECK(ternq::pack::traits_of(ternq::pack::ggml_type::bf16).block_bytes == 2);
}
