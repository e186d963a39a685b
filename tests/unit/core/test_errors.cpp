// SPDX-License-Identifier: MIT
// ternq::error: ids, names and message format are part of the API.
#include <doctest/doctest.h>

#include <string>

#include "ternq/core/error.hpp"
#include "ternq/version.hpp"

TEST_CASE("error messages carry the stable id prefix and the detail") {
  const ternq::error e(ternq::errc::shape_mismatch, "quantize: gram matrix is 3x3");
  CHECK(e.code() == ternq::errc::shape_mismatch);
  CHECK(std::string(e.what()) == "[ternq.shape_mismatch] quantize: gram matrix is 3x3");
  CHECK(e.detail() == "quantize: gram matrix is 3x3");
}

TEST_CASE("every error id has a distinct stable name and number") {
  using ternq::errc;
  CHECK(static_cast<int>(errc::invalid_argument) == 1);
  CHECK(static_cast<int>(errc::shape_mismatch) == 2);
  CHECK(static_cast<int>(errc::non_finite) == 3);
  CHECK(static_cast<int>(errc::zero_group_size) == 4);
  CHECK(static_cast<int>(errc::empty_matrix) == 5);
  CHECK(static_cast<int>(errc::out_of_bounds) == 6);
  CHECK(static_cast<int>(errc::invalid_permutation) == 7);
  CHECK(static_cast<int>(errc::unsupported) == 8);
  CHECK(static_cast<int>(errc::corrupt_file) == 9);
  CHECK(static_cast<int>(errc::io) == 10);
  CHECK(static_cast<int>(errc::cancelled) == 11);
  CHECK(static_cast<int>(errc::numerical) == 12);
  CHECK(static_cast<int>(errc::device) == 13);
  CHECK(ternq::errc_name(errc::device) == "device");
  CHECK(ternq::errc_name(errc::non_finite) == "non_finite");
  CHECK(ternq::errc_name(errc::corrupt_file) == "corrupt_file");
  for (int a = 1; a <= 13; ++a) {
    for (int b = a + 1; b <= 13; ++b) {
      CHECK(ternq::errc_name(static_cast<errc>(a)) != ternq::errc_name(static_cast<errc>(b)));
    }
  }
}

TEST_CASE("fail() formats its arguments into the message") {
  try {
    ternq::fail(ternq::errc::invalid_argument, "ratio ", 0.5, " of ", 3, " rows");
    FAIL("fail() returned");
  } catch (const ternq::error& e) {
    CHECK(std::string(e.what()) == "[ternq.invalid_argument] ratio 0.5 of 3 rows");
  }
}

TEST_CASE("the version macros agree with the version string") {
  CHECK(std::string(ternq::version_string) == std::to_string(TERNQ_VERSION_MAJOR) + "." +
                                                  std::to_string(TERNQ_VERSION_MINOR) + "." +
                                                  std::to_string(TERNQ_VERSION_PATCH));
}
