// SPDX-License-Identifier: MIT
// Helpers of the GGUF tests: write to memory.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

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

}  // namespace ternq::testing
