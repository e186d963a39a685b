#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs dependencies if missing, then builds and runs the whole test suite with GCC and with
# Clang (warnings are errors), including the packaging tests.
# GCC is the plain optimized pass, with a small smoke run of every benchmark. The Clang pass is built with
# AddressSanitizer and UndefinedBehaviorSanitizer at -O1 (any report fails the test) and also builds the
# libFuzzer targets of tests/fuzz, whose committed corpora and short fuzzing runs are CTest tests too; it leaves
# the benchmarks to the GCC pass. TERNQ_SANITIZE_CLANG=0 makes it a plain optimized pass instead.
# TERNQ_COMPILERS="g++" limits the compilers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
jobs=$(nproc)

for cxx in ${TERNQ_COMPILERS:-g++ clang++}; do
  build="$root/build/test-$cxx"
  echo "=== $cxx: configure, build, test"
  extra=()
  if [[ $cxx == clang++* && ${TERNQ_SANITIZE_CLANG:-1} == 1 ]]; then
    # -O1: the sanitizers' usual level, and about 40% less compile time than -O3 on two cores.
    extra=(-DTERNQ_SANITIZE=address,undefined -DTERNQ_BUILD_FUZZERS=ON -DTERNQ_BUILD_BENCHMARKS=OFF
      "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG")
    build="$root/build/test-$cxx-sanitized"
  fi
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
    -DTERNQ_WERROR=ON "${extra[@]}" >/dev/null
  cmake --build "$build" -j "$jobs"
  ctest --test-dir "$build" --output-on-failure -j "$jobs"
done
