// SPDX-License-Identifier: MIT
// GGUF write -> read round trip: every metadata value type, every tensor type, alignment and exact offsets.
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "gguf_test_support.hpp"
#include "io_test_support.hpp"
#include "llm_like.hpp"
#include "temp_dir.hpp"
#include "ternq/core/dequantize.hpp"
#include "ternq/io/gguf_reader.hpp"
#include "ternq/io/gguf_writer.hpp"
#include "ternq/pack/pack.hpp"

namespace {

using ternq::io::gguf_array;
using ternq::io::gguf_reader;
using ternq::io::gguf_type;
using ternq::io::gguf_writer;
using ternq::pack::ggml_type;

/// One value of every scalar type and one array of every element type, with extremes.
void add_every_type(gguf_writer& w) {
  w.add("u8", std::uint8_t{255});
  w.add("i8", std::int8_t{-128});
  w.add("u16", std::uint16_t{65535});
  w.add("i16", std::int16_t{-32768});
  w.add("u32", std::numeric_limits<std::uint32_t>::max());
  w.add("i32", std::numeric_limits<std::int32_t>::min());
  w.add("f32", -0.0F);
  w.add("bool.true", true);
  w.add("bool.false", false);
  static constexpr char text[] = "UTF-8: \xc3\xa9\xe2\x82\xac, a NUL \0 inside";
  w.add("string", std::string(text, sizeof(text) - 1));
  w.add("string.empty", std::string());
  w.add("u64", std::numeric_limits<std::uint64_t>::max());
  w.add("i64", std::numeric_limits<std::int64_t>::min());
  w.add("f64", 1e300);
  w.add("f32.inf", std::numeric_limits<float>::infinity());
  w.add("arr.u8", gguf_array(std::vector<std::uint8_t>{0, 1, 255}));
  w.add("arr.i8", gguf_array(std::vector<std::int8_t>{-1, 127}));
  w.add("arr.u16", gguf_array(std::vector<std::uint16_t>{7, 65535}));
  w.add("arr.i16", gguf_array(std::vector<std::int16_t>{-7}));
  w.add("arr.u32", gguf_array(std::vector<std::uint32_t>{1, 2, 3}));
  w.add("arr.i32", gguf_array(std::vector<std::int32_t>{-1, 6}));
  w.add("arr.f32", gguf_array(std::vector<float>{0.5F, -3.25F, 1e-40F}));
  w.add("arr.bool", gguf_array(std::vector<bool>{true, false, true}));
  w.add("arr.string", gguf_array(std::vector<std::string>{"<s>", "", "\xe2\x96\x81the"}));
  w.add("arr.u64", gguf_array(std::vector<std::uint64_t>{1ULL << 63U}));
  w.add("arr.i64", gguf_array(std::vector<std::int64_t>{-(1LL << 62)}));
  w.add("arr.f64", gguf_array(std::vector<double>{-2.5, 1e-310}));
  w.add("arr.empty", gguf_array(std::vector<std::int32_t>{}));
}

ternq::ternary_matrix random_ternary(std::size_t rows, std::size_t cols, ternq::group_size_option g,
                                     std::uint64_t seed) {
  ternq::ternary_matrix q(rows, cols, g);
  ternq::testing::rng r(seed);
  for (auto& c : q.codes()) c = static_cast<std::int8_t>(static_cast<int>(r.next() % 3) - 1);
  for (auto& s : q.scales()) s = 0.01F + static_cast<float>(r.uniform()) * 0.1F;
  if (g == ternq::per_row) std::fill(q.scales().begin(), q.scales().end(), 0.05F);  // one scale for I2_S
  return q;
}

}  // namespace

TEST_CASE("gguf: every metadata value type and every tensor type round-trip, with exact padded offsets") {
  for (const std::uint32_t alignment : {32U, 64U, 1U}) {
    CAPTURE(alignment);
    gguf_writer w;
    add_every_type(w);
    if (alignment != 32) w.set_alignment(alignment);

    std::vector<float> f32(3 * 5);
    for (std::size_t k = 0; k < f32.size(); ++k) f32[k] = 0.25F * static_cast<float>(k) - 1.0F;
    w.add_tensor("f32", ggml_type::f32, {5, 3});
    w.add_tensor("f16", ggml_type::f16, {5, 3});
    w.add_tensor("bf16", ggml_type::bf16, {15});
    std::vector<ternq::pack::packed_tensor> packed;
    std::vector<ternq::ternary_matrix> matrices;
    for (const auto f : ternq::pack::all_formats) {
      const std::size_t block = ternq::pack::traits_of(f).block_elements;
      matrices.push_back(random_ternary(
          3, 2 * block, ternq::pack::per_tensor_scale(f) ? ternq::per_row : ternq::group_size_option(block),
          static_cast<std::uint64_t>(f)));
      packed.push_back(ternq::pack::pack(matrices.back(), f));
      w.add_tensor("ternary." + std::string(ternq::pack::name_of(f)), packed.back());
    }
    w.add_tensor("scalar.4d", ggml_type::f32, {1, 1, 1, 1});

    const auto bytes = ternq::testing::write_to_memory(w, [&](gguf_writer& out) {
      out.write_tensor("f32", std::span<const float>(f32));
      out.write_tensor("f16", std::span<const float>(f32));
      out.write_tensor("bf16", std::span<const float>(f32));
      for (std::size_t k = 0; k < packed.size(); ++k) {
        out.write_tensor("ternary." + std::string(ternq::pack::name_of(packed[k].fmt)), packed[k]);
      }
      const float one = 1.0F;
      out.write_tensor("scalar.4d", std::span<const float>(&one, 1));
    });

    const gguf_reader r = gguf_reader::from_bytes(bytes);
    CHECK(r.version() == 3);
    CHECK(r.alignment() == alignment);
    CHECK(r.metadata() == w.metadata());
    CHECK(r.metadata().get<std::string>("string").size() == 28);
    CHECK(r.metadata().get<gguf_array>("arr.bool").get<bool>() == std::vector<bool>{true, false, true});
    CHECK(r.metadata().get<gguf_array>("arr.empty").element_type() == gguf_type::int32);
    CHECK(r.tensors() == w.tensors());
    CHECK(r.data_offset() % alignment == 0);

    // Offsets are the running sums of the padded sizes; the file ends after the last padded tensor.
    std::uint64_t expected = 0;
    for (const auto& t : r.tensors()) {
      CHECK(t.offset == expected);
      expected += ternq::io::gguf_align(t.size, alignment);
    }
    CHECK(bytes.size() == r.data_offset() + expected);

    CHECK(r.read_floats(r.tensor("f32")) == f32);
    const auto half = r.read_floats(r.tensor("f16"));
    const auto brain = r.read_floats(r.tensor("bf16"));
    for (std::size_t k = 0; k < f32.size(); ++k) {
      CHECK(half[k] == ternq::fp16_bits_to_fp32(ternq::fp32_to_fp16_bits(f32[k])));
      CHECK(brain[k] == ternq::bf16_bits_to_fp32(ternq::fp32_to_bf16_bits(f32[k])));
    }
    CHECK(r.tensor("bf16").ne == std::vector<std::int64_t>{15});
    for (std::size_t k = 0; k < packed.size(); ++k) {
      const auto& info = r.tensor("ternary." + std::string(ternq::pack::name_of(packed[k].fmt)));
      CHECK(info.type == packed[k].type());
      CHECK(r.read_tensor_data(info) == packed[k].data);
      const auto view = r.tensor_bytes(info);
      CHECK(std::equal(view.begin(), view.end(), packed[k].data.begin(), packed[k].data.end()));
      const ternq::ternary_matrix back = r.read_ternary(info);
      CHECK(std::equal(back.codes().begin(), back.codes().end(), matrices[k].codes().begin()));
      CHECK(r.read_floats(info) == ternq::dequantize(back));
    }
  }
}

TEST_CASE("gguf: a file on disk reads like the same bytes in memory, tensor data on demand") {
  const ternq::testing::temp_dir dir("gguf-roundtrip");
  const auto path = dir / "file.gguf";
  gguf_writer w;
  w.add("general.architecture", std::string("none"));
  w.add_tensor("a", ggml_type::f32, {3});
  w.add_tensor("b", ggml_type::tq2_0, {256, 2});
  const ternq::ternary_matrix q = random_ternary(2, 256, 256, 3);
  const auto p = ternq::pack::pack(q, ternq::pack::format::tq2_0);
  w.open(path);
  const std::vector<float> a = {1.0F, 2.0F, 3.0F};
  w.write_tensor("a", std::span<const float>(a));
  w.write_tensor("b", p);
  w.close();
  CHECK(w.bytes_written() == std::filesystem::file_size(path));

  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const gguf_reader from_disk = gguf_reader::open(path);
  const gguf_reader from_memory = gguf_reader::from_bytes(bytes);
  CHECK(from_disk.metadata() == from_memory.metadata());
  CHECK(from_disk.tensors() == from_memory.tensors());
  CHECK(from_disk.data_offset() == from_memory.data_offset());
  CHECK(from_disk.read_floats(from_disk.tensor("a")) == a);
  CHECK(from_disk.read_tensor_data(from_disk.tensor("b")) == p.data);
  CHECK_THROWS_WITH_AS(static_cast<void>(from_disk.tensor_bytes(from_disk.tensor("b"))),
                       ("[ternq.invalid_argument] gguf_reader '" + path.string() +
                        "': tensor_bytes() needs a reader made by map() or from_bytes(); use read_tensor_data()")
                           .c_str(),
                       ternq::error);
  CHECK_THROWS_WITH_AS(static_cast<void>(from_memory.tensor("c")),
                       "[ternq.invalid_argument] gguf_reader: no tensor 'c'", ternq::error);
  CHECK_FALSE(from_disk.views_data());
  CHECK(from_memory.views_data());

  // Mapped: the same header and data, and views of the tensor data inside the mapping.
  const gguf_reader mapped = gguf_reader::map(path);
  CHECK(mapped.mapped());
  CHECK(mapped.views_data());
  CHECK(mapped.metadata() == from_disk.metadata());
  CHECK(mapped.tensors() == from_disk.tensors());
  CHECK(mapped.read_floats(mapped.tensor("a")) == a);
  CHECK(mapped.read_tensor_data(mapped.tensor("b")) == p.data);
  const auto view = mapped.tensor_bytes(mapped.tensor("b"));
  CHECK(std::equal(view.begin(), view.end(), p.data.begin(), p.data.end()));
  const gguf_reader copy = mapped;  // copies share the mapping: views stay valid while any copy lives
  CHECK(copy.tensor_bytes(copy.tensor("b")).data() == view.data());
  CHECK_THROWS_WITH_AS(static_cast<void>(gguf_reader::map(dir / "absent.gguf")),
                       doctest::Contains(("cannot open '" + (dir / "absent.gguf").string() + "'").c_str()), ternq::error);
}

TEST_CASE("gguf: a writer that is not closed leaves no file behind, and the previous file untouched") {
  const ternq::testing::temp_dir dir("gguf-unfinished");
  const auto path = dir / "file.gguf";
  const auto entries = [&] {
    return std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator());
  };
  {
    gguf_writer w;
    w.add_tensor("a", ggml_type::f32, {2});
    w.open(path);
    CHECK_FALSE(std::filesystem::exists(path));  // the bytes go to a temporary beside it until close()
    CHECK(entries() == 1);
  }
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(entries() == 0);
  ternq::testing::write_file(path, "previous");
  {
    gguf_writer w;
    w.add_tensor("a", ggml_type::f32, {2});
    w.open(path);
  }
  CHECK(ternq::testing::read_file(path) == "previous");
  CHECK(entries() == 1);
}
