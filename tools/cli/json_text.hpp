// SPDX-License-Identifier: MIT
// JSON text for the tools' output: never throws on a string that is not valid UTF-8.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ternq::cli {

/// The JSON text of `j` (`indent` as nlohmann/json's `dump`). Strings that are not valid UTF-8 (decoded text cut
/// inside a character by the token limit, a file path in another encoding) get U+FFFD for each invalid byte,
/// where nlohmann/json would throw `type_error` and leave a report or a `--json` line unwritten.
inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace ternq::cli
