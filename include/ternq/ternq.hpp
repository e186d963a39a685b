// SPDX-License-Identifier: MIT
// The umbrella header: every ternq layer (adapters are included separately). A program that only quantizes
// includes <ternq/quant.hpp>, one that only packs <ternq/pack.hpp>; see docs/architecture.md.
#pragma once

#include "ternq/core.hpp"
#include "ternq/linalg.hpp"
#include "ternq/optim.hpp"
#include "ternq/quant.hpp"
#include "ternq/pack.hpp"
#include "ternq/kernels.hpp"
#include "ternq/io.hpp"
