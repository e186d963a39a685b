#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs dependencies if missing, then builds and runs the whole test suite with GCC and with
# Clang (warnings are errors), including the packaging tests and a small benchmark smoke run.
# GCC is the plain optimized pass. With TERNQ_SANITIZE_CLANG=1 the Clang pass is built with AddressSanitizer
# and UndefinedBehaviorSanitizer (any report fails the test) and also builds the libFuzzer targets of
# tests/fuzz, whose committed corpora and short fuzzing runs are CTest tests too.
# TERNQ_COMPILERS="g++" limits the compilers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
jobs=$(nproc)

for cxx in ${TERNQ_COMPILERS:-g++ clang++}; do
  build="$root/build/test-$cxx"
  echo "=== $cxx: configure, build, test"
  extra=()
  # The sanitized pass (TERNQ_SANITIZE_CLANG=1) has not yet run over the whole suite on the CI machine:
  # opt-in until it has, so CI's Clang pass stays the plain -Werror build.
  if [[ $cxx == clang++* && ${TERNQ_SANITIZE_CLANG:-0} == 1 ]]; then
    extra=(-DTERNQ_SANITIZE=address,undefined -DTERNQ_BUILD_FUZZERS=ON)
  fi
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
    -DTERNQ_WERROR=ON "${extra[@]}" >/dev/null
  cmake --build "$build" -j "$jobs"
  ctest --test-dir "$build" --output-on-failure -j "$jobs"
done
