// SPDX-License-Identifier: MIT
// The umbrella header: every ternq layer in dependency order (adapters and CUDA are included separately).
#pragma once

#include "ternq/config.hpp"
#include "ternq/version.hpp"

// core: standard library only
#include "ternq/core/adapt.hpp"
#include "ternq/core/checks.hpp"
#include "ternq/core/dequantize.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/core/half.hpp"
#include "ternq/core/parallel.hpp"
#include "ternq/core/permutation.hpp"
#include "ternq/core/progress.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/core/view.hpp"

// linalg: dense algebra on Eigen
#include "ternq/linalg/damping.hpp"
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/linalg/gram.hpp"
#include "ternq/linalg/spd_inverse.hpp"
#include "ternq/linalg/tasks.hpp"
#include "ternq/linalg/tiled_products.hpp"

// quant: the methods and their metrics
#include "ternq/quant/absmean.hpp"
#include "ternq/quant/aga.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/gptq/driver.hpp"
#include "ternq/quant/gptq/options.hpp"
#include "ternq/quant/gptq/order.hpp"
#include "ternq/quant/gptq/report.hpp"
#include "ternq/quant/gptq/steps.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/itf.hpp"
#include "ternq/quant/itf_aga.hpp"
#include "ternq/quant/metrics.hpp"
#include "ternq/quant/optimal_symmetric.hpp"
#include "ternq/quant/quantize.hpp"
#include "ternq/quant/twn.hpp"
