// SPDX-License-Identifier: MIT
// The linalg layer and the core it builds on: Gram accumulation, damped Hessian, Cholesky, SPD inverse, tiled products.
#pragma once

#include "ternq/core.hpp"

#include "ternq/linalg/cholesky.hpp"
#include "ternq/linalg/damped_hessian.hpp"
#include "ternq/linalg/damping.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/linalg/gram.hpp"
#include "ternq/linalg/gram_blocks.hpp"
#include "ternq/linalg/gram_checks.hpp"
#include "ternq/linalg/gram_products.hpp"
#include "ternq/linalg/gram_psd.hpp"
#include "ternq/linalg/spd_inverse.hpp"
#include "ternq/linalg/tasks.hpp"
#include "ternq/linalg/tiled_products.hpp"
