#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds and runs ternq's CUDA tests and the CUDA kernel benchmark on a machine with an NVIDIA GPU and the CUDA
# toolkit (nvcc on PATH, or CUDACXX, or /usr/local/cuda). Prints the device, the test result and the benchmark's
# bandwidth figures; exits non-zero if the tests fail or are skipped (no usable device).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${TERNQ_CUDA_BUILD:-$root/build/cuda}"
nvcc="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTERNQ_WERROR=ON -DTERNQ_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DTERNQ_BUILD_TOOLS=OFF -DTERNQ_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target ternq_tests_cuda ternq_bench_cuda_kernels
"$build/tests/cuda/ternq_tests_cuda" || { rc=$?; echo "ternq_tests_cuda: exit $rc (77: skipped, no device)"; exit 1; }
"$build/bench/ternq_bench_cuda_kernels" --benchmark_min_time=0.2
