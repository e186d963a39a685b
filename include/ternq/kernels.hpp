// SPDX-License-Identifier: MIT
// The packed-matrix kernels: products straight from the ternary blocks of pack/ (no dequantized copy).
#pragma once

#include "ternq/kernels/cpu/activations.hpp"
#include "ternq/kernels/cpu/packed_view.hpp"
#include "ternq/kernels/cpu/products.hpp"
#include "ternq/kernels/cpu/reference.hpp"
