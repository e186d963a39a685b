// SPDX-License-Identifier: MIT
// The io layer and what it builds on (core, pack): GGUF writer and reader, safetensors, Hugging Face Llama
// directories, llama2.c checkpoints and tokenizers (POSIX mmap; JSON through nlohmann/json).
#pragma once

#include "ternq/core.hpp"
#include "ternq/pack.hpp"

#include "ternq/io/atomic_output.hpp"
#include "ternq/io/float_matrix.hpp"
#include "ternq/io/gguf_llama.hpp"
#include "ternq/io/gguf_reader.hpp"
#include "ternq/io/gguf_types.hpp"
#include "ternq/io/gguf_writer.hpp"
#include "ternq/io/hf_llama.hpp"
#include "ternq/io/llama2c_checkpoint.hpp"
#include "ternq/io/llama2c_model.hpp"
#include "ternq/io/llama2c_tokenizer.hpp"
#include "ternq/io/mapped_file.hpp"
#include "ternq/io/safetensors_dtype.hpp"
#include "ternq/io/safetensors_reader.hpp"
#include "ternq/io/safetensors_shards.hpp"
#include "ternq/io/safetensors_stream_writer.hpp"
#include "ternq/io/safetensors_writer.hpp"
