#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs dependencies if missing, then builds and runs the whole test suite with GCC and with
# Clang (warnings are errors), including the packaging tests and a small benchmark smoke run.
# TERNQ_COMPILERS="g++" limits the compilers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
jobs=$(nproc)

for cxx in ${TERNQ_COMPILERS:-g++ clang++}; do
  build="$root/build/test-$cxx"
  echo "=== $cxx: configure, build, test"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
    -DTERNQ_WERROR=ON >/dev/null
  cmake --build "$build" -j "$jobs"
  ctest --test-dir "$build" --output-on-failure -j "$jobs"
done
