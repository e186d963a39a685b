// SPDX-License-Identifier: MIT
// Hostile input to the readers: deeply nested JSON, counts no file can hold, in-memory entry points.
#include <doctest/doctest.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "ternq/io/hf_llama.hpp"
#include "ternq/io/llama2c_tokenizer.hpp"
#include "ternq/io/safetensors_reader.hpp"
#include "ternq/io/safetensors_writer.hpp"

using ternq::io::safetensors_file;
using ternq::testing::safetensors_bytes;
using ternq::testing::temp_dir;
using ternq::testing::write_file;

namespace {

/// `[[[...0...]]]`, `depth` deep.
std::string nested_array(std::size_t depth) { return std::string(depth, '[') + "0" + std::string(depth, ']'); }

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s)); }

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const ternq::error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("json_excerpt prints a bounded excerpt of any value, however deep or long") {
  using ternq::io::detail::json_excerpt;
  using ternq::io::detail::parse_json;
  CHECK(json_excerpt(parse_json("[1, 2]", "t")) == "[1, 2]");
  CHECK(json_excerpt(parse_json("[[[1]]]", "t")) == "[[[...]]]");
  CHECK(json_excerpt(parse_json("[1, 2, 3, 4, 5, 6]", "t")) == "[1, 2, 3, 4, ...]");
  CHECK(json_excerpt(parse_json(R"({"a": {"b": {"c": 1}}})", "t")) == R"({"a": {"b": {...}}})");
  CHECK(json_excerpt(parse_json("\"" + std::string(100, 'x') + "\"", "t")) == "\"" + std::string(64, 'x') + "\"...");
  CHECK(json_excerpt(parse_json("-2.5", "t")) == "-2.5");
  // A cut through a multi-byte character backs off to its start (dumping half a character would throw).
  const std::string three_byte = "\xE3\x8C\xB3";  // U+3333
  CHECK(json_excerpt(parse_json("\"" + std::string(63, 'x') + three_byte + "y\"", "t")) ==
        "\"" + std::string(63, 'x') + "\"...");
  CHECK(json_excerpt(parse_json("\"" + std::string(62, 'x') + three_byte + "\"", "t")) ==
        "\"" + std::string(62, 'x') + "\"...");
  CHECK(json_excerpt(parse_json("\"" + std::string(61, 'x') + three_byte + "yz\"", "t")) ==
        "\"" + std::string(61, 'x') + three_byte + "\"...");
  // The whole excerpt's cut too: with keys "00".."33" and strings of U+3333, byte 256 is inside a character.
  std::string members = "{";
  for (int i = 0; i < 4; ++i) {
    members += std::string(i == 0 ? "" : ", ") + "\"" + std::string(2, static_cast<char>('0' + i)) + "\": \"";
    for (int c = 0; c < 40; ++c) members += three_byte;
    members += "\"";
  }
  members += "}";
  const std::string excerpt = json_excerpt(parse_json(members, "t"));
  CHECK(excerpt.size() < 256 + 3);
  CHECK(excerpt.substr(excerpt.size() - 3) == "...");
  CHECK_NOTHROW((void)nlohmann::json(excerpt).dump());  // valid UTF-8
  CHECK(json_excerpt(parse_json(nested_array(100000), "t")) == "[[[...]]]");
}

TEST_CASE("a safetensors shape nested a million deep is refused with a short message, not a stack overflow") {
  const std::string header =
      R"({"t": {"dtype": "F32", "shape": )" + nested_array(1'000'000) + R"(, "data_offsets": [0, 4]}})";
  const std::string file = safetensors_bytes(header, std::string(4, '\0'));
  const std::string what = error_of([&] { const safetensors_file f(bytes_of(file), "deep"); });
  CHECK(what ==
        "[ternq.corrupt_file] safetensors 'deep': tensor 't': shape [[[...]]] is not a list of non-negative integers");

  const std::string offsets =
      R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": )" + nested_array(1'000'000) + "}}";
  const std::string file2 = safetensors_bytes(offsets, std::string(4, '\0'));
  CHECK(error_of([&] { const safetensors_file f(bytes_of(file2), "deep"); }) ==
        "[ternq.corrupt_file] safetensors 'deep': tensor 't': 'data_offsets' [[[...]]] is not a pair of non-negative "
        "integers");
}

TEST_CASE("a Hugging Face config field nested a million deep is refused with a short message") {
  const std::string config = R"({"hidden_size": )" + nested_array(1'000'000) + "}";
  CHECK(error_of([&] { (void)ternq::io::parse_hf_llama_config(config, "cfg"); }) ==
        "[ternq.corrupt_file] cfg: 'hidden_size' is [[[...]]], not a positive integer");
  const std::string eps = R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 1, "vocab_size": 4, "rms_norm_eps": )" +
                          nested_array(1'000'000) + "}";
  CHECK(error_of([&] { (void)ternq::io::parse_hf_llama_config(eps, "cfg"); }) ==
        "[ternq.corrupt_file] cfg: 'rms_norm_eps' is [[[...]]], not a positive number");
}

TEST_CASE("a layer count no model directory can hold is refused before the tensor list is built") {
  const temp_dir dir("hostile-hf");
  write_file(dir / "config.json", R"({"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 100000000000,
    "num_attention_heads": 1, "vocab_size": 4})");
  ternq::io::safetensors_writer out;
  const std::vector<float> v(4 * 8, 1.0F);
  out.add("model.embed_tokens.weight", ternq::io::dtype::f32, {4, 8}, v);
  out.write(dir / "model.safetensors");
  CHECK(error_of([&] { const ternq::io::hf_llama_model m(dir.path()); }) ==
        "[ternq.corrupt_file] hf_llama '" + dir.path().string() +
            "': config.json declares 100000000000 layers (9 tensors each), but the safetensors files hold only 1 "
            "tensors");
}

TEST_CASE("safetensors from memory: the same tensors and the same errors as from a file") {
  const temp_dir dir("hostile-mem");
  ternq::io::safetensors_writer out;
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  out.add("a", ternq::io::dtype::bf16, {2, 3}, a);
  out.write(dir / "a.safetensors");
  const std::string bytes = ternq::testing::read_file(dir / "a.safetensors");
  const safetensors_file from_file(dir / "a.safetensors");
  const safetensors_file from_memory(bytes_of(bytes), "mem");
  CHECK(from_memory.data_offset() == from_file.data_offset());
  CHECK(from_memory.values("a") == from_file.values("a"));
  CHECK(from_memory.values("a") == a);
  const std::string cut = bytes.substr(0, bytes.size() - 1);
  CHECK(error_of([&] { const safetensors_file f(bytes_of(cut), "mem"); }) ==
        "[ternq.corrupt_file] safetensors 'mem': tensor 'a': data_offsets [0, 12] reach past the end of the 11-byte "
        "data section");
}

TEST_CASE("a llama2.c tokenizer from memory parses as from a file; a piece longer than the file is refused") {
  std::string file;
  const auto i32 = [&](std::int32_t v) { file.append(reinterpret_cast<const char*>(&v), 4); };
  const auto piece = [&](const std::string& p) {
    const float score = 0.0F;
    file.append(reinterpret_cast<const char*>(&score), 4);
    i32(static_cast<std::int32_t>(p.size()));
    file += p;
  };
  i32(8);
  for (const char* p : {"<unk>", "<s>", "</s>", " ", "a", "b", " a"}) piece(p);
  const ternq::io::llama2c_tokenizer tok(bytes_of(file), "mem");
  CHECK(tok.vocab_size() == 7);
  CHECK(tok.encode("a") == std::vector<int>{1, 6});
  CHECK(tok.decode(tok.encode("ab")) == "ab");
  std::string bad = file;
  bad.resize(bad.size() - 1);
  CHECK(error_of([&] { const ternq::io::llama2c_tokenizer t(bytes_of(bad), "mem"); }) ==
        "[ternq.corrupt_file] llama2c tokenizer 'mem': piece 6 at byte 67: its 2 bytes run past the end of the file");
}
