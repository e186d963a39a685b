// SPDX-License-Identifier: MIT
// sha256 of a byte buffer as lowercase hex, through OpenSSL (linked by the pack tests only, never by the library).
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <span>
#include <stdexcept>
#include <string>

namespace ternq::testing {

inline std::string sha256_hex(std::span<const std::uint8_t> bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md.data(), &n, EVP_sha256(), nullptr) != 1 || n != 32) {
    throw std::runtime_error("EVP_Digest(sha256) failed");
  }
  std::string hex(64, '0');
  static constexpr char digits[] = "0123456789abcdef";
  for (unsigned int k = 0; k < n; ++k) {
    hex[2 * k] = digits[md[k] >> 4U];
    hex[2 * k + 1] = digits[md[k] & 15U];
  }
  return hex;
}

}  // namespace ternq::testing
