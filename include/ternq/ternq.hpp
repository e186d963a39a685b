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
#include "ternq/linalg/eigen_bridge.hpp"
#include "ternq/linalg/gram.hpp"

// optim: optimizers and schedules for calibrated methods (standard library only)
#include "ternq/optim/adam.hpp"
#include "ternq/optim/schedule.hpp"

// quant: the methods and their metrics
#include "ternq/quant/absmean.hpp"
#include "ternq/quant/catq.hpp"
#include "ternq/quant/catq/calibrator.hpp"
#include "ternq/quant/catq/gradient.hpp"
#include "ternq/quant/catq/loss.hpp"
#include "ternq/quant/catq/modulation.hpp"
#include "ternq/quant/catq/options.hpp"
#include "ternq/quant/catq/soft_ternarize.hpp"
#include "ternq/quant/groupwise.hpp"
#include "ternq/quant/metrics.hpp"
#include "ternq/quant/optimal_symmetric.hpp"
#include "ternq/quant/quantize.hpp"
#include "ternq/quant/twn.hpp"

// io: model and tokenizer files (POSIX mmap; JSON through nlohmann/json)
#include "ternq/io/float_matrix.hpp"
#include "ternq/io/hf_llama.hpp"
#include "ternq/io/llama2c_checkpoint.hpp"
#include "ternq/io/llama2c_model.hpp"
#include "ternq/io/llama2c_tokenizer.hpp"
#include "ternq/io/mapped_file.hpp"
#include "ternq/io/safetensors_dtype.hpp"
#include "ternq/io/safetensors_reader.hpp"
#include "ternq/io/safetensors_shards.hpp"
#include "ternq/io/safetensors_writer.hpp"
// pack: ternary block formats (standard library only, plus the symmetric optimum for the opt-in re-fit)
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
#include "ternq/pack/reference.hpp"
#include "ternq/pack/refit.hpp"
#include "ternq/pack/to_float.hpp"
#include "ternq/pack/tq1_0.hpp"
#include "ternq/pack/tq2_0.hpp"
#include "ternq/pack/unpack.hpp"

// io: GGUF (standard library only)
#include "ternq/io/gguf_llama.hpp"
#include "ternq/io/gguf_reader.hpp"
#include "ternq/io/gguf_types.hpp"
#include "ternq/io/gguf_writer.hpp"
