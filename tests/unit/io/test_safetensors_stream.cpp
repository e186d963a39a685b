// SPDX-License-Identifier: MIT
// safetensors_stream_writer: round trips in pieces of any size, the same bytes as one piece, every misuse named.
#include <doctest/doctest.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "ternq/core/half.hpp"
#include "ternq/io/safetensors_reader.hpp"
#include "ternq/io/safetensors_stream_writer.hpp"

using ternq::io::dtype;
using ternq::io::safetensors_file;
using ternq::io::safetensors_stream_writer;
using ternq::testing::read_file;
using ternq::testing::temp_dir;

namespace {

/// Values none of which is exact in F16 or BF16, of both signs and several magnitudes.
std::vector<float> awkward_values(std::size_t n, float offset = 0.0F) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = (i % 2 == 0 ? 1.0F : -1.0F) * (0.1F + offset + 0.37F * static_cast<float>(i % 4099));
  }
  return v;
}

float via_f16(float x) { return ternq::fp16_bits_to_fp32(ternq::fp32_to_fp16_bits(x)); }
float via_bf16(float x) { return ternq::bf16_bits_to_fp32(ternq::fp32_to_bf16_bits(x)); }

struct tensor {
  std::string name;
  dtype type;
  std::vector<std::size_t> shape;
  std::vector<float> values;
};

/// Tensors of every float dtype and rank, one empty and one larger than the writer's conversion block (64 Ki).
std::vector<tensor> sample_tensors() {
  return {{"model.embed", dtype::bf16, {3, 5}, awkward_values(15)},
          {"empty", dtype::f32, {0, 4}, {}},
          {"w", dtype::f32, {7, 3}, awkward_values(21, 1.0F)},
          {"norm", dtype::f16, {9}, awkward_values(9, 2.0F)},
          {"scalar", dtype::bf16, {}, {2.5F}},
          {"big", dtype::f16, {300, 301}, awkward_values(300 * 301, 0.5F)},
          {"cube", dtype::f32, {2, 3, 4}, awkward_values(24, 3.0F)}};
}

/// All values of `tensors`, in declaration order.
std::vector<float> concatenated(const std::vector<tensor>& tensors) {
  std::vector<float> all;
  for (const tensor& t : tensors) all.insert(all.end(), t.values.begin(), t.values.end());
  return all;
}

/// A writer with `tensors` declared and one metadata entry.
void describe(safetensors_stream_writer& w, const std::vector<tensor>& tensors) {
  w.set_metadata("format", "pt");
  for (const tensor& t : tensors) w.add_tensor(t.name, t.type, t.shape);
}

/// Writes `tensors` to `path` in pieces of the given sizes, cycling through them.
void write_in_pieces(const std::filesystem::path& path, const std::vector<tensor>& tensors,
                     const std::vector<std::size_t>& sizes) {
  safetensors_stream_writer w;
  describe(w, tensors);
  w.open(path);
  const std::vector<float> all = concatenated(tensors);
  std::span<const float> rest(all);
  for (std::size_t k = 0; !rest.empty(); ++k) {
    const std::size_t n = std::min(sizes[k % sizes.size()], rest.size());
    w.write(rest.first(n));
    rest = rest.subspan(n);
  }
  CHECK(w.values_left() == 0);
  w.close();
  CHECK_FALSE(w.is_open());
}

/// The message of the `ternq::error` `f` throws, with `path` replaced by FILE.
template <class F>
std::string error_of(F&& f, const std::filesystem::path& path = {}) {
  try {
    f();
  } catch (const ternq::error& e) {
    std::string what = e.what();
    const std::string p = path.string();
    if (!p.empty()) {
      for (auto at = what.find(p); at != std::string::npos; at = what.find(p)) what.replace(at, p.size(), "FILE");
    }
    return what;
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("safetensors_stream_writer: F32, F16 and BF16 tensors round-trip through the reader, in declaration order") {
  const temp_dir dir("io-stream");
  const auto tensors = sample_tensors();
  const auto path = dir / "all.safetensors";
  write_in_pieces(path, tensors, {1000000});
  const safetensors_file f(path);
  CHECK(f.data_offset() % 8 == 0);
  CHECK(f.metadata().at("format") == "pt");
  REQUIRE(f.tensors().size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const tensor& t = tensors[i];
    CAPTURE(t.name);
    CHECK(f.tensors()[i].name == t.name);  // laid out as declared
    CHECK(f.info(t.name).type == t.type);
    CHECK(f.info(t.name).shape == t.shape);
    const std::vector<float> back = f.values(t.name);
    REQUIRE(back.size() == t.values.size());
    for (std::size_t k = 0; k < back.size(); ++k) {
      const float want = t.type == dtype::f32   ? t.values[k]
                         : t.type == dtype::f16 ? via_f16(t.values[k])
                                                : via_bf16(t.values[k]);
      if (back[k] != want) {
        CHECK(back[k] == want);
        break;
      }
    }
  }
}

TEST_CASE("safetensors_stream_writer: pieces of any size, across tensor boundaries, give the bytes of one piece") {
  const temp_dir dir("io-stream");
  const auto tensors = sample_tensors();
  write_in_pieces(dir / "one.safetensors", tensors, {1000000});
  const std::string one = read_file(dir / "one.safetensors");
  // 1: value by value; 7 and 13: pieces ending inside tensors and spanning several; 65537: past the block.
  for (const std::vector<std::size_t>& sizes :
       std::vector<std::vector<std::size_t>>{{1}, {7}, {13, 2, 65537}, {4096}}) {
    CAPTURE(sizes[0]);
    write_in_pieces(dir / "pieces.safetensors", tensors, sizes);
    CHECK(read_file(dir / "pieces.safetensors") == one);
  }
}

TEST_CASE("safetensors_stream_writer: the header is exact, padded with spaces to a multiple of 8") {
  const temp_dir dir("io-stream");
  const auto path = dir / "h.safetensors";
  safetensors_stream_writer w;
  w.add_tensor("b", dtype::f32, {2});
  w.add_tensor("a", dtype::f16, {3});
  CHECK(w.size() == 2);
  CHECK(w.data_size() == 14);
  CHECK(w.values_left() == 5);
  w.open(path);
  CHECK(w.is_open());
  const std::vector<float> values{1.0F, 2.0F, 3.0F, 4.0F, 5.0F};
  w.write(values);
  w.close();
  const std::string bytes = read_file(path);
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}})";
  const std::size_t padded = (header.size() + 7) / 8 * 8;
  CHECK(bytes.substr(0, 8) == ternq::testing::le64(padded));
  CHECK(bytes.substr(8, padded) == header + std::string(padded - header.size(), ' '));
  CHECK(bytes.size() == 8 + padded + 14);
}

TEST_CASE("safetensors_stream_writer: a file with no tensors, or only empty ones, needs no write") {
  const temp_dir dir("io-stream");
  safetensors_stream_writer none;
  none.open(dir / "none.safetensors");
  none.close();
  CHECK(safetensors_file(dir / "none.safetensors").tensors().empty());
  safetensors_stream_writer empty;
  empty.add_tensor("e", dtype::bf16, {4, 0});
  empty.open(dir / "empty.safetensors");
  empty.write({});  // an empty piece is always fine
  empty.close();
  CHECK(safetensors_file(dir / "empty.safetensors").info("e").element_count() == 0);
}

TEST_CASE("safetensors_stream_writer: misuse is a ternq::error naming the tensor, the file and the state") {
  const temp_dir dir("io-stream");
  const auto path = dir / "e.safetensors";
  const std::vector<float> five(5, 1.0F);

  safetensors_stream_writer w;
  w.add_tensor("t", dtype::f32, {2, 2});
  CHECK(error_of([&] { w.add_tensor("t", dtype::f16, {1}); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: tensor 't' was already added");
  CHECK(error_of([&] { w.add_tensor("i", dtype::i32, {1}); }) ==
        "[ternq.unsupported] safetensors_stream_writer: tensor 'i': ternq writes F32, F16 and BF16, not I32");
  CHECK(error_of([&] { w.add_tensor("", dtype::f32, {1}); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: '' is not a valid tensor name");
  CHECK(error_of([&] { w.add_tensor("__metadata__", dtype::f32, {1}); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: '__metadata__' is not a valid tensor name");
  CHECK(error_of([&] {
          w.add_tensor("huge", dtype::f32, {std::size_t{1} << 40U, std::size_t{1} << 40U});
        }) == "[ternq.invalid_argument] safetensors_stream_writer: tensor 'huge': shape overflows");
  CHECK(error_of([&] { w.add_tensor("huge", dtype::f32, {std::size_t{1} << 62U}); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: tensor 'huge': the data size overflows");
  CHECK(error_of([&] { w.write(five); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: write() before open(); it is allowed only while open");
  CHECK(error_of([&] { w.close(); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: close() before open(); it is allowed only while open");
  w.add_tensor("u", dtype::bf16, {3});
  CHECK(w.size() == 2);  // the failed declarations left nothing behind

  w.open(path);
  CHECK(error_of([&] { w.open(path); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: open() while open; it is allowed only before open()");
  CHECK(
      error_of([&] { w.add_tensor("v", dtype::f32, {1}); }) ==
      "[ternq.invalid_argument] safetensors_stream_writer: add_tensor() while open; it is allowed only before open()");
  CHECK(error_of([&] { w.set_metadata("k", "v"); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: set_metadata() while open; it is allowed only before "
        "open()");
  CHECK(error_of([&] { w.close(); }, path) ==
        "[ternq.invalid_argument] safetensors_stream_writer: 'FILE': close() with tensor 't' written 0 of 4 values "
        "and 1 more tensors after it");
  w.write(std::span(five).first(3));
  CHECK(error_of([&] { w.write(five); }, path) ==
        "[ternq.shape_mismatch] safetensors_stream_writer: 'FILE': a piece of 5 values, but only 4 remain to be "
        "written (in tensor 't' and after)");
  w.write(std::span(five).first(2));  // the refused piece wrote nothing: t is complete, u has one value
  CHECK(error_of([&] { w.close(); }, path) ==
        "[ternq.invalid_argument] safetensors_stream_writer: 'FILE': close() with tensor 'u' written 1 of 3 values "
        "and 0 more tensors after it");
  CHECK_FALSE(std::filesystem::exists(path));  // nothing under the final name before close
  w.write(std::span(five).first(2));
  CHECK(error_of([&] { w.write(std::span(five).first(1)); }, path) ==
        "[ternq.shape_mismatch] safetensors_stream_writer: 'FILE': a piece of 1 values, but only 0 remain to be "
        "written");
  w.close();
  CHECK(error_of([&] { w.write(five); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: write() after close(); it is allowed only while open");
  CHECK(error_of([&] { w.close(); }) ==
        "[ternq.invalid_argument] safetensors_stream_writer: close() after close(); it is allowed only while open");
  const safetensors_file f(path);
  CHECK(f.values("t") == std::vector<float>(4, 1.0F));
  CHECK(f.values("u") == std::vector<float>(3, 1.0F));

  // An unwritable target is [ternq.io] from open(), and the writer stays closed.
  safetensors_stream_writer bad;
  CHECK(error_of([&] {
          bad.open(dir / "no-such-dir" / "x.safetensors");
        }).starts_with("[ternq.io] safetensors_stream_writer: cannot create a temporary file for"));
  CHECK_FALSE(bad.is_open());
}

TEST_CASE("safetensors_stream_writer: a writer abandoned before close() leaves no file and no temporary") {
  const temp_dir dir("io-stream");
  const auto tensors = sample_tensors();
  const std::vector<float> all = concatenated(tensors);
  {
    safetensors_stream_writer w;
    describe(w, tensors);
    w.open(dir / "partial.safetensors");
    w.write(std::span(all).first(all.size() / 2));
  }  // an exception on the way out destroys the writer just like this
  CHECK(std::filesystem::is_empty(dir.path()));
}
