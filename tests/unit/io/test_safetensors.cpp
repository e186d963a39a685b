// SPDX-License-Identifier: MIT
// safetensors: writer/reader round trips for every float dtype, and hostile files failing with the right error.
#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "ternq/core/half.hpp"
#include "ternq/io/detail/read_float.hpp"
#include "ternq/io/safetensors_reader.hpp"
#include "ternq/io/safetensors_writer.hpp"

using ternq::io::dtype;
using ternq::io::safetensors_file;
using ternq::io::safetensors_writer;
using ternq::testing::safetensors_bytes;
using ternq::testing::temp_dir;
using ternq::testing::write_file;

namespace {

/// Values none of which is exact in F16 or BF16, of both signs and several magnitudes.
std::vector<float> awkward_values(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = (i % 2 == 0 ? 1.0F : -1.0F) * (0.1F + 0.37F * static_cast<float>(i));
  return v;
}

float via_f16(float x) { return ternq::fp16_bits_to_fp32(ternq::fp32_to_fp16_bits(x)); }
float via_bf16(float x) { return ternq::bf16_bits_to_fp32(ternq::fp32_to_bf16_bits(x)); }

/// Opening `bytes` as a safetensors file fails with exactly `message` (after the path).
std::string open_error(const temp_dir& dir, const std::string& bytes) {
  const auto path = dir / "bad.safetensors";
  write_file(path, bytes);
  try {
    const safetensors_file f(path);
    return "(opened)";
  } catch (const ternq::error& e) {
    const std::string prefix = "safetensors '" + path.string() + "'";
    std::string what = e.what();
    const auto at = what.find(prefix);
    return at == std::string::npos ? what : what.replace(at, prefix.size(), "FILE");
  }
}

}  // namespace

TEST_CASE("safetensors: F32, F16 and BF16 tensors of every rank round-trip through the writer and reader") {
  const temp_dir dir("io-test");
  const std::vector<float> w = awkward_values(6);      // 2x3 F32
  const std::vector<float> h = awkward_values(12);     // 3x4 F16
  const std::vector<float> b = awkward_values(5);      // [5] BF16
  const std::vector<float> cube = awkward_values(24);  // [2, 3, 4] F32
  const std::vector<float> scalar{2.5F};
  const std::vector<float> none;  // [0, 3]: no elements
  safetensors_writer out;
  out.add("w", dtype::f32, ternq::row_major(w.data(), 2, 3));
  out.add("h", dtype::f16, ternq::row_major(h.data(), 3, 4));
  out.add("b", dtype::bf16, {5}, b);
  out.add("cube", dtype::f32, {2, 3, 4}, cube);
  out.add("scalar", dtype::bf16, {}, scalar);
  out.add("none", dtype::f16, {0, 3}, none);
  out.set_metadata("format", "pt");
  out.set_metadata("producer", "ternq tests");
  CHECK(out.size() == 6);
  const auto path = dir / "all.safetensors";
  out.write(path);
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);

  const safetensors_file f(path);
  CHECK(f.data_offset() % 8 == 0);
  REQUIRE(f.tensors().size() == 6);
  // Data order: 4-byte elements first, then 2-byte ones, by name within each size.
  const std::vector<std::string> order{"cube", "w", "b", "h", "none", "scalar"};
  for (std::size_t i = 0; i < order.size(); ++i) CHECK(f.tensors()[i].name == order[i]);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("producer") == "ternq tests");

  CHECK(f.info("w").type == dtype::f32);
  CHECK(f.info("w").shape == std::vector<std::size_t>{2, 3});
  CHECK(f.info("h").type == dtype::f16);
  CHECK(f.info("b").shape == std::vector<std::size_t>{5});
  CHECK(f.info("scalar").shape.empty());
  CHECK(f.info("scalar").element_count() == 1);
  CHECK(f.info("none").element_count() == 0);
  CHECK(f.info("cube").byte_size() == 96);

  // F32 is exact, as a view in place and as a copy.
  const auto wv = f.view("w");
  REQUIRE(wv.rows() == 2);
  REQUIRE(wv.cols() == 3);
  const auto wm = f.matrix("w");
  for (std::size_t i = 0; i < 2; ++i) {
    for (std::size_t j = 0; j < 3; ++j) {
      CHECK(wv(i, j) == w[i * 3 + j]);
      CHECK(wm(i, j) == w[i * 3 + j]);
    }
  }
  CHECK(f.values("cube") == cube);
  // F16 and BF16 hold the values rounded to nearest even, and read back exactly those.
  const auto hm = f.matrix("h");
  REQUIRE(hm.rows() == 3);
  REQUIRE(hm.cols() == 4);
  for (std::size_t k = 0; k < h.size(); ++k) CHECK(hm.values()[k] == via_f16(h[k]));
  const auto bv = f.values("b");
  for (std::size_t k = 0; k < b.size(); ++k) CHECK(bv[k] == via_bf16(b[k]));
  const auto bm = f.matrix("b");  // a vector is one row
  CHECK(bm.rows() == 1);
  CHECK(bm.cols() == 5);
  CHECK(f.matrix("scalar")(0, 0) == 2.5F);
  CHECK(f.matrix("none").rows() == 0);
  // The raw bytes of a BF16 element are the little-endian bits.
  const auto raw = f.bytes("scalar");
  REQUIRE(raw.size() == 2);
  CHECK(std::to_integer<unsigned>(raw[0]) == (ternq::fp32_to_bf16_bits(2.5F) & 0xFFU));
  CHECK(std::to_integer<unsigned>(raw[1]) == (ternq::fp32_to_bf16_bits(2.5F) >> 8U));
  std::vector<float> into(5);
  f.read_values("b", into);
  CHECK(into == bv);
}

TEST_CASE("safetensors: the writer's output does not depend on the order of add calls") {
  const temp_dir dir("io-test");
  const std::vector<float> a = awkward_values(3);
  const std::vector<float> b = awkward_values(7);
  safetensors_writer one;
  one.add("a", dtype::f16, {3}, a);
  one.add("b", dtype::f32, {7}, b);
  safetensors_writer two;
  two.add("b", dtype::f32, {7}, b);
  two.add("a", dtype::f16, {3}, a);
  one.write(dir / "one.safetensors");
  two.write(dir / "two.safetensors");
  const std::string bytes = ternq::testing::read_file(dir / "one.safetensors");
  CHECK(bytes == ternq::testing::read_file(dir / "two.safetensors"));
  // The header, exactly: metadata none, 4-byte tensors first, padded with spaces to 8.
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[7],"data_offsets":[0,28]},"a":{"dtype":"F16","shape":[3],"data_offsets":[28,34]}})";
  const std::size_t padded = (header.size() + 7) / 8 * 8;
  CHECK(bytes.substr(0, 8) == ternq::testing::le64(padded));
  CHECK(bytes.substr(8, padded) == header + std::string(padded - header.size(), ' '));
  CHECK(bytes.size() == 8 + padded + 34);
}

TEST_CASE("safetensors: a strided view is written in row-major order") {
  const temp_dir dir("io-test");
  const std::vector<float> storage{1, 2, 3, 4, 5, 6};  // 2x3 row-major; its transpose is 3x2 strided
  safetensors_writer out;
  out.add("t", dtype::f32, ternq::row_major(storage.data(), 2, 3).transposed());
  out.write(dir / "t.safetensors");
  const safetensors_file f(dir / "t.safetensors");
  CHECK(f.info("t").shape == std::vector<std::size_t>{3, 2});
  CHECK(f.values("t") == std::vector<float>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("safetensors: files with other dtypes open; their tensors cannot be read as float") {
  const temp_dir dir("io-test");
  const auto path = dir / "ints.safetensors";
  write_file(path,
             safetensors_bytes(R"({"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\x01')));
  const safetensors_file f(path);
  CHECK(f.info("i").type == dtype::i32);
  CHECK(f.bytes("i").size() == 8);
  const std::string where = "safetensors '" + path.string() + "'";
  CHECK_THROWS_WITH_AS(
      static_cast<void>(f.values("i")),
      ("[ternq.unsupported] " + where + ": tensor 'i' has dtype I32; ternq reads F32, F16 and BF16").c_str(),
      ternq::error);
  CHECK_THROWS_WITH_AS(static_cast<void>(f.view("i")),
                       ("[ternq.unsupported] " + where +
                        ": tensor 'i' is I32; only F32 tensors can be viewed in place (matrix() converts)")
                           .c_str(),
                       ternq::error);
}

TEST_CASE("safetensors: views refuse what they cannot show in place, and lookups name the missing tensor") {
  const temp_dir dir("io-test");
  const auto path = dir / "odd.safetensors";
  // A 1-element F16 first puts the F32 tensor at an odd offset; the header pads to 8.
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"f":{"dtype":"F32","shape":[1],"data_offsets":[2,6]},)"
      R"("c":{"dtype":"F32","shape":[1,1,1],"data_offsets":[6,10]}})";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  std::string data(10, '\0');
  data[4] = '\x80';  // f = 1.0f: bytes 00 00 80 3f at [2, 6)
  data[5] = '\x3f';
  write_file(path, safetensors_bytes(padded, data));
  const safetensors_file f(path);
  const std::string where = "safetensors '" + path.string() + "'";
  CHECK_THROWS_WITH_AS(
      static_cast<void>(f.view("f")),
      ("[ternq.unsupported] " + where + ": tensor 'f' starts at file offset " + std::to_string(8 + padded.size() + 2) +
       ", not a multiple of 4, so it cannot be viewed in place (matrix() copies it)")
          .c_str(),
      ternq::error);
  CHECK(f.matrix("f")(0, 0) == 1.0F);
  CHECK_THROWS_WITH_AS(static_cast<void>(f.matrix("c")),
                       ("[ternq.shape_mismatch] " + where +
                        ": tensor 'c' has shape [1, 1, 1]; a matrix needs at most 2 dimensions (values() gives the "
                        "flat elements)")
                           .c_str(),
                       ternq::error);
  CHECK(f.values("c").size() == 1);
  CHECK_THROWS_WITH_AS(static_cast<void>(f.info("nope")),
                       ("[ternq.invalid_argument] " + where + ": no tensor named 'nope'").c_str(), ternq::error);
  std::vector<float> small(2);
  CHECK_THROWS_WITH_AS(f.read_values("h", small),
                       ("[ternq.shape_mismatch] " + where + ": tensor 'h' has 1 elements, the output 2").c_str(),
                       ternq::error);
}

TEST_CASE("safetensors: hostile files fail with the right id and a message naming the problem") {
  const temp_dir dir("io-test");
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::string eight(8, '\0');

  CHECK(open_error(dir, "") == "[ternq.corrupt_file] FILE: 0 bytes are too few for the 8-byte header length");
  CHECK(open_error(dir, "abc") == "[ternq.corrupt_file] FILE: 3 bytes are too few for the 8-byte header length");
  CHECK(open_error(dir, ternq::testing::le64(100'000'001) + "{}") ==
        "[ternq.corrupt_file] FILE: header length 100000001 exceeds the limit of 100000000 bytes");
  CHECK(open_error(dir, ternq::testing::le64(~std::uint64_t{0})) ==
        "[ternq.corrupt_file] FILE: header length 18446744073709551615 exceeds the limit of 100000000 bytes");
  CHECK(open_error(dir, ternq::testing::le64(40) + "{}") ==
        "[ternq.corrupt_file] FILE: header length 40 exceeds the 2 bytes after the length field");
  CHECK(open_error(dir, safetensors_bytes("{\"a\":", "")) ==
        "[ternq.corrupt_file] FILE header: not valid JSON: [json.exception.parse_error.101] parse error at line 1, "
        "column 6: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal");
  CHECK(open_error(dir, safetensors_bytes("[1, 2]", "")) ==
        "[ternq.corrupt_file] FILE: the header is a JSON array, not an object");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]},"a":{)" + f32x2 +
                                              R"(,"data_offsets":[0,8]}})",
                                          eight)) ==
        "[ternq.corrupt_file] FILE header: key 'a' appears twice in one object");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", "\x01")) ==
        "[ternq.unsupported] FILE: tensor 'a' has dtype 'F4', which is not a safetensors dtype ternq knows");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': 'dtype' is missing or not a string");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":[1]})", "")) ==
        "[ternq.corrupt_file] FILE: tensor 'a' is a JSON array, not an object");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': shape [-2] is not a list of non-negative integers");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': 'shape' is missing or not a list");
  CHECK(open_error(dir, safetensors_bytes(
                            R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': shape [4294967296, 4294967296] has more elements than 2^64");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': 'data_offsets' [0] is not a pair of non-negative integers");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{)" + f32x2 + R"(}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': 'data_offsets' is missing");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[8,0]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': data_offsets [8, 0] end before they begin");
  // An out-of-range offset: the data section has 8 bytes.
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[8,16]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': data_offsets [8, 16] reach past the end of the 8-byte data section");
  CHECK(open_error(dir,
                   safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,18446744073709551615]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': data_offsets [0, 18446744073709551615] reach past the end of the "
        "8-byte data section");
  // A shape that does not match its byte range.
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", eight)) ==
        "[ternq.corrupt_file] FILE: tensor 'a': shape [3] of BF16 needs 6 bytes, data_offsets [0, 8] hold 8");
  // Overlapping tensors, a hole, trailing bytes.
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 +
                                              R"(,"data_offsets":[4,12]}})",
                                          std::string(12, '\0'))) ==
        "[ternq.corrupt_file] FILE: tensors 'a' [0, 8) and 'b' [4, 12) overlap");
  CHECK(
      open_error(dir, safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[4,12]}})", std::string(12, '\0'))) ==
      "[ternq.corrupt_file] FILE: bytes [0, 4) of the data section belong to no tensor");
  CHECK(open_error(dir, safetensors_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]}})", std::string(9, '\0'))) ==
        "[ternq.corrupt_file] FILE: bytes [8, 9) of the data section belong to no tensor");
  CHECK(open_error(dir, safetensors_bytes(R"({"__metadata__":{"k":1}})", "")) ==
        "[ternq.corrupt_file] FILE: __metadata__ entry 'k' is a JSON number, not a string");
  CHECK(open_error(dir, safetensors_bytes(R"({"__metadata__":"k"})", "")) ==
        "[ternq.corrupt_file] FILE: __metadata__ is a JSON string, not an object");
  // The smallest valid file: an empty header object and no data.
  CHECK(open_error(dir, safetensors_bytes("{}", "")) == "(opened)");
}

TEST_CASE("safetensors: the operating system's refusals are io errors naming the path") {
  const temp_dir dir("io-test");
  const auto missing = dir / "missing.safetensors";
  CHECK_THROWS_WITH_AS(
      safetensors_file{missing},
      ("[ternq.io] mapped_file: cannot open '" + missing.string() + "': No such file or directory").c_str(),
      ternq::error);
  CHECK_THROWS_WITH_AS(safetensors_file{dir.path()},
                       ("[ternq.io] mapped_file: '" + dir.path().string() + "' is not a regular file").c_str(),
                       ternq::error);
  const std::vector<float> v{1.0F};
  safetensors_writer out;
  out.add("v", dtype::f32, {1}, v);
  const auto nowhere = dir / "no-such-dir" / "x.safetensors";
  CHECK_THROWS_WITH_AS(out.write(nowhere),
                       ("[ternq.io] safetensors_writer: cannot create a temporary file for '" + nowhere.string() +
                        "': No such file or directory")
                           .c_str(),
                       ternq::error);
}

TEST_CASE("safetensors: the writer rejects what it cannot write") {
  const std::vector<float> v{1.0F, 2.0F};
  safetensors_writer out;
  out.add("v", dtype::f32, {2}, v);
  CHECK_THROWS_WITH_AS(out.add("v", dtype::f16, {2}, v),
                       "[ternq.invalid_argument] safetensors_writer: tensor 'v' was already added", ternq::error);
  CHECK_THROWS_WITH_AS(out.add("w", dtype::i8, {2}, v),
                       "[ternq.unsupported] safetensors_writer: tensor 'w': ternq writes F32, F16 and BF16, not I8",
                       ternq::error);
  CHECK_THROWS_WITH_AS(out.add("w", dtype::f32, {3}, v),
                       "[ternq.shape_mismatch] safetensors_writer: tensor 'w' of shape [3] needs 3 values, got 2",
                       ternq::error);
  CHECK_THROWS_WITH_AS(out.add("__metadata__", dtype::f32, {2}, v),
                       "[ternq.invalid_argument] safetensors_writer: '__metadata__' is not a valid tensor name",
                       ternq::error);
  CHECK(out.size() == 1);
}

TEST_CASE("safetensors: every truncation and many one-byte corruptions fail cleanly, never reading out of bounds") {
  const temp_dir dir("io-test");
  const std::vector<float> a = awkward_values(6);
  const std::vector<float> b = awkward_values(3);
  safetensors_writer out;
  out.add("a", dtype::f32, {2, 3}, a);
  out.add("b", dtype::bf16, {3}, b);
  out.set_metadata("k", "v");
  out.write(dir / "good.safetensors");
  const std::string good = ternq::testing::read_file(dir / "good.safetensors");
  const auto path = dir / "mutant.safetensors";
  // Any proper prefix loses bytes the header claims.
  int refused = 0;
  for (std::size_t n = 0; n < good.size(); ++n) {
    write_file(path, good.substr(0, n));
    try {
      const safetensors_file f(path);
    } catch (const ternq::error& e) {
      refused += e.code() == ternq::errc::corrupt_file ? 1 : 0;
    }
  }
  CHECK(refused == static_cast<int>(good.size()));
  // Corrupt header bytes: the file either still describes itself consistently or is refused.
  int opened = 0;
  const std::size_t header_end = safetensors_file(dir / "good.safetensors").data_offset();
  for (std::size_t at = 0; at < header_end; ++at) {
    for (const char c : {'\0', '9', '"', '}', '\xff'}) {
      std::string bad = good;
      bad[at] = c;
      write_file(path, bad);
      try {
        const safetensors_file f(path);
        for (const auto& t : f.tensors()) {
          if (ternq::io::is_float_dtype(t.type)) CHECK(f.values(t.name).size() == t.element_count());
        }
        ++opened;
      } catch (const ternq::error&) {
      }
    }
  }
  CHECK(opened > 0);  // some mutations are harmless (inside a name, or the padding)
}

TEST_CASE("safetensors: the bulk F16 decoder is bit-identical to the core conversion on every pattern") {
  int differ = 0;
  for (std::uint32_t u = 0; u <= 0xFFFFU; ++u) {
    const auto h = static_cast<std::uint16_t>(u);
    const auto bulk = std::bit_cast<std::uint32_t>(ternq::io::detail::fp16_bits_to_fp32_branchless(h));
    differ += bulk == std::bit_cast<std::uint32_t>(ternq::fp16_bits_to_fp32(h)) ? 0 : 1;
  }
  CHECK(differ == 0);
}
