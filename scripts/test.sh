#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs dependencies if missing, then builds and runs the whole test suite with GCC and with
# Clang (warnings are errors), including the packaging tests and a small benchmark smoke run.
# GCC is the plain optimized pass; the Clang pass is built with AddressSanitizer and
# UndefinedBehaviorSanitizer (any report fails the test) and also builds the libFuzzer targets of
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
  if [[ $cxx == clang++* ]]; then
    extra=(-DTERNQ_SANITIZE=address,undefined -DTERNQ_BUILD_FUZZERS=ON)
  fi
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
    -DTERNQ_WERROR=ON "${extra[@]}" >/dev/null
  cmake --build "$build" -j "$jobs"
  ctest --test-dir "$build" --output-on-failure -j "$jobs"
done
