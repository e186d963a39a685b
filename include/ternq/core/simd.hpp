// SPDX-License-Identifier: MIT
// Instruction-set variants of the hot loops: the levels, run-time detection, and selection.
#pragma once

#include <string_view>

#include "ternq/config.hpp"

namespace ternq {

/// The instruction-set variants ternq compiles its hot loops for. `portable`
/// is the normative reference (baseline x86-64 / any architecture); every
/// other variant must give bit-identical results (tested), only faster.
enum class simd_level {
  portable,  ///< baseline instructions only
  avx2,      ///< x86-64 AVX2 (no FMA: contraction would change results)
};

constexpr std::string_view simd_level_name(simd_level level) noexcept {
  switch (level) {
    case simd_level::portable: return "portable";
    case simd_level::avx2: return "avx2";
  }
  return "unknown";
}

/// True when this build has a variant for `level` and this processor runs it.
inline bool simd_supported(simd_level level) noexcept {
  switch (level) {
    case simd_level::portable: return true;
    case simd_level::avx2:
#if TERNQ_HAS_AVX2_VARIANT
      return __builtin_cpu_supports("avx2") != 0;
#else
      return false;
#endif
  }
  return false;
}

/// The fastest supported level.
inline simd_level best_simd_level() noexcept {
  return simd_supported(simd_level::avx2) ? simd_level::avx2 : simd_level::portable;
}

}  // namespace ternq
