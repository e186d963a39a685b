#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: install dependencies if missing, build the tools, and run ternq-quantize on its embedded
# default (a generated LLM-like layer with outlier channels and its calibration activations), printing the
# error of each method. Extra arguments go to ternq-quantize (try --help, or --model ... for a real model).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build="$root/build/release"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTERNQ_BUILD_TESTS=OFF \
  -DTERNQ_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" --target ternq-quantize ternq-eval
"$build/tools/ternq-quantize" "$@"
