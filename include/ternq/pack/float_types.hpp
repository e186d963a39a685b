// SPDX-License-Identifier: MIT
// The float tensor types F32, F16 and BF16: conversion of float values to and from their little-endian bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/core/error.hpp"
#include "ternq/core/half.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/ggml_types.hpp"

namespace ternq::pack {

/// True for F32, F16 and BF16.
constexpr bool is_float_type(ggml_type t) noexcept {
  return t == ggml_type::f32 || t == ggml_type::f16 || t == ggml_type::bf16;
}

/// Bytes per element of a float type.
constexpr std::size_t float_type_size(ggml_type t) noexcept { return t == ggml_type::f32 ? 4 : 2; }

/// Writes `values` as type `t` (F16/BF16: round to nearest even) into
/// `out`, which holds exactly `values.size() * float_type_size(t)` bytes.
inline void encode_floats(ggml_type t, std::span<const float> values, std::span<std::uint8_t> out) {
  if (!is_float_type(t)) fail(errc::unsupported, "encode_floats: ", ggml_type_name(t), " is not a float type");
  if (out.size() != values.size() * float_type_size(t)) {
    fail(errc::shape_mismatch, "encode_floats: ", out.size(), " bytes for ", values.size(), " ", ggml_type_name(t),
         " values");
  }
  std::uint8_t* dst = out.data();
  switch (t) {
    case ggml_type::f32:
      for (std::size_t k = 0; k < values.size(); ++k) store_le(dst + 4 * k, values[k]);
      break;
    case ggml_type::f16:
      for (std::size_t k = 0; k < values.size(); ++k) store_le(dst + 2 * k, fp32_to_fp16_bits(values[k]));
      break;
    default:
      for (std::size_t k = 0; k < values.size(); ++k) store_le(dst + 2 * k, fp32_to_bf16_bits(values[k]));
      break;
  }
}

/// Reads `out.size()` values of float type `t` from `in` (exactly `out.size() * float_type_size(t)` bytes).
inline void decode_floats(ggml_type t, std::span<const std::uint8_t> in, std::span<float> out) {
  if (!is_float_type(t)) fail(errc::unsupported, "decode_floats: ", ggml_type_name(t), " is not a float type");
  if (in.size() != out.size() * float_type_size(t)) {
    fail(errc::shape_mismatch, "decode_floats: ", in.size(), " bytes for ", out.size(), " ", ggml_type_name(t),
         " values");
  }
  const std::uint8_t* src = in.data();
  switch (t) {
    case ggml_type::f32:
      for (std::size_t k = 0; k < out.size(); ++k) out[k] = load_le<float>(src + 4 * k);
      break;
    case ggml_type::f16:
      for (std::size_t k = 0; k < out.size(); ++k) out[k] = fp16_bits_to_fp32(load_le<std::uint16_t>(src + 2 * k));
      break;
    default:
      for (std::size_t k = 0; k < out.size(); ++k) out[k] = bf16_bits_to_fp32(load_le<std::uint16_t>(src + 2 * k));
      break;
  }
}

}  // namespace ternq::pack
