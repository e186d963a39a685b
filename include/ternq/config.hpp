// SPDX-License-Identifier: MIT
// Build-time configuration: debug-only contract checks (the third error channel).
#pragma once

#include <cstdio>
#include <cstdlib>

/// TERNQ_ASSERT(cond) checks an internal contract. It is compiled in when
/// TERNQ_ENABLE_ASSERTS is defined (the test suite does) or NDEBUG is not,
/// and aborts with the location: a failing assert is a ternq bug, never a
/// user error (user errors throw ternq::error whatever the build type).
#if defined(TERNQ_ENABLE_ASSERTS) || !defined(NDEBUG)
#define TERNQ_ASSERT(cond)                                                                                   \
  ((cond) ? static_cast<void>(0)                                                                             \
          : (std::fprintf(stderr, "%s:%d: ternq internal contract failed: %s\n", __FILE__, __LINE__, #cond), \
             std::abort()))
#else
#define TERNQ_ASSERT(cond) static_cast<void>(0)
#endif
