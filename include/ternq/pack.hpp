// SPDX-License-Identifier: MIT
// The pack layer and the core it builds on: 2-bit and base-3 codecs, the ternary block formats, compatibility
// checks, the opt-in re-fit and ggml's reference quantizers (standard library only).
#pragma once

#include "ternq/core.hpp"

#include "ternq/pack/base3.hpp"
#include "ternq/pack/blocks.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/codes.hpp"
#include "ternq/pack/compatibility.hpp"
#include "ternq/pack/float_types.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/ggml_types.hpp"
#include "ternq/pack/i2_s.hpp"
#include "ternq/pack/pack.hpp"
#include "ternq/pack/pq2_0.hpp"
#include "ternq/pack/ptq1_0.hpp"
#include "ternq/pack/q2_0.hpp"
#include "ternq/pack/q8_0.hpp"
#include "ternq/pack/reference.hpp"
#include "ternq/pack/refit.hpp"
#include "ternq/pack/to_float.hpp"
#include "ternq/pack/tq1_0.hpp"
#include "ternq/pack/tq2_0.hpp"
#include "ternq/pack/unpack.hpp"
