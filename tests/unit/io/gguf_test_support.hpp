// SPDX-License-Identifier: MIT
// Helpers of the GGUF tests: write to memory, unique temporary files.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "ternq/io/gguf_writer.hpp"

namespace ternq::testing {

/// Opens `w` on a string stream, runs `write(w)`, closes it and returns the file's bytes.
template <class Write>
std::vector<std::uint8_t> write_to_memory(io::gguf_writer& w, Write&& write) {
  std::ostringstream out(std::ios::binary);
  w.open(out);
  write(w);
  w.close();
  const std::string s = out.str();
  return {s.begin(), s.end()};
}

/// A path in the temporary directory, unique to this process and call; removed by the destructor.
class temp_file {
 public:
  explicit temp_file(const std::string& stem) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() / (stem + "-" + std::to_string(static_cast<long long>(::getpid())) +
                                                      "-" + std::to_string(counter++) + ".gguf");
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace ternq::testing
