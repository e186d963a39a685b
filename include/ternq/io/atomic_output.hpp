// SPDX-License-Identifier: MIT
// atomic_output: a file written under a temporary name in its target directory, fsynced, then renamed into place.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <ios>
#include <memory>
#include <ostream>
#include <span>
#include <streambuf>
#include <string>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/io/mapped_file.hpp"

namespace ternq::io {

/// Every file ternq writes (safetensors, GGUF, llama2.c checkpoints, the
/// tools' reports) goes through this class, so that the target path only
/// ever holds a complete file: the previous one, or the new one.
///
/// The bytes go to a fresh temporary file `.<name>.XXXXXX.part` beside the
/// target (same directory, so the final rename stays on one file system);
/// `commit()` flushes, `fsync`s the file, renames it over the target and
/// `fsync`s the directory. A run killed before `commit()` leaves the target
/// untouched (plus the orphaned temporary); destroying an uncommitted object
/// (an exception on the way) removes the temporary. Every failure is
/// `[ternq.io]` naming the target and the system's reason.
class atomic_output {
 public:
  atomic_output(std::filesystem::path path, std::string context)
      : path_(std::move(path)), context_(std::move(context)) {
    const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
    std::string name = ".";
    name += path_.filename().string();
    name += ".XXXXXX.part";
    std::string pattern = (dir / name).string();
    fd_ = ::mkostemps(pattern.data(), 5, O_CLOEXEC);
    if (fd_ < 0) fail_errno("cannot create a temporary file for");
    temp_ = pattern;
    // mkstemp creates the file 0600; give it the mode a plain creat(0666) would get under the umask.
    const ::mode_t mask = ::umask(0);
    ::umask(mask);
    if (::fchmod(fd_, 0666 & ~mask) != 0) fail_errno("cannot set the mode of the temporary file for");
    buffer_.reserve(buffer_capacity);
  }
  atomic_output(const atomic_output&) = delete;
  atomic_output& operator=(const atomic_output&) = delete;
  ~atomic_output() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(temp_.c_str());
    }
  }

  /// The final path.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  /// The temporary file the bytes go to until `commit()`.
  [[nodiscard]] const std::filesystem::path& temporary_path() const noexcept { return temp_; }

  void write(std::span<const std::byte> bytes) {
    require_open("write");
    if (buffer_.size() + bytes.size() > buffer_capacity) flush();
    if (bytes.size() >= buffer_capacity) {
      write_all(bytes);
    } else {
      buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    }
  }

  /// A binary `std::ostream` writing into this file (for stream-based
  /// writers). Its exception mask has `badbit`, so a failed write rethrows
  /// the `[ternq.io]` error from here.
  [[nodiscard]] std::ostream& stream() {
    if (!stream_) {
      buf_ = std::make_unique<streambuf>(*this);
      stream_ = std::make_unique<std::ostream>(buf_.get());
      stream_->exceptions(std::ios::badbit);
    }
    return *stream_;
  }

  /// Flushes, `fsync`s, closes and renames the file into place, then
  /// `fsync`s the directory so the rename itself is durable.
  void commit() {
    require_open("commit");
    if (stream_) stream_->flush();
    flush();
    if (::fsync(fd_) != 0) fail_errno("cannot flush to disk");
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) {
      const int err = errno;
      ::unlink(temp_.c_str());
      fail(errc::io, context_, ": cannot write '", path_.string(), "': ", detail::errno_text(err));
    }
    if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      ::unlink(temp_.c_str());
      fail(errc::io, context_, ": cannot rename '", temp_.string(), "' to '", path_.string(),
           "': ", detail::errno_text(err));
    }
    const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
    const detail::fd_guard d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.fd >= 0) ::fsync(d.fd);  // best effort: some file systems refuse fsync on directories
  }

 private:
  static constexpr std::size_t buffer_capacity = std::size_t{1} << 20U;

  /// Forwards a `std::ostream`'s bytes to `write`.
  class streambuf : public std::streambuf {
   public:
    explicit streambuf(atomic_output& out) : out_(out) {}

   protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override {
      out_.write(std::as_bytes(std::span(s, static_cast<std::size_t>(n))));
      return n;
    }
    int_type overflow(int_type c) override {
      if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
      const char ch = traits_type::to_char_type(c);
      out_.write(std::as_bytes(std::span(&ch, 1)));
      return c;
    }

   private:
    atomic_output& out_;
  };

  void require_open(const char* what) const {
    if (fd_ < 0) fail(errc::invalid_argument, context_, ": ", what, "() on '", path_.string(), "' after commit()");
  }
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
    fail(errc::io, context_, ": ", what, " '", path_.string(), "': ", detail::errno_text(err));
  }

  std::filesystem::path path_;
  std::filesystem::path temp_;
  std::string context_;
  int fd_ = -1;
  std::vector<std::byte> buffer_;
  std::unique_ptr<streambuf> buf_;
  std::unique_ptr<std::ostream> stream_;
};

}  // namespace ternq::io
