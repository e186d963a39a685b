// SPDX-License-Identifier: MIT
// Calibration data stored as documents (JSONL with a `text` field, one document per line, as datasets are
// published): documents are tokenized one by one and calibration windows are sampled from them, reproducibly by a
// seed, the way GPTQ-style calibration samples C4: a random document long enough, a random start inside it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>
#include <ternq/io/detail/json.hpp>

#include "cli/text_slice.hpp"
#include "llama/forward.hpp"

namespace ternq::cli {

/// The `text` field of every non-blank line of a JSONL file, in order. A line that is not a JSON object with a
/// string `text` is refused, naming its line number.
inline std::vector<std::string> parse_jsonl_documents(std::string_view content, std::string_view name) {
  std::vector<std::string> docs;
  std::size_t line_number = 0;
  while (!content.empty()) {
    ++line_number;
    const std::size_t end = content.find('\n');
    std::string_view line = content.substr(0, end);
    content = end == std::string_view::npos ? std::string_view{} : content.substr(end + 1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) fail(errc::corrupt_file, name, " line ", line_number, ": not valid JSON");
    const auto it = j.is_object() ? j.find("text") : j.end();
    if (!j.is_object() || it == j.end() || !it->is_string()) {
      fail(errc::corrupt_file, name, " line ", line_number,
           ": a JSON object with a string \"text\" field is expected, got ", io::detail::json_excerpt(j));
    }
    docs.push_back(it->get<std::string>());
  }
  if (docs.empty()) fail(errc::invalid_argument, name, ": no documents (every line is blank)");
  return docs;
}

/// Reads and parses a JSONL file (`parse_jsonl_documents`).
inline std::vector<std::string> read_jsonl_documents(const std::filesystem::path& path) {
  return parse_jsonl_documents(read_text(path, 0), "'" + path.string() + "'");
}

/// What sampling took from the documents, for the report.
struct document_sample {
  llama::batch batch;
  std::size_t documents = 0;  ///< documents read
  std::size_t eligible = 0;   ///< documents of at least one window's length
  std::size_t tokens = 0;     ///< tokens over all documents
  bool concatenated = false;  ///< no document was long enough: windows were drawn from all of them joined
};

/// `count` windows of `length` tokens from `documents` (each already tokenized), drawn with a generator seeded
/// by `seed`: each window takes a document uniformly among those with at least `length` tokens and a uniform start
/// inside it. When no document is that long, the documents are joined in order and the starts are drawn over the
/// joined stream. The same documents and seed give the same windows. Fewer than `length` tokens in all is refused.
inline document_sample sample_windows(const std::vector<std::vector<std::int32_t>>& documents, std::size_t length,
                                      std::size_t count, std::uint64_t seed) {
  if (length == 0) fail(errc::invalid_argument, "sample_windows: the window length must be at least 1");
  document_sample out;
  out.documents = documents.size();
  std::vector<std::size_t> eligible;
  for (std::size_t d = 0; d < documents.size(); ++d) {
    out.tokens += documents[d].size();
    if (documents[d].size() >= length) eligible.push_back(d);
  }
  out.eligible = eligible.size();
  if (out.tokens < length) {
    fail(errc::invalid_argument, "the calibration documents give ", out.tokens, " tokens, fewer than one sequence of ",
         length, " (--calib-len)");
  }
  std::vector<std::int32_t> joined;
  if (eligible.empty()) {
    out.concatenated = true;
    joined.reserve(out.tokens);
    for (const auto& d : documents) joined.insert(joined.end(), d.begin(), d.end());
  }
  // A fixed-width generator and explicit arithmetic (no std::uniform_int_distribution, whose results differ
  // between standard libraries), so a seed means the same windows everywhere.
  std::mt19937_64 rng(seed);
  const auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  out.batch.sequences = count;
  out.batch.length = length;
  out.batch.tokens.reserve(count * length);
  for (std::size_t s = 0; s < count; ++s) {
    const std::vector<std::int32_t>& source = eligible.empty() ? joined : documents[eligible[below(eligible.size())]];
    const std::size_t start = below(source.size() - length + 1);
    out.batch.tokens.insert(out.batch.tokens.end(), source.begin() + static_cast<std::ptrdiff_t>(start),
                            source.begin() + static_cast<std::ptrdiff_t>(start + length));
  }
  return out;
}

}  // namespace ternq::cli
