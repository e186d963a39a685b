// SPDX-License-Identifier: MIT
// The quantizers with everything they build on (core, linalg, optim): every method, the quantize() entry point,
// the GPTQ-style driver, CAT-Q and the error metrics. What a program that quantizes matrices includes.
#pragma once

#include "ternq/core.hpp"
#include "ternq/linalg.hpp"
#include "ternq/optim.hpp"

#include "ternq/quant/absmean.hpp"
#include "ternq/quant/aga.hpp"
#include "ternq/quant/atq.hpp"
#include "ternq/quant/catq.hpp"
#include "ternq/quant/catq/calibrator.hpp"
#include "ternq/quant/catq/gradient.hpp"
#include "ternq/quant/catq/loss.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/options.hpp"
#include "ternq/quant/catq/soft_ternarize.hpp"
#include "ternq/quant/gptq/driver.hpp"
#include "ternq/quant/gptq/options.hpp"
#include "ternq/quant/gptq/order.hpp"
#include "ternq/quant/gptq/report.hpp"
#include "ternq/quant/gptq/steps.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/itf.hpp"
#include "ternq/quant/itf_aga.hpp"
#include "ternq/quant/metrics.hpp"
#include "ternq/quant/optimal_aga.hpp"
#include "ternq/quant/optimal_symmetric.hpp"
#include "ternq/quant/quantize.hpp"
#include "ternq/quant/scale_refit.hpp"
#include "ternq/quant/twn.hpp"
