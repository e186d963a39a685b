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

/// TERNQ_ALWAYS_INLINE forces inlining. The hot per-group code carries it so
/// that it is compiled inside each instruction-set variant of the row loop
/// (a function compiled for AVX2 only vectorizes with AVX2 the code inlined
/// into it).
#if defined(__GNUC__) || defined(__clang__)
#define TERNQ_ALWAYS_INLINE __attribute__((always_inline)) inline
#define TERNQ_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))
#else
#define TERNQ_ALWAYS_INLINE inline
#define TERNQ_ALWAYS_INLINE_LAMBDA
#endif

/// TERNQ_NOINLINE keeps a function out of line: the row kernels' tile functions (each instantiation then gets its
/// own register allocation), and arithmetic that must be compiled once, with the translation unit's own flags,
/// rather than inside an instruction-set variant whose target has FMA (where `a * b + c` may be contracted).
#ifndef TERNQ_NOINLINE
#if defined(__GNUC__) || defined(__clang__)
#define TERNQ_NOINLINE __attribute__((noinline))
#else
#define TERNQ_NOINLINE
#endif
#endif

/// TERNQ_HAS_AVX2_VARIANT is 1 where ternq can compile an AVX2 variant of its
/// hot loops next to the portable one (x86-64 with GCC or Clang); the variant
/// is only *run* when the processor supports it and the caller allows it
/// (ternq::cpu_exec::simd), so the library stays correct on any x86-64.
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define TERNQ_HAS_AVX2_VARIANT 1
#define TERNQ_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define TERNQ_HAS_AVX2_VARIANT 0
#define TERNQ_TARGET_AVX2
#endif

/// TERNQ_HAS_AVX512_VARIANT is 1 where ternq compiles the AVX-512 (F/BW/VL/DQ + VNNI) variant of the packed-matrix
/// kernels and of two quantizer loops (the exact optimum's search, ITF's passes); as for AVX2, it only runs where
/// the processor has it and `cpu_exec::simd` allows it. Its target has FMA: code compiled for it must not inline
/// multiply-add arithmetic it shares with the portable path (see TERNQ_NOINLINE), unless each product is rounded on
/// its own as ITF's grid solve does (`detail::rounded_product`). Define
/// TERNQ_DISABLE_AVX512 to leave it out (compilers without these target attributes).
#if TERNQ_HAS_AVX2_VARIANT && !defined(TERNQ_DISABLE_AVX512)
#define TERNQ_HAS_AVX512_VARIANT 1
#define TERNQ_TARGET_AVX512 \
  __attribute__((target("avx2,fma,f16c,bmi,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#define TERNQ_HAS_AVX512_VARIANT 0
#define TERNQ_TARGET_AVX512
#endif

/// TERNQ_AVX512_WARNINGS_BEGIN / _END bracket code that uses AVX-512 intrinsics. GCC 12's intrinsics pass a
/// self-initialized "undefined" vector as the unused merge source, which -W(maybe-)uninitialized reports once
/// inlined (GCC bug 105593; the values are never read): the pair silences exactly those two warnings in between.
#if defined(__GNUC__) && !defined(__clang__)
#define TERNQ_AVX512_WARNINGS_BEGIN                                    \
  _Pragma("GCC diagnostic push")                                       \
  _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")               \
  _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define TERNQ_AVX512_WARNINGS_END _Pragma("GCC diagnostic pop")
#else
#define TERNQ_AVX512_WARNINGS_BEGIN
#define TERNQ_AVX512_WARNINGS_END
#endif

/// TERNQ_HOST_DEVICE marks the per-element and per-block arithmetic that the CUDA kernels share with the CPU code
/// and its tests (`__host__ __device__` under nvcc, nothing for a C++ compiler), so one body of math serves both.
/// TERNQ_EXEC_CHECK_DISABLE goes before the `template` of such a function that calls the callables it is given:
/// nvcc then checks each instantiation against the callable's execution space, instead of warning when host code
/// instantiates it with host lambdas (the CPU fit) as well as device code with device lambdas (the kernel).
#if defined(__CUDACC__)
#define TERNQ_HOST_DEVICE __host__ __device__
#define TERNQ_EXEC_CHECK_DISABLE _Pragma("nv_exec_check_disable")
#else
#define TERNQ_HOST_DEVICE
#define TERNQ_EXEC_CHECK_DISABLE
#endif
