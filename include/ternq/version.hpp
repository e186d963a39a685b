// SPDX-License-Identifier: MIT
// The library version, kept equal to project(VERSION) in CMakeLists.txt (a test checks it).
#pragma once

#define TERNQ_VERSION_MAJOR 0
#define TERNQ_VERSION_MINOR 1
#define TERNQ_VERSION_PATCH 0

namespace ternq {
inline constexpr int version_major = TERNQ_VERSION_MAJOR;
inline constexpr int version_minor = TERNQ_VERSION_MINOR;
inline constexpr int version_patch = TERNQ_VERSION_PATCH;
inline constexpr const char* version_string = "0.1.0";
}  // namespace ternq
