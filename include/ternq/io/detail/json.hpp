// SPDX-License-Identifier: MIT
// JSON parsing for the io layer: nlohmann/json, with duplicate keys rejected and errors as ternq::error.
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ternq/core/error.hpp"

namespace ternq::io::detail {

/// Parses `text` as one JSON value. A syntax error is `[ternq.corrupt_file]
/// <context>: not valid JSON: <the parser's message>`. A key repeated inside
/// one object is rejected too: nlohmann/json would keep the last one
/// silently, and a safetensors header with one name twice could then show a
/// different tensor than another reader does.
inline nlohmann::json parse_json(std::string_view text, std::string_view context) {
  std::vector<std::set<std::string, std::less<>>> open_objects;
  std::optional<std::string> duplicate;
  const auto watch_keys = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using event_t = nlohmann::json::parse_event_t;
    if (event == event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == event_t::key && !open_objects.empty() && !duplicate) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) duplicate = key;
    }
    return true;
  };
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text.begin(), text.end(), watch_keys);
  } catch (const nlohmann::json::exception& e) {
    fail(errc::corrupt_file, context, ": not valid JSON: ", e.what());
  }
  if (duplicate) fail(errc::corrupt_file, context, ": key '", *duplicate, "' appears twice in one object");
  return value;
}

/// The longest prefix of `s` of at most `n` bytes that does not end inside
/// a UTF-8 sequence (a cut through one would make the excerpt invalid UTF-8,
/// which nlohmann/json refuses to serialize).
inline std::string utf8_prefix(const std::string& s, std::size_t n) {
  if (n >= s.size()) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0U) == 0x80U) --n;
  return s.substr(0, n);
}

/// A bounded, non-recursive-in-depth excerpt of `v` for error messages.
/// `nlohmann::json::dump()` recurses once per nesting level, so dumping an
/// untrusted value nested a million deep overflows the stack; here arrays
/// and objects deeper than `max_depth` print as `[...]` / `{...}`, at most
/// `max_items` members are shown per level, strings are cut at `max_chars`
/// bytes, and the whole excerpt at `4 * max_chars`.
inline std::string json_excerpt(const nlohmann::json& v, int depth = 0) {
  constexpr int max_depth = 2;
  constexpr std::size_t max_items = 4;
  constexpr std::size_t max_chars = 64;
  std::string out;
  if (v.is_array() || v.is_object()) {
    const bool array = v.is_array();
    if (depth >= max_depth) return array ? "[...]" : "{...}";
    out += array ? '[' : '{';
    std::size_t k = 0;
    for (auto it = v.begin(); it != v.end(); ++it, ++k) {
      if (k != 0) out += ", ";
      if (k == max_items) {
        out += "...";
        break;
      }
      if (!array) out += json_excerpt(nlohmann::json(it.key()), depth + 1) + ": ";
      out += json_excerpt(*it, depth + 1);
    }
    out += array ? ']' : '}';
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    // Cut at a character boundary; any invalid byte left would print as U+FFFD rather than throw.
    const auto quoted = [](const std::string& text) {
      return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    out = s.size() <= max_chars ? quoted(s) : quoted(utf8_prefix(s, max_chars)) + "...";
  } else {
    out = v.dump();  // a number, a boolean or null: no recursion
  }
  if (depth == 0 && out.size() > 4 * max_chars) out = utf8_prefix(out, 4 * max_chars) + "...";
  return out;
}

/// The JSON type's name as nlohmann/json spells it ("string", "number", ...), for messages.
inline std::string json_type(const nlohmann::json& v) { return v.type_name(); }

}  // namespace ternq::io::detail
