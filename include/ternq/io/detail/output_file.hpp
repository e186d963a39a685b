// SPDX-License-Identifier: MIT
// output_file: buffered writing to `<path>.part`, renamed over `path` only when complete.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/io/mapped_file.hpp"

namespace ternq::io::detail {

/// Writers never leave a half-written file under the final name: bytes go to
/// `<path>.part`, and `commit()` renames it over `path`. Destroying an
/// uncommitted file (an exception on the way) removes the partial file.
/// Every failure is `[ternq.io]` naming the final path and the system's reason.
class output_file {
 public:
  output_file(std::filesystem::path path, std::string context)
      : path_(std::move(path)), part_(path_), context_(std::move(context)) {
    part_ += ".part";
    fd_ = ::open(part_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail_errno("cannot create");
    buffer_.reserve(buffer_capacity);
  }
  output_file(const output_file&) = delete;
  output_file& operator=(const output_file&) = delete;
  ~output_file() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(part_.c_str());
    }
  }

  void write(std::span<const std::byte> bytes) {
    if (buffer_.size() + bytes.size() > buffer_capacity) flush();
    if (bytes.size() >= buffer_capacity) {
      write_all(bytes);
    } else {
      buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    }
  }

  /// Flushes, closes and renames the file into place.
  void commit() {
    flush();
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      const int err = errno;
      ::unlink(part_.c_str());
      fail(errc::io, context_, ": cannot write '", path_.string(), "': ", errno_text(err));
    }
    if (std::rename(part_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      ::unlink(part_.c_str());
      fail(errc::io, context_, ": cannot rename '", part_.string(), "' to '", path_.string(), "': ", errno_text(err));
    }
  }

 private:
  static constexpr std::size_t buffer_capacity = std::size_t{1} << 20U;

  void flush() {
    write_all(buffer_);
    buffer_.clear();
  }
  void write_all(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
      const ::ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno("cannot write");
      }
      bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
  }
  [[noreturn]] void fail_errno(const char* what) const {
    const int err = errno;
    fail(errc::io, context_, ": ", what, " '", path_.string(), "': ", errno_text(err));
  }

  std::filesystem::path path_;
  std::filesystem::path part_;
  std::string context_;
  int fd_ = -1;
  std::vector<std::byte> buffer_;
};

}  // namespace ternq::io::detail
