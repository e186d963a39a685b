// SPDX-License-Identifier: MIT
// PQ2_0 (PrismML, ggml type 142): Q2_0's sequential 2-bit codec at 128 elements, fp16 scale first.
#pragma once

#include "ternq/pack/blocks.hpp"
#include "ternq/pack/format.hpp"
#include "ternq/pack/q2_0.hpp"

namespace ternq::pack {

/// The PQ2_0 block codec: 128 elements, element `j` in byte `j / 4`, bits
/// `2 (j % 4)`. Holds a group-128 matrix with one block per group. Never
/// confuse it with the 34-byte blocks an older PrismML line wrote under id
/// 42: ternq writes those only as PQ2_0 (id 142).
struct pq2_0 : detail::sequential_2bit<block_pq2_0, format::pq2_0> {};

}  // namespace ternq::pack
