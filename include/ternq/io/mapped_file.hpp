// SPDX-License-Identifier: MIT
// mapped_file: a whole regular file mapped read-only into memory (POSIX mmap), with pread for bulk copies.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"

namespace ternq::io {

namespace detail {

/// The operating system's text for an errno value ("No such file or directory").
inline std::string errno_text(int err) { return std::generic_category().message(err); }

/// Closes a file descriptor on scope exit.
struct fd_guard {
  int fd = -1;
  explicit fd_guard(int descriptor) noexcept : fd(descriptor) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace detail

/// A read-only, private memory mapping of a whole regular file, plus its
/// descriptor for bulk copies (`read`). Readers validate every offset
/// against `size()` before touching `bytes()`, so a hostile file cannot make
/// them read outside the mapping. (A file truncated by another process while
/// mapped still raises SIGBUS: mapping trades that for zero-copy views.)
/// Move-only; an empty file maps to an empty span.
///
/// `borrow` wraps bytes already in memory (a buffer the caller keeps alive)
/// in the same interface, so every reader built on `mapped_file` also
/// parses from memory (tests, fuzzers, data that never touched a disk).
class mapped_file {
 public:
  mapped_file() = default;

  /// The bytes `bytes`, not copied and not owned (they must outlive the
  /// object); `name` stands for the path in messages.
  static mapped_file borrow(std::span<const std::byte> bytes, std::filesystem::path name) {
    mapped_file m;
    m.path_ = std::move(name);
    m.data_ = bytes.data();
    m.size_ = bytes.size();
    m.borrowed_ = true;
    return m;
  }

  /// Maps `path`; throws `[ternq.io]` naming the path and the system's reason.
  explicit mapped_file(const std::filesystem::path& path) : path_(path) {
    detail::fd_guard file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (file.fd < 0) fail_errno("cannot open");
    struct stat st {};
    if (::fstat(file.fd, &st) != 0) fail_errno("cannot stat");
    if (!S_ISREG(st.st_mode)) fail(errc::io, "mapped_file: '", path_.string(), "' is not a regular file");
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ != 0) {  // mmap refuses length 0; an empty span is the honest answer
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd, 0);
      if (p == MAP_FAILED) {
        size_ = 0;
        fail_errno("cannot map");
      }
      data_ = static_cast<const std::byte*>(p);
    }
    fd_ = std::exchange(file.fd, -1);
  }

  mapped_file(mapped_file&& other) noexcept
      : path_(std::move(other.path_)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        fd_(std::exchange(other.fd_, -1)),
        borrowed_(std::exchange(other.borrowed_, false)) {}
  mapped_file& operator=(mapped_file&& other) noexcept {
    if (this != &other) {
      release();
      path_ = std::move(other.path_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      fd_ = std::exchange(other.fd_, -1);
      borrowed_ = std::exchange(other.borrowed_, false);
    }
    return *this;
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file() { release(); }

  /// The file's bytes; valid while this object lives (moves keep them valid).
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// Copies bytes `[offset, offset + out.size())` of the file into `out`
  /// with pread. Bulk copies go through the kernel rather than the mapping:
  /// copying from the mapping costs a page-table walk per page, which on
  /// virtualized machines makes it several times slower than read().
  /// The range must lie inside `size()`; a file that shrank since it was
  /// opened is `[ternq.io]`.
  void read(std::size_t offset, std::span<std::byte> out) const {
    TERNQ_ASSERT(offset <= size_ && out.size() <= size_ - offset);
    if (borrowed_) {
      if (!out.empty()) std::memcpy(out.data(), data_ + offset, out.size());
      return;
    }
    while (!out.empty()) {
      const ::ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<::off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail_errno("cannot read");
      if (n == 0) fail(errc::io, "mapped_file: '", path_.string(), "' shrank while open");
      out = out.subspan(static_cast<std::size_t>(n));
      offset += static_cast<std::size_t>(n);
    }
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  [[noreturn]] void fail_errno(const char* what) const {
    const int err = errno;
    fail(errc::io, "mapped_file: ", what, " '", path_.string(), "': ", detail::errno_text(err));
  }
  void release() noexcept {
    if (data_ != nullptr && !borrowed_) {
      ::munmap(const_cast<std::byte*>(data_), size_);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    }
    if (fd_ >= 0) ::close(fd_);
    data_ = nullptr;
    size_ = 0;
    fd_ = -1;
    borrowed_ = false;
  }

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;            // kept open for read()
  bool borrowed_ = false;  // data_ is the caller's memory: never unmapped, read() copies from it
};

}  // namespace ternq::io
