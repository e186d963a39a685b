// SPDX-License-Identifier: MIT
// ternq::error: the one exception type, with stable ids and messages that name the problem.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace ternq {

/// Stable error identifiers. The numeric values and names are part of the API:
/// never renumber or rename an entry, only append.
enum class errc : std::uint16_t {
  invalid_argument = 1,     ///< an option or argument out of its domain
  shape_mismatch = 2,       ///< extents that must agree do not
  non_finite = 3,           ///< NaN or Inf in weights, activations or statistics
  zero_group_size = 4,      ///< a group size of zero
  empty_matrix = 5,         ///< a matrix with no rows or no columns where data is required
  out_of_bounds = 6,        ///< a view or offset reaching outside its storage
  invalid_permutation = 7,  ///< a column order that is not a permutation
  unsupported = 8,          ///< an unsupported type, format or combination
  corrupt_file = 9,         ///< a file whose bytes contradict its own structure
  io = 10,                  ///< the operating system refused a read or write
  cancelled = 11,           ///< a progress callback asked to stop
  numerical = 12,           ///< a factorization failed even after the documented retries
  device = 13,              ///< a GPU runtime or library call failed (the message names the call)
};

/// The id's stable name, as it appears in messages: `[ternq.<name>]`.
constexpr std::string_view errc_name(errc e) noexcept {
  switch (e) {
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::shape_mismatch:
      return "shape_mismatch";
    case errc::non_finite:
      return "non_finite";
    case errc::zero_group_size:
      return "zero_group_size";
    case errc::empty_matrix:
      return "empty_matrix";
    case errc::out_of_bounds:
      return "out_of_bounds";
    case errc::invalid_permutation:
      return "invalid_permutation";
    case errc::unsupported:
      return "unsupported";
    case errc::corrupt_file:
      return "corrupt_file";
    case errc::io:
      return "io";
    case errc::cancelled:
      return "cancelled";
    case errc::numerical:
      return "numerical";
    case errc::device:
      return "device";
  }
  return "unknown";
}

/// The exception every ternq check throws. `what()` is
/// `"[ternq.<id>] <context>: <problem>"`; `code()` gives the id for programs
/// and `detail()` the message without the id prefix.
class error : public std::runtime_error {
 public:
  error(errc code, const std::string& detail)
      : std::runtime_error("[ternq." + std::string(errc_name(code)) + "] " + detail), code_(code), detail_(detail) {}

  [[nodiscard]] errc code() const noexcept { return code_; }
  [[nodiscard]] const std::string& detail() const noexcept { return detail_; }

 private:
  errc code_;
  std::string detail_;
};

namespace detail {

/// Streams every argument into one string; the message builder for errors.
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  out.precision(9);
  (out << ... << args);
  return out.str();
}

}  // namespace detail

/// Throws `ternq::error(code, concat(args...))`.
template <class... Args>
[[noreturn]] void fail(errc code, const Args&... args) {
  throw error(code, detail::concat(args...));
}

}  // namespace ternq
