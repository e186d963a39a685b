// SPDX-License-Identifier: MIT
// Checks at the door of the tools: readable limits for numeric options, output paths writable before any work.
#pragma once

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <string>
#include <system_error>

#include <CLI/CLI.hpp>

#include <ternq/core/error.hpp>

namespace ternq::cli {

/// A CLI11 check for a count: a whole number of at least 1, refused as "must be a whole number >= 1 (got 0)"
/// (CLI11's PositiveNumber prints the limits of double, "[2.22507e-308 - 1.79769e+308]").
inline CLI::Validator positive_count() {
  return {[](std::string& s) -> std::string {
            const bool digits = !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
            if (!digits || s.find_first_not_of('0') == std::string::npos) {
              return "must be a whole number >= 1 (got '" + s + "')";
            }
            return {};
          },
          "COUNT >= 1"};
}

/// A CLI11 check for an unsigned option that may be 0: a whole number, refused otherwise as "must be a whole
/// number >= 0 (got '-1')" (CLI11 converts "-1" to an unsigned option by wrapping it: a group size of
/// 18446744073709551615).
inline CLI::Validator whole_number() {
  return {[](std::string& s) -> std::string {
            if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) {
              return "must be a whole number >= 0 (got '" + s + "')";
            }
            return {};
          },
          ""};
}

/// Refuses, before any work, an output path that cannot be written: its directory missing or not
/// writable, or the path itself a directory. `option` names the command-line option in the message.
/// With `directory_output` (a Hugging Face model directory, created as needed) the path may be a
/// directory, and the nearest existing one of it and its parents must be writable.
inline void require_writable(const std::string& path, const std::string& option, bool directory_output = false) {
  if (path.empty()) return;
  const std::filesystem::path p(path);
  std::error_code ec;
  if (directory_output) {
    std::filesystem::path at = std::filesystem::absolute(p, ec);
    while (!std::filesystem::exists(at, ec) && at.has_parent_path() && at != at.parent_path()) at = at.parent_path();
    if (!std::filesystem::is_directory(at, ec))
      fail(errc::io, option, " '", path, "': '", at.string(), "' is not a directory");
    if (::access(at.c_str(), W_OK | X_OK) != 0)
      fail(errc::io, option, " '", path, "': '", at.string(), "' is not writable");
    return;
  }
  if (std::filesystem::is_directory(p, ec)) fail(errc::io, option, " '", path, "' is a directory, not a file");
  const std::filesystem::path dir = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(dir, ec)) {
    fail(errc::io, option, " '", path, "': the directory '", dir.string(), "' does not exist");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    fail(errc::io, option, " '", path, "': the directory '", dir.string(), "' is not writable");
  }
}

}  // namespace ternq::cli
