// SPDX-License-Identifier: MIT
// Progress output for the command-line tools: a redrawn bar on a terminal, plain lines otherwise.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

namespace ternq::cli {

/// Reports `done / total` units with a label. On a terminal the bar is
/// redrawn in place on stderr; when stderr is a file or a pipe each update
/// is one plain line, so logs stay readable.
class progress_bar {
 public:
  explicit progress_bar(std::string title, std::FILE* out = stderr)
      : title_(std::move(title)),
        out_(out),
        terminal_(::isatty(::fileno(out)) != 0),
        start_(std::chrono::steady_clock::now()) {}

  /// `extra`: more of the state (elapsed time, ETA, memory), printed after the bar.
  void update(std::size_t done, std::size_t total, const std::string& label, const std::string& extra = {}) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (!terminal_) {
      std::fprintf(out_, "%s %zu/%zu %s (%.1f s%s%s)\n", title_.c_str(), done, total, label.c_str(), seconds,
                   extra.empty() ? "" : "; ", extra.c_str());
      std::fflush(out_);
      return;
    }
    constexpr std::size_t width = 30;
    const std::size_t filled = total == 0 ? width : std::min(width, done * width / total);
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(out_, "\r%s [%s] %zu/%zu %-20.20s %6.1f s %s", title_.c_str(), bar.c_str(), done, total,
                 label.c_str(), seconds, extra.c_str());
    if (done >= total) std::fprintf(out_, "\n");
    std::fflush(out_);
  }

 private:
  std::string title_;
  std::FILE* out_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ternq::cli
