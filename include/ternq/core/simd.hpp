// SPDX-License-Identifier: MIT
// Instruction-set variants of the hot loops: the levels, run-time detection, and selection.
#pragma once

#include <string_view>
#include <vector>

#include "ternq/config.hpp"

namespace ternq {

/// The instruction-set variants ternq compiles its hot loops for. `portable`
/// is the normative reference (baseline x86-64 / any architecture); every
/// other variant must give bit-identical results (tested), only faster.
enum class simd_level {
  portable,  ///< baseline instructions only
  avx2,      ///< x86-64 AVX2 (no FMA: contraction would change results)
  /// x86-64 AVX-512 F/BW/VL/DQ with VNNI (Ice Lake, Zen 4 and later). The packed-matrix kernels have a variant
  /// for it; the quantizers run their AVX2 variant at this level, the exact symmetric optimum an AVX-512 search.
  avx512,
};

constexpr std::string_view simd_level_name(simd_level level) noexcept {
  switch (level) {
    case simd_level::portable: return "portable";
    case simd_level::avx2: return "avx2";
    case simd_level::avx512: return "avx512";
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
    case simd_level::avx512:
#if TERNQ_HAS_AVX512_VARIANT
      return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("avx512f") != 0 &&
             __builtin_cpu_supports("avx512bw") != 0 && __builtin_cpu_supports("avx512vl") != 0 &&
             __builtin_cpu_supports("avx512dq") != 0 && __builtin_cpu_supports("avx512vnni") != 0;
#else
      return false;
#endif
  }
  return false;
}

/// The fastest supported level.
inline simd_level best_simd_level() noexcept {
  if (simd_supported(simd_level::avx512)) return simd_level::avx512;
  return simd_supported(simd_level::avx2) ? simd_level::avx2 : simd_level::portable;
}

/// Every level this build has a variant for and this processor runs, slowest first (for tests and benchmarks
/// that compare the variants).
inline std::vector<simd_level> supported_simd_levels() {
  std::vector<simd_level> out;
  for (const simd_level l : {simd_level::portable, simd_level::avx2, simd_level::avx512}) {
    if (simd_supported(l)) out.push_back(l);
  }
  return out;
}

}  // namespace ternq
