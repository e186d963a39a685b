// SPDX-License-Identifier: MIT
// Calibration documents: JSONL parsing, windows sampled reproducibly from documents, and ternq-quantize
// --calib-jsonl end to end with what it used in the report.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/calibration_documents.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;

/// Whether `window` is a contiguous run of `doc`.
bool inside(const std::vector<std::int32_t>& doc, std::span<const std::int32_t> window) {
  return std::search(doc.begin(), doc.end(), window.begin(), window.end()) != doc.end();
}

/// Documents whose tokens identify them: document d holds d*1000 + 0, 1, 2, ...
std::vector<std::vector<std::int32_t>> numbered_documents(std::initializer_list<std::size_t> lengths) {
  std::vector<std::vector<std::int32_t>> docs;
  for (const std::size_t n : lengths) {
    std::vector<std::int32_t> d(n);
    for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<std::int32_t>(docs.size() * 1000 + i);
    docs.push_back(std::move(d));
  }
  return docs;
}

}  // namespace

TEST_CASE("calibration documents: JSONL lines give their text; bad lines are named by number") {
  const auto docs =
      cli::parse_jsonl_documents("{\"text\": \"one\", \"id\": 1}\n\n  \n{\"text\": \"two\\nlines\"}\r\n", "f.jsonl");
  REQUIRE(docs.size() == 2);
  CHECK(docs[0] == "one");
  CHECK(docs[1] == "two\nlines");
  CHECK_THROWS_WITH_AS(cli::parse_jsonl_documents("{\"text\": \"a\"}\n{\"txt\": \"b\"}\n", "f.jsonl"),
                       doctest::Contains("f.jsonl line 2: a JSON object with a string \"text\" field is expected"),
                       ternq::error);
  CHECK_THROWS_WITH_AS(cli::parse_jsonl_documents("{\"text\": 3}", "f.jsonl"), doctest::Contains("line 1"),
                       ternq::error);
  CHECK_THROWS_WITH_AS(cli::parse_jsonl_documents("{\"text\": \"a\"}\n{broken\n", "f.jsonl"),
                       doctest::Contains("f.jsonl line 2: not valid JSON"), ternq::error);
  CHECK_THROWS_WITH_AS(cli::parse_jsonl_documents("\n \n", "f.jsonl"), doctest::Contains("no documents"), ternq::error);
}

TEST_CASE("calibration documents: windows come whole from documents long enough, the same for the same seed") {
  const auto docs = numbered_documents({5, 40, 3, 25, 60});
  const auto a = cli::sample_windows(docs, 20, 16, 7);
  CHECK(a.documents == 5);
  CHECK(a.eligible == 3);
  CHECK(a.tokens == 133);
  CHECK_FALSE(a.concatenated);
  REQUIRE(a.batch.sequences == 16);
  REQUIRE(a.batch.length == 20);
  REQUIRE(a.batch.tokens.size() == 320);
  std::vector<int> used(docs.size(), 0);
  for (std::size_t s = 0; s < 16; ++s) {
    const std::span<const std::int32_t> w(a.batch.tokens.data() + s * 20, 20);
    const std::size_t d = static_cast<std::size_t>(w[0] / 1000);
    CHECK(inside(docs[d], w));
    ++used[d];
  }
  CHECK(used[0] == 0);  // shorter than a window: never drawn
  CHECK(used[2] == 0);
  CHECK(used[1] + used[3] + used[4] == 16);
  CHECK(cli::sample_windows(docs, 20, 16, 7).batch.tokens == a.batch.tokens);
  CHECK(cli::sample_windows(docs, 20, 16, 8).batch.tokens != a.batch.tokens);

  // No document long enough: windows of the documents joined in order.
  const auto short_docs = numbered_documents({4, 6, 5});
  const auto j = cli::sample_windows(short_docs, 8, 3, 1);
  CHECK(j.concatenated);
  std::vector<std::int32_t> joined;
  for (const auto& d : short_docs) joined.insert(joined.end(), d.begin(), d.end());
  for (std::size_t s = 0; s < 3; ++s) CHECK(inside(joined, std::span(j.batch.tokens.data() + s * 8, 8)));
  CHECK_THROWS_WITH_AS(cli::sample_windows(short_docs, 16, 3, 1), doctest::Contains("15 tokens, fewer than one"),
                       ternq::error);
}

TEST_CASE("ternq-quantize --calib-jsonl samples its windows by --seed and says what it used") {
  if (!tools_test::have_shared("models/stories260K.bin") ||
      !tools_test::have_shared("text/tinystories_validation_head.txt")) {
    return;
  }
  const tools_test::temp_dir dir("calib-jsonl");
  {  // one document per paragraph of the stories
    std::ifstream in(tools_test::shared_dir() / "text/tinystories_validation_head.txt");
    std::ofstream out(dir.path() / "docs.jsonl");
    std::string line, doc;
    std::size_t n = 0;
    while (std::getline(in, line) && n < 200) {
      if (line.empty()) {
        if (!doc.empty()) out << nlohmann::json{{"text", doc}}.dump() << "\n", ++n;
        doc.clear();
      } else {
        doc += (doc.empty() ? "" : "\n") + line;
      }
    }
  }
  const auto quantize = [&](const std::string& seed, const std::string& out) {
    return tools_test::run(std::string(TERNQ_QUANTIZE_EXE) + " --model " +
                           tools_test::quote(tools_test::shared_dir() / "models/stories260K.bin") + " --tokenizer " +
                           tools_test::quote(tools_test::shared_dir() / "models/tok512.bin") +
                           " --method gptq_optimal --format q2_0 --calib-jsonl " +
                           tools_test::quote(dir.path() / "docs.jsonl") + " --calib-seqs 8 --calib-len 64 --seed " +
                           seed + " --out-gguf " + tools_test::quote(dir.path() / (out + ".gguf")) + " --report " +
                           tools_test::quote(dir.path() / (out + ".json")));
  };
  const auto a = quantize("3", "a");
  INFO(a.output);
  REQUIRE(a.status == 0);
  REQUIRE(quantize("3", "b").status == 0);
  REQUIRE(quantize("4", "c").status == 0);
  const auto bytes = [&](const std::string& name) {
    std::ifstream f(dir.path() / name, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  CHECK(bytes("a.gguf") == bytes("b.gguf"));
  CHECK(bytes("a.gguf") != bytes("c.gguf"));
  const auto report = nlohmann::json::parse(bytes("a.json"));
  const auto& used = report.at("summary").at("calibration_data");
  CHECK(used.at("source") == "jsonl");
  CHECK(used.at("documents").get<std::size_t>() > 10);
  CHECK(used.at("documents_long_enough").get<std::size_t>() > 0);
  CHECK(used.at("sequences") == 8);
  CHECK(used.at("length") == 64);
  CHECK(used.at("seed") == 3);
}
