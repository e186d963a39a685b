// SPDX-License-Identifier: MIT
// JSON parsing for the io layer: nlohmann/json, with duplicate keys rejected and errors as ternq::error.
#pragma once

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

/// The JSON type's name as nlohmann/json spells it ("string", "number", ...), for messages.
inline std::string json_type(const nlohmann::json& v) { return v.type_name(); }

}  // namespace ternq::io::detail
