// SPDX-License-Identifier: MIT
// The process's resident memory (Linux /proc/self/status), for progress lines and reports.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace ternq::cli {

namespace detail {
/// A `VmXXX:   1234 kB` field of /proc/self/status in bytes; 0 where the file or field is absent.
inline std::uint64_t proc_status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      unsigned long long kb = 0;
      if (std::sscanf(line.c_str() + field.size() + 1, "%llu", &kb) == 1) return kb * 1024ULL;
    }
  }
  return 0;
}
}  // namespace detail

/// Peak resident set size so far (VmHWM), bytes.
inline std::uint64_t peak_resident_bytes() { return detail::proc_status_bytes("VmHWM"); }
/// Resident set size now (VmRSS), bytes.
inline std::uint64_t resident_bytes() { return detail::proc_status_bytes("VmRSS"); }

/// "1.23 GiB", "456.7 MiB".
inline std::string format_bytes(std::uint64_t bytes) {
  char text[32];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024.0 * 1024.0) {
    std::snprintf(text, sizeof text, "%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
  } else {
    std::snprintf(text, sizeof text, "%.1f MiB", b / (1024.0 * 1024.0));
  }
  return text;
}

/// "1h02m", "3m20s", "12.3s".
inline std::string format_duration(double seconds) {
  char text[32];
  if (seconds < 0) seconds = 0;
  if (seconds >= 3600) {
    std::snprintf(text, sizeof text, "%dh%02dm", static_cast<int>(seconds / 3600), static_cast<int>(seconds / 60) % 60);
  } else if (seconds >= 60) {
    std::snprintf(text, sizeof text, "%dm%02ds", static_cast<int>(seconds / 60), static_cast<int>(seconds) % 60);
  } else {
    std::snprintf(text, sizeof text, "%.1fs", seconds);
  }
  return text;
}

}  // namespace ternq::cli
