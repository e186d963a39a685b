// SPDX-License-Identifier: MIT
// Umbrellas in reverse order, the adapter first: io, pack, quant.
#include <ternq/adapters/eigen.hpp>
#include <ternq/io.hpp>
#include <ternq/pack.hpp>
#include <ternq/quant.hpp>

#define TERNQ_PIPELINE_NAME pipeline_io_pack_quant
#include "pipeline_body.inc"
