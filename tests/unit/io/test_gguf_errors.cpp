// SPDX-License-Identifier: MIT
// GGUF writer misuse and reader corruptions: each named by its exact message; hostile bytes never read out of bounds.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gguf_test_support.hpp"
#include "llm_like.hpp"
#include "ternq/io/gguf_reader.hpp"
#include "ternq/io/gguf_writer.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/pack.hpp"

namespace {

using ternq::io::gguf_array;
using ternq::io::gguf_reader;
using ternq::io::gguf_writer;
using ternq::pack::ggml_type;

/// A small valid file: keys "a" (u32 7) and "b" (string "xy"), tensor "t" (F32, 8 values).
/// Layout: header 0..23; "a" at 24 (key 24..32, type 33..36, value 37..40); "b" at 41 (key length 41..48, 'b' at
/// 49, type 50..53, value 54..63); tensor info at 64 (name 64..72, n_dims 73..76, ne 77..84, type 85..88,
/// offset 89..96); data at 128 (32 bytes).
std::vector<std::uint8_t> small_file() {
  gguf_writer w;
  w.add("a", std::uint32_t{7});
  w.add("b", std::string("xy"));
  w.add_tensor("t", ggml_type::f32, {8});
  const std::vector<float> v(8, 1.5F);
  return ternq::testing::write_to_memory(w,
                                         [&](gguf_writer& out) { out.write_tensor("t", std::span<const float>(v)); });
}

}  // namespace

TEST_CASE("gguf writer: misuse is refused with the key or tensor named") {
  gguf_writer w;
  w.add("k", std::uint32_t{1});
  CHECK_THROWS_WITH_AS(w.add("k", 2.0F), "[ternq.invalid_argument] gguf_metadata: duplicated key 'k'", ternq::error);
  CHECK_THROWS_WITH_AS(w.add("", 2.0F), "[ternq.invalid_argument] gguf_metadata: empty key", ternq::error);
  w.add_tensor("t", ggml_type::tq2_0, {256, 2});
  CHECK_THROWS_WITH_AS(w.add_tensor("t", ggml_type::f32, {1}),
                       "[ternq.invalid_argument] gguf_writer: duplicated tensor name 't'", ternq::error);
  const std::string long_name(64, 'x');
  CHECK_THROWS_WITH_AS(
      w.add_tensor(long_name, ggml_type::f32, {1}),
      ("[ternq.invalid_argument] gguf_writer: tensor '" + long_name + "': the name has 64 bytes (at most 63)").c_str(),
      ternq::error);
  CHECK_NOTHROW(w.add_tensor(std::string(63, 'y'), ggml_type::f32, {1}));
  CHECK_THROWS_WITH_AS(w.add_tensor("five", ggml_type::f32, {1, 1, 1, 1, 1}),
                       "[ternq.invalid_argument] gguf_writer: tensor 'five': 5 extents (1 to 4)", ternq::error);
  CHECK_THROWS_WITH_AS(w.add_tensor("q", ggml_type::tq1_0, {128, 4}),
                       "[ternq.invalid_argument] gguf_writer: tensor 'q': ne[0] = 128 is not a multiple of the "
                       "256-element block of TQ1_0",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.add_tensor("neg", ggml_type::f32, {4, -1}),
                       "[ternq.invalid_argument] gguf_writer: tensor 'neg': ne[1] = -1 is negative", ternq::error);
  CHECK_THROWS_WITH_AS(w.add_tensor("q4", static_cast<ggml_type>(2), {32}),
                       "[ternq.unsupported] gguf_writer: tensor 'q4': ggml type 2 is not one ternq writes",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.set_alignment(48), "[ternq.invalid_argument] gguf_writer: alignment 48 is not a power of two",
                       ternq::error);

  gguf_writer bad_alignment;
  bad_alignment.add("general.alignment", std::uint64_t{64});
  std::ostringstream sink;
  CHECK_THROWS_WITH_AS(bad_alignment.open(sink),
                       "[ternq.invalid_argument] gguf_writer: general.alignment must be a UINT32 power of two (it is "
                       "UINT64)",
                       ternq::error);
}

TEST_CASE("gguf writer: data is checked against its info, in order, and id 42 never holds 128-element blocks") {
  gguf_writer w;
  w.add_tensor("a", ggml_type::q2_0, {128, 2});
  w.add_tensor("b", ggml_type::f16, {4});
  std::ostringstream out(std::ios::binary);
  w.open(out);
  CHECK_THROWS_WITH_AS(w.add("late", true), "[ternq.invalid_argument] gguf_writer: edit_metadata() called after open()",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.add_tensor("late", ggml_type::f32, {1}),
                       "[ternq.invalid_argument] gguf_writer: add_tensor() called after open()", ternq::error);
  const std::vector<std::uint8_t> prism_g128(2 * 34, 0);  // the old 128-element layout: 34-byte blocks
  CHECK_THROWS_WITH_AS(w.write_tensor("a", prism_g128),
                       "[ternq.unsupported] gguf_writer: tensor 'a': refusing 34-byte blocks of 128 elements under "
                       "ggml type 42; id 42 is mainline Q2_0 with 64-element blocks (pack format::q2_0, which repeats "
                       "a group-128 scale in both halves, or write PQ2_0, id 142)",
                       ternq::error);
  const std::vector<std::uint8_t> wrong(10, 0);
  CHECK_THROWS_WITH_AS(w.write_tensor("a", wrong),
                       "[ternq.invalid_argument] gguf_writer: tensor 'a' has 10 bytes of data; its Q2_0 info needs 72",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.write_tensor("b", wrong),
                       "[ternq.invalid_argument] gguf_writer: tensor 'b' written out of order (next is 'a')",
                       ternq::error);
  ternq::ternary_matrix g128(2, 128, 128);
  const auto pq = ternq::pack::pack(g128, ternq::pack::format::pq2_0);
  CHECK_THROWS_WITH_AS(w.write_tensor("a", pq),
                       "[ternq.invalid_argument] gguf_writer: tensor 'a' is declared Q2_0 but the packed data is PQ2_0",
                       ternq::error);
  const ternq::ternary_matrix wide(1, 256, 128);  // same bytes as 2x128, another shape
  CHECK_THROWS_WITH_AS(w.write_tensor("a", ternq::pack::pack(wide, ternq::pack::format::q2_0)),
                       "[ternq.invalid_argument] gguf_writer: tensor 'a' is declared with ne[0] = 128 and 2 rows, but "
                       "the packed matrix is 1x256",
                       ternq::error);
  CHECK_NOTHROW(w.write_tensor("a", ternq::pack::pack(g128, ternq::pack::format::q2_0)));
  const std::vector<float> three(3, 0.0F);
  CHECK_THROWS_WITH_AS(w.write_tensor("b", std::span<const float>(three)),
                       "[ternq.invalid_argument] gguf_writer: tensor 'b' has 3 values; its info needs 4", ternq::error);
  CHECK_THROWS_WITH_AS(w.close(), "[ternq.invalid_argument] gguf_writer: close() after 1 of 2 tensors (next: 'b')",
                       ternq::error);
  const std::vector<float> four(4, 0.0F);
  w.write_tensor("b", std::span<const float>(four));
  CHECK_THROWS_WITH_AS(w.write_tensor("c", std::span<const float>(four)),
                       "[ternq.invalid_argument] gguf_writer: tensor 'c' written after all 2 declared tensors",
                       ternq::error);
  w.close();
}

TEST_CASE("gguf writer: a tensor given in pieces is the file write_tensor writes, and its size is checked") {
  const std::vector<std::uint8_t> a(40, 0x11), b(14, 0x22);  // 10 F32 values, then 7 F16 values
  const auto describe = [](gguf_writer& w) {
    w.add("k", std::uint32_t{3});
    w.add_tensor("a", ggml_type::f32, {10});
    w.add_tensor("b", ggml_type::f16, {7});
  };
  gguf_writer whole;
  describe(whole);
  const auto expected = ternq::testing::write_to_memory(whole, [&](gguf_writer& out) {
    out.write_tensor("a", std::span<const std::uint8_t>(a));
    out.write_tensor("b", std::span<const std::uint8_t>(b));
  });
  gguf_writer pieces;
  describe(pieces);
  const auto got = ternq::testing::write_to_memory(pieces, [&](gguf_writer& out) {
    const std::span<const std::uint8_t> all(a);
    out.begin_tensor("a");
    out.write_part(all.first(12));
    out.write_part(all.subspan(12, 0));
    out.write_part(all.subspan(12));
    out.end_tensor();
    out.begin_tensor("b");  // one piece, then the padding
    out.write_part(b);
    out.end_tensor();
  });
  CHECK(got == expected);

  gguf_writer w;
  describe(w);
  CHECK_THROWS_WITH_AS(w.begin_tensor("a"), "[ternq.invalid_argument] gguf_writer: begin_tensor() called before open()",
                       ternq::error);
  std::ostringstream out(std::ios::binary);
  w.open(out);
  CHECK_THROWS_WITH_AS(w.write_part(b), "[ternq.invalid_argument] gguf_writer: write_part() without begin_tensor()",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.end_tensor(), "[ternq.invalid_argument] gguf_writer: end_tensor() without begin_tensor()",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.begin_tensor("b"),
                       "[ternq.invalid_argument] gguf_writer: tensor 'b' written out of order (next is 'a')",
                       ternq::error);
  w.begin_tensor("a");
  w.write_part(std::span<const std::uint8_t>(a).first(30));
  CHECK_THROWS_WITH_AS(w.write_part(std::span<const std::uint8_t>(a).first(11)),
                       "[ternq.invalid_argument] gguf_writer: tensor 'a' given 41 bytes of data; its F32 info needs 40",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.end_tensor(),
                       "[ternq.invalid_argument] gguf_writer: tensor 'a' ended after 30 bytes of data; its F32 info "
                       "needs 40",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.write_tensor("b", b),
                       "[ternq.invalid_argument] gguf_writer: tensor 'b' started before end_tensor() of tensor 'a'",
                       ternq::error);
  CHECK_THROWS_WITH_AS(w.close(), "[ternq.invalid_argument] gguf_writer: close() before end_tensor() of tensor 'a'",
                       ternq::error);
  w.write_part(std::span<const std::uint8_t>(a).subspan(30));
  w.end_tensor();
  w.write_tensor("b", b);
  w.close();
}

TEST_CASE("gguf writer: a failing stream is an io error") {
  gguf_writer w;
  w.add_tensor("a", ggml_type::f32, {1});
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  CHECK_THROWS_WITH_AS(w.open(out), "[ternq.io] gguf_writer: writing the stream failed at byte 0", ternq::error);
  gguf_writer nowhere;
  CHECK_THROWS_WITH_AS(
      nowhere.open("/nonexistent-dir/x.gguf"),
      "[ternq.io] gguf_writer: cannot create a temporary file for '/nonexistent-dir/x.gguf': No such file or "
      "directory",
      ternq::error);
}

TEST_CASE("gguf reader: the small file's layout is as documented") {
  const auto bytes = small_file();
  REQUIRE(bytes.size() == 160);
  CHECK(bytes[49] == 'b');
  CHECK(ternq::pack::load_le<std::uint64_t>(&bytes[89]) == 0);
  const gguf_reader r = gguf_reader::from_bytes(bytes);
  CHECK(r.data_offset() == 128);
  CHECK(r.metadata().get<std::uint32_t>("a") == 7);
  CHECK_THROWS_WITH_AS(static_cast<void>(r.metadata().get<float>("a")),
                       "[ternq.invalid_argument] gguf_metadata: key 'a' holds UINT32, not the requested type",
                       ternq::error);
}

TEST_CASE("gguf reader: corruptions are named") {
  const auto good = small_file();
  const auto with = [&](auto&& edit) {
    auto b = good;
    edit(b);
    return b;
  };
  const auto read = [](std::vector<std::uint8_t> b) { static_cast<void>(gguf_reader::from_bytes(std::move(b))); };

  CHECK_THROWS_WITH_AS(read(with([](auto& b) { b[3] = 'X'; })),
                       "[ternq.corrupt_file] gguf_reader: bad magic \"GGUX\" (expected \"GGUF\")", ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { b[0] = 0; })),
                       "[ternq.corrupt_file] gguf_reader: bad magic \"\\x00GUF\" (expected \"GGUF\")", ternq::error);
  CHECK_THROWS_WITH_AS(read({}),
                       "[ternq.corrupt_file] gguf_reader: truncated file: the magic needs 4 bytes at offset 0, only 0 "
                       "remain",
                       ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { b[4] = 1; })),
                       "[ternq.unsupported] gguf_reader: GGUF version 1 is not supported (2 and 3 are)", ternq::error);
  // Truncated: inside the header, a key, a value, a tensor info, and the data.
  CHECK_THROWS_WITH_AS(read({good.begin(), good.begin() + 20}),
                       "[ternq.corrupt_file] gguf_reader: truncated file: the key-value count needs 8 bytes at offset "
                       "16, only 4 remain",
                       ternq::error);
  CHECK_THROWS_WITH_AS(read({good.begin(), good.begin() + 62}),
                       "[ternq.corrupt_file] gguf_reader: truncated file: the value of 'b' needs 2 bytes at offset 62, "
                       "only 0 remain",
                       ternq::error);
  CHECK_THROWS_WITH_AS(read({good.begin(), good.begin() + 90}),
                       "[ternq.corrupt_file] gguf_reader: truncated file: the offset of tensor 't' needs 8 bytes at "
                       "offset 89, only 1 remain",
                       ternq::error);
  CHECK_THROWS_WITH_AS(read({good.begin(), good.end() - 1}),
                       "[ternq.corrupt_file] gguf_reader: tensor 't' data [128, 160) extends beyond the end of the "
                       "file (159 bytes)",
                       ternq::error);
  // An offset beyond the end, or merely not the running sum.
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { ternq::pack::store_le(&b[89], std::uint64_t{1} << 40U); })),
                       "[ternq.corrupt_file] gguf_reader: tensor 't' has offset 1099511627776, expected 0",
                       ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { ternq::pack::store_le(&b[77], std::int64_t{1} << 40); })),
                       "[ternq.corrupt_file] gguf_reader: tensor 't' data [128, 4398046511232) extends beyond the end "
                       "of the file (160 bytes)",
                       ternq::error);
  // Keys: duplicated, invalid types, arrays of arrays, bool bytes.
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { b[49] = 'a'; })), "[ternq.corrupt_file] gguf_reader: duplicated key 'a'",
                       ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { b[33] = 13; })),
                       "[ternq.corrupt_file] gguf_reader: key 'a' has invalid value type 13", ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) {
                         b[33] = 9;  // ARRAY, whose element type (the old value 7) is BOOL... with 9: nested
                         b[37] = 9;
                       })),
                       "[ternq.corrupt_file] gguf_reader: key 'a' is an array of arrays", ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) {
                         b[33] = 7;  // BOOL holding the byte 7
                       })),
                       "[ternq.corrupt_file] gguf_reader: the value of 'a': bool byte 7 is not 0 or 1", ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { ternq::pack::store_le(&b[41], std::uint64_t{1} << 62U); })),
                       "[ternq.corrupt_file] gguf_reader: truncated file: the key of pair 1 needs 4611686018427387904 "
                       "bytes at offset 49, only 111 remain",
                       ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { ternq::pack::store_le(&b[16], std::uint64_t{1000}); })),
                       "[ternq.corrupt_file] gguf_reader: the header declares 1000 key-value pairs, more than the file "
                       "holds",
                       ternq::error);
  // Tensor infos: a type ternq does not know, too many dimensions, ne[0] off the block.
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { b[85] = 12; })),
                       "[ternq.unsupported] gguf_reader: tensor 't' has ggml type 12, which ternq does not read",
                       ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { b[73] = 5; })),
                       "[ternq.corrupt_file] gguf_reader: tensor 't' has 5 dimensions (at most 4)", ternq::error);
  CHECK_THROWS_WITH_AS(read(with([](auto& b) { b[85] = 35; })),
                       "[ternq.corrupt_file] gguf_reader: tensor 't': ne[0] = 8 is not a multiple of the 256-element "
                       "block of TQ2_0",
                       ternq::error);
}

TEST_CASE("gguf reader: general.alignment must be a UINT32 power of two") {
  for (const auto& [value, message] :
       {std::pair<ternq::io::gguf_value, const char*>{std::uint32_t{24},
                                                      "[ternq.corrupt_file] gguf_reader: general.alignment = 24 is "
                                                      "not a power of two"},
        std::pair<ternq::io::gguf_value, const char*>{std::int32_t{32},
                                                      "[ternq.corrupt_file] gguf_reader: general.alignment is INT32, "
                                                      "not UINT32"}}) {
    // Write a valid file with alignment 32, then change the stored value in place.
    gguf_writer w;
    w.add("general.alignment", std::uint32_t{32});
    auto bytes = ternq::testing::write_to_memory(w, [](gguf_writer&) {});
    const std::size_t type_at = 24 + 8 + 17;
    if (std::holds_alternative<std::int32_t>(value)) {
      ternq::pack::store_le(&bytes[type_at], std::int32_t{5});
    } else {
      ternq::pack::store_le(&bytes[type_at + 4], std::get<std::uint32_t>(value));
    }
    CHECK_THROWS_WITH_AS(static_cast<void>(gguf_reader::from_bytes(bytes)), message, ternq::error);
  }
}

TEST_CASE("gguf reader: hostile bytes give a ternq::error or a valid file, never a crash") {
  // Every byte of the header, metadata and tensor infos of a file with arrays, set to several values, and every
  // prefix of the file: parsing either succeeds or throws ternq::error (run under sanitizers for bounds).
  gguf_writer w;
  w.add("tokens", gguf_array(std::vector<std::string>{"a", "bc", "def"}));
  w.add("scores", gguf_array(std::vector<float>{0.0F, -1.0F, -2.0F}));
  w.add("flag", true);
  w.add_tensor("x", ggml_type::tq2_0, {256, 1});
  w.add_tensor("y", ggml_type::f32, {4});
  const auto good = ternq::testing::write_to_memory(w, [](gguf_writer& out) {
    out.write_tensor("x", std::vector<std::uint8_t>(66, 0x55));
    const std::vector<float> y(4, 1.0F);
    out.write_tensor("y", std::span<const float>(y));
  });
  const std::size_t header_end = gguf_reader::from_bytes(good).data_offset();
  int parsed = 0;
  int refused = 0;
  const auto attempt = [&](std::vector<std::uint8_t> b) {
    try {
      const gguf_reader r = gguf_reader::from_bytes(std::move(b));
      for (const auto& t : r.tensors()) static_cast<void>(r.read_tensor_data(t));
      ++parsed;
    } catch (const ternq::error&) {
      ++refused;
    }
  };
  for (std::size_t k = 0; k < header_end; ++k) {
    for (const std::uint8_t v : {0x00, 0x01, 0x09, 0x7F, 0x80, 0xFF}) {
      auto b = good;
      b[k] = v;
      attempt(std::move(b));
    }
  }
  for (std::size_t n = 0; n < good.size(); ++n) attempt({good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)});
  CHECK(parsed > 0);
  CHECK(refused > 0);
}
