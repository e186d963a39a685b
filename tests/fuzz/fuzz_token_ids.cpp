// SPDX-License-Identifier: MIT
// Fuzz target: the tools' token-id reader (whitespace-separated non-negative int32 ids).
#include <cstddef>
#include <cstdint>

#include "cli/text_slice.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return ternq::fuzz::guarded([&] {
    const auto ids = ternq::cli::parse_token_ids(ternq::fuzz::text(data, size), "fuzz");
    if (!ids.empty()) (void)ternq::cli::windows(ids, 1 + ids.front() % 64, 1 + ids.back() % 8);
  });
}
