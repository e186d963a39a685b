// SPDX-License-Identifier: MIT
// Single-layer umbrellas interleaved with individual headers: pack, core, optim, linalg, io, quant.
#include <ternq/pack.hpp>
#include <ternq/core.hpp>
#include <ternq/quant/gptq/driver.hpp>
#include <ternq/optim.hpp>
#include <ternq/linalg.hpp>
#include <ternq/io.hpp>
#include <ternq/adapters/eigen.hpp>
#include <ternq/quant.hpp>

#define TERNQ_PIPELINE_NAME pipeline_layers_mixed
#include "pipeline_body.inc"
