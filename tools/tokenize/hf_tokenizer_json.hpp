// SPDX-License-Identifier: MIT
// Hugging Face `tokenizer.json` (with the `tokenizer_config.json` beside it) read as a byte-level BPE tokenizer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>

#include "tokenize/byte_level_bpe.hpp"
#include "tokenize/pre_tokenizers.hpp"

namespace ternq::tokenizers {

namespace detail {

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(errc::io, "cannot open '", path.string(), "'");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    fail(errc::corrupt_file, "'", path.string(), "' is not valid JSON: ", e.what());
  }
}

/// The text of a special token in `tokenizer_config.json`: a string, or an object with its `content`.
inline std::optional<std::string> token_text(const nlohmann::json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const nlohmann::json& t = config[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return std::nullopt;
}

/// Adds the regexes of one pre-tokenizer (a `Sequence` recursively) to `d`. Only the pre-tokenizers of the
/// byte-level families are understood; another is `[ternq.unsupported]` naming it, since skipping it would
/// tokenize differently from the model's training.
inline void add_pre_tokenizer(const nlohmann::json& p, bpe_definition& d, bool& byte_level) {
  const std::string type = p.value("type", "");
  const auto refuse = [&](const auto&... why) { fail(errc::unsupported, d.source, ": pre-tokenizer ", why...); };
  if (type == "Sequence") {
    for (const auto& q : p.at("pretokenizers")) add_pre_tokenizer(q, d, byte_level);
  } else if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false)) refuse("ByteLevel with add_prefix_space is not supported");
    byte_level = true;
    if (p.value("use_regex", true)) d.patterns.emplace_back(gpt2_pattern);
  } else if (type == "Split") {
    const std::string behavior = p.value("behavior", "");
    if (behavior != "Isolated") refuse("Split with the behavior '", behavior, "' is not supported (only Isolated)");
    if (p.value("invert", false)) refuse("Split with invert is not supported");
    const nlohmann::json& pattern = p.at("pattern");
    if (pattern.contains("Regex")) {
      d.patterns.push_back(pattern["Regex"].get<std::string>());
    } else if (pattern.contains("String")) {
      // A literal: escaped for PCRE2 with \Q...\E (a literal "\E" inside is closed and reopened around it).
      std::string escaped = "\\Q";
      for (const char c : pattern["String"].get<std::string>()) {
        escaped += c;
        if (escaped.ends_with("\\E")) escaped += "\\\\E\\Q";
      }
      d.patterns.push_back(escaped + "\\E");
    } else {
      refuse("Split without a Regex or String pattern");
    }
  } else if (type == "Digits") {
    d.patterns.emplace_back(p.value("individual_digits", false) ? std::string(digit_pattern) : R"(\p{N}+)");
  } else {
    refuse("'", type, "' is not supported (Sequence, ByteLevel, Split, Digits are)");
  }
}

/// Reads the post-processor's ids around the text: a `TemplateProcessing`'s special tokens before and after
/// `$A`; `ByteLevel` adds nothing. Returns false for none at all.
inline bool add_post_processor(const nlohmann::json& p, bpe_definition& d) {
  const std::string type = p.value("type", "");
  if (type == "Sequence") {
    bool any = false;
    for (const auto& q : p.at("processors")) any = add_post_processor(q, d) || any;
    return any;
  }
  if (type == "ByteLevel") return false;
  if (type != "TemplateProcessing") {
    fail(errc::unsupported, d.source, ": post-processor '", type,
         "' is not supported (TemplateProcessing, ByteLevel, Sequence are)");
  }
  const nlohmann::json& specials = p.at("special_tokens");
  bool before = true;
  for (const auto& item : p.at("single")) {
    if (item.contains("Sequence")) {
      before = false;
      continue;
    }
    const std::string name = item.at("SpecialToken").at("id").get<std::string>();
    for (const auto& id : specials.at(name).at("ids")) (before ? d.prefix : d.suffix).push_back(id.get<std::int32_t>());
  }
  return true;
}

}  // namespace detail

/// True when `tokenizer.json` holds a byte-level BPE model (its pre-tokenizer has a ByteLevel step), the kind
/// `read_tokenizer_json` reads. A SentencePiece model converted to JSON (Llama-2's, with a Metaspace
/// pre-tokenizer and byte fallback) is not: its `tokenizer.model` is read instead.
inline bool is_byte_level_bpe(const nlohmann::json& j) {
  if (!j.contains("model") || j["model"].value("type", "") != "BPE") return false;
  std::vector<const nlohmann::json*> todo = {&j["pre_tokenizer"]};
  while (!todo.empty()) {
    const nlohmann::json* p = todo.back();
    todo.pop_back();
    if (!p->is_object()) continue;
    if (p->value("type", "") == "ByteLevel") return true;
    if (p->contains("pretokenizers")) {
      for (const auto& q : (*p)["pretokenizers"]) todo.push_back(&q);
    }
  }
  return false;
}

/// Reads a Hugging Face `tokenizer.json` of a byte-level BPE model. The ids around the text come from the
/// post-processor (Llama-3's template puts `<|begin_of_text|>` first); without one, `add_bos_token` of the
/// `tokenizer_config.json` in the same directory puts its `bos_token` first. That file also names the BOS, EOS
/// and padding tokens (the post-processor's first token is BOS when it names none). A model other than BPE
/// (WordPiece, Unigram, WordLevel), a BPE that is not byte-level, and the options ternq does not implement
/// (dropout, subword prefixes and suffixes, normalizers other than NFC) are `[ternq.unsupported]` naming them.
inline bpe_definition read_tokenizer_json(const std::filesystem::path& path) {
  const nlohmann::json j = detail::read_json(path);
  bpe_definition d;
  d.source = "tokenizer '" + path.string() + "'";
  const auto refuse = [&](const auto&... why) { fail(errc::unsupported, d.source, ": ", why...); };
  try {
    const nlohmann::json& model = j.at("model");
    const std::string type = model.value("type", "");
    if (type != "BPE") {
      refuse("the model type '", type.empty() ? std::string("(none)") : type,
             "' is not supported; ternq reads byte-level BPE tokenizer.json files (GPT-2, Llama-3, Qwen2/3, SmolLM), "
             "and SentencePiece models from tokenizer.model");
    }
    if (!is_byte_level_bpe(j)) {
      refuse(
          "a BPE model without a ByteLevel pre-tokenizer (a SentencePiece conversion?) is not supported; "
          "give its tokenizer.model");
    }
    if (model.contains("dropout") && !model["dropout"].is_null()) refuse("BPE dropout is not supported");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
        refuse("BPE with a ", key, " is not supported");
      }
    }
    d.ignore_merges = model.value("ignore_merges", false);
    // Ids run densely from 0: one beyond the count of tokens would leave holes (and size the vocabulary by a
    // number the file does not back), so it is refused.
    const nlohmann::json& added = j.value("added_tokens", nlohmann::json::array());
    const std::size_t count = model.at("vocab").size() + added.size();
    for (const auto& [token, id] : model.at("vocab").items()) {
      const auto i = id.get<std::int64_t>();
      if (i < 0 || static_cast<std::size_t>(i) >= count) {
        fail(errc::corrupt_file, d.source, ": token '", token, "' has the id ", i, ", beyond the ", count,
             " tokens of the file");
      }
      if (static_cast<std::size_t>(i) >= d.tokens.size()) d.tokens.resize(static_cast<std::size_t>(i) + 1);
      d.tokens[static_cast<std::size_t>(i)] = token;
    }
    for (const auto& m : model.at("merges")) {
      if (m.is_string()) {  // "left right"; byte-alphabet tokens hold no space
        const std::string s = m.get<std::string>();
        const std::size_t space = s.find(' ');
        if (space == std::string::npos) fail(errc::corrupt_file, d.source, ": merge '", s, "' is not two tokens");
        d.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else {  // ["left", "right"]
        if (!m.is_array() || m.size() != 2) fail(errc::corrupt_file, d.source, ": a merge is not two tokens");
        d.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      }
    }
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      const auto it = model.at("vocab").find(model["unk_token"].get<std::string>());
      if (it != model.at("vocab").end()) d.unk = it->get<std::int32_t>();
    }
    for (const auto& a : added) {
      if (a.value("single_word", false)) refuse("added token '", a.value("content", ""), "' is single_word");
      const auto i = a.at("id").get<std::int64_t>();
      if (i < 0 || static_cast<std::size_t>(i) >= count) {
        fail(errc::corrupt_file, d.source, ": added token '", a.value("content", ""), "' has the id ", i,
             ", beyond the ", count, " tokens of the file");
      }
      d.added.push_back({a.at("content").get<std::string>(), a.at("id").get<std::int32_t>(), a.value("special", false),
                         a.value("lstrip", false), a.value("rstrip", false)});
    }
    const nlohmann::json& normalizer = j.value("normalizer", nlohmann::json());
    if (!normalizer.is_null()) {
      const std::string n = normalizer.value("type", "");
      if (n != "NFC") refuse("normalizer '", n, "' is not supported (none or NFC)");
      d.nfc = true;
    }
    bool byte_level = false;
    detail::add_pre_tokenizer(j.at("pre_tokenizer"), d, byte_level);
    const nlohmann::json& post = j.value("post_processor", nlohmann::json());
    const bool templated = !post.is_null() && detail::add_post_processor(post, d);

    // tokenizer_config.json: the special tokens by name, and add_bos_token where no template decides.
    const std::filesystem::path config_path = path.parent_path() / "tokenizer_config.json";
    const nlohmann::json config =
        std::filesystem::exists(config_path) ? detail::read_json(config_path) : nlohmann::json::object();
    const auto id_of = [&](const std::optional<std::string>& text) -> std::optional<std::int32_t> {
      if (!text) return std::nullopt;
      for (const added_token& a : d.added) {
        if (a.content == *text) return a.id;
      }
      const auto it = model.at("vocab").find(*text);
      if (it != model.at("vocab").end()) return it->get<std::int32_t>();
      return std::nullopt;
    };
    d.bos = id_of(detail::token_text(config, "bos_token"));
    d.eos = id_of(detail::token_text(config, "eos_token"));
    d.pad = id_of(detail::token_text(config, "pad_token"));
    if (!d.bos && !d.prefix.empty()) d.bos = d.prefix.front();
    if (!templated && config.value("add_bos_token", false)) {
      if (!d.bos) refuse("tokenizer_config.json asks for add_bos_token but names no bos_token in the vocabulary");
      d.prefix.push_back(*d.bos);
    }
  } catch (const nlohmann::json::exception& e) {
    fail(errc::corrupt_file, d.source, ": ", e.what());
  }
  return d;
}

}  // namespace ternq::tokenizers
