// SPDX-License-Identifier: MIT
// The packed-matrix kernels: products straight from the ternary blocks of pack/ (no dequantized copy). Standard
// library only; the CUDA kernels (kernels/cuda/*.cuh, with ternq::cuda) are included separately by nvcc programs.
#pragma once

#include "ternq/kernels/cpu/activations.hpp"
#include "ternq/kernels/cpu/packed_view.hpp"
#include "ternq/kernels/cpu/products.hpp"
#include "ternq/kernels/cpu/reference.hpp"
#include "ternq/kernels/cpu/widen.hpp"
#include "ternq/kernels/cuda/block_math.hpp"
