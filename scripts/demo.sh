#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: install dependencies if missing, build, and quantize the embedded default layer
# with every method. Extra arguments go to the demo (try --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build="$root/build/release"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTERNQ_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" --target ternq-method-table
"$build/examples/ternq-method-table" "$@"
