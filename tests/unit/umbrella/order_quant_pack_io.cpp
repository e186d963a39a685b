// SPDX-License-Identifier: MIT
// Umbrellas in dependency order: quant, pack, io (adapter last).
#include <ternq/quant.hpp>
#include <ternq/pack.hpp>
#include <ternq/io.hpp>
#include <ternq/adapters/eigen.hpp>

#define TERNQ_PIPELINE_NAME pipeline_quant_pack_io
#include "pipeline_body.inc"
