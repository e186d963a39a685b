// SPDX-License-Identifier: MIT
// The core layer: views, ternary matrices, errors, group layout, permutations, progress, cpu_exec (standard library only).
#pragma once

#include "ternq/config.hpp"
#include "ternq/version.hpp"

#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/dequantize.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/finite.hpp"
#include "ternq/core/grid_precision.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/half.hpp"
#include "ternq/core/host_device_math.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/permutation.hpp"
#include "ternq/core/progress.hpp"
#include "ternq/core/reshape.hpp"
#include "ternq/core/simd.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"
