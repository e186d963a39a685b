// SPDX-License-Identifier: MIT
// The packed runtime: a GGUF's ternary linear layers multiplied straight from their blocks by the packed-matrix
// kernels (ternq/kernels.hpp), viewed in the memory-mapped file, never widened to fp32. Layers the file stores as
// F16/BF16 (an output head, a layer no ternary block holds) stay at their stored size too: each product widens one
// tile of rows at a time. F32 and Q8_0 layers are dense fp32 matrices as in the rest of the runtime. `packed_layer`
// runs through the same `block_forward` as `layer`: only `apply_linear` differs.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ternq/core/error.hpp>
#include <ternq/core/parallel.hpp>
#include <ternq/core/view.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/kernels.hpp>
#include <ternq/pack/format.hpp>

#include "llama/forward.hpp"
#include "llama/model.hpp"
#include "llama/source.hpp"

namespace ternq::llama {

/// A linear layer's weight (`out x in`) as the packed runtime holds it: the packed blocks of a ternary tensor,
/// multiplied by the kernels with activations of the weight's precision; the fp16/bf16 values of a half-precision
/// tensor, widened a tile of rows at a time by each product; or a dense fp32 matrix. Packed and half bytes are
/// borrowed (a view into a mapped GGUF, which must outlive the weight) or owned (copied from a reader that cannot
/// view its data). Move-only: a move keeps an owned buffer, and so the view into it, in place.
class linear_weight {
 public:
  linear_weight() = default;
  linear_weight(const linear_weight&) = delete;
  linear_weight& operator=(const linear_weight&) = delete;
  linear_weight(linear_weight&&) noexcept = default;
  linear_weight& operator=(linear_weight&&) noexcept = default;
  ~linear_weight() = default;

  /// A dense weight; `stored` is the type its file holds it as (for reports).
  static linear_weight dense(matrix values, pack::ggml_type stored = pack::ggml_type::f32) {
    linear_weight w;
    w.dense_ = std::move(values);
    w.stored_ = stored;
    return w;
  }
  /// Packed bytes viewed in place (`view.bytes` must outlive the weight).
  static linear_weight borrowed(kernels::packed_view view, kernels::activation_precision activations) {
    linear_weight w;
    w.view_ = view;
    w.stored_ = pack::ggml_type_of(view.format);
    w.activations_ = activations;
    return w;
  }
  /// Half-precision values (`rows x cols`, row-major, two bytes each) viewed in place (`bytes` must outlive the
  /// weight).
  static linear_weight half_borrowed(kernels::half_encoding e, std::size_t rows, std::size_t cols,
                                     std::span<const std::uint8_t> bytes) {
    if (bytes.size() != 2 * rows * cols) {
      fail(errc::shape_mismatch, "half-precision weight: ", bytes.size(), " bytes for ", rows, "x", cols, " values");
    }
    linear_weight w;
    w.half_ = half_values{e, rows, cols, bytes};
    w.stored_ = kernels::ggml_type_of(e);
    return w;
  }
  /// Half-precision values owned by the weight.
  static linear_weight half_owned(kernels::half_encoding e, std::size_t rows, std::size_t cols,
                                  std::vector<std::uint8_t> bytes) {
    linear_weight w = half_borrowed(e, rows, cols, bytes);
    w.owned_ = std::move(bytes);  // the buffer moves, so the view stays on it
    w.half_->bytes = std::span<const std::uint8_t>(w.owned_);
    return w;
  }
  /// Packed bytes owned by the weight; checked as `kernels::make_packed_view` checks them.
  static linear_weight owned(pack::format f, std::size_t rows, std::size_t cols, std::vector<std::uint8_t> bytes,
                             kernels::activation_precision activations) {
    linear_weight w;
    w.owned_ = std::move(bytes);
    w.view_ = kernels::make_packed_view(f, rows, cols, std::span<const std::uint8_t>(w.owned_));
    w.stored_ = pack::ggml_type_of(f);
    w.activations_ = activations;
    return w;
  }

  /// A half-precision tensor's values, as stored.
  struct half_values {
    kernels::half_encoding encoding = kernels::half_encoding::fp16;
    std::size_t rows = 0, cols = 0;
    std::span<const std::uint8_t> bytes;  ///< rows x cols values, little-endian
  };

  [[nodiscard]] bool is_packed() const noexcept { return view_.has_value(); }
  /// Whether the weight keeps fp16/bf16 values (`half_values()`), widened by each product.
  [[nodiscard]] bool is_half() const noexcept { return half_.has_value(); }
  /// The half-precision values; requires `is_half()`.
  [[nodiscard]] const half_values& half_precision() const { return half_.value(); }
  /// The packed tensor; requires `is_packed()`.
  [[nodiscard]] const kernels::packed_view& packed() const { return view_.value(); }
  /// The dense matrix; empty for a packed or half-precision weight.
  [[nodiscard]] const matrix& values() const noexcept { return dense_; }
  /// Whether the packed bytes belong to the weight (else they are a view into the file's mapping).
  [[nodiscard]] bool owns_bytes() const noexcept { return !owned_.empty(); }
  [[nodiscard]] pack::ggml_type stored_type() const noexcept { return stored_; }
  [[nodiscard]] kernels::activation_precision activations() const noexcept { return activations_; }
  [[nodiscard]] std::size_t rows() const noexcept {
    return view_ ? view_->rows : half_ ? half_->rows : static_cast<std::size_t>(dense_.rows());
  }
  [[nodiscard]] std::size_t cols() const noexcept {
    return view_ ? view_->cols : half_ ? half_->cols : static_cast<std::size_t>(dense_.cols());
  }
  /// Bytes of weight data the weight reads: the packed tensor's, the half-precision values', or the dense
  /// matrix's floats.
  [[nodiscard]] std::size_t data_bytes() const noexcept {
    if (view_) return view_->bytes.size();
    if (half_) return half_->bytes.size();
    return static_cast<std::size_t>(dense_.size()) * sizeof(float);
  }

 private:
  std::optional<kernels::packed_view> view_;
  std::optional<half_values> half_;
  std::vector<std::uint8_t> owned_;
  matrix dense_;
  pack::ggml_type stored_ = pack::ggml_type::f32;
  kernels::activation_precision activations_ = kernels::activation_precision::int8;
};

/// `x W^T` for half-precision values: the tiles of `linear_tile` rows that `apply_linear` of a dense matrix uses,
/// each widened to float into a per-thread tile and multiplied as there, so the result is bit for bit the dense
/// matrix's (widening is exact). The widened copy is one tile per thread, never the whole matrix.
inline matrix apply_half_linear(const matrix& x, const linear_weight::half_values& w, const cpu_exec& exec = {}) {
  const auto rows = static_cast<Eigen::Index>(w.rows), cols = static_cast<Eigen::Index>(w.cols);
  if (x.cols() != cols) {
    fail(errc::shape_mismatch, "apply_linear: input of width ", x.cols(), " for a ", w.rows, "x", w.cols, " weight");
  }
  matrix out(x.rows(), rows);
  const simd_level level = exec.simd_variant();
  const auto tiles = static_cast<std::size_t>((rows + linear_tile - 1) / linear_tile);
  parallel_for(tiles, exec.thread_count(), [&](std::size_t t0, std::size_t t1) {
    matrix tile;
    for (std::size_t t = t0; t < t1; ++t) {
      const Eigen::Index r0 = static_cast<Eigen::Index>(t) * linear_tile;
      const Eigen::Index n = std::min(linear_tile, rows - r0);
      tile.resize(n, cols);
      const auto first = static_cast<std::size_t>(r0 * cols), count = static_cast<std::size_t>(n * cols);
      kernels::widen(w.encoding, w.bytes.subspan(2 * first, 2 * count), std::span<float>(tile.data(), count), level);
      out.middleCols(r0, n).noalias() = x * tile.transpose();
    }
  });
  return out;
}

/// `x W^T` (`x` is `tokens x in`): a packed weight through `kernels::matmul` (int8 or f32 activations, as the
/// weight says), a half-precision one through `apply_half_linear`, a dense one as `apply_linear` of its matrix.
inline matrix apply_linear(const matrix& x, const linear_weight& w, const cpu_exec& exec = {}) {
  if (w.is_half()) return apply_half_linear(x, w.half_precision(), exec);
  if (!w.is_packed()) return apply_linear(x, w.values(), exec);
  matrix out(x.rows(), static_cast<Eigen::Index>(w.rows()));
  const auto n = static_cast<std::size_t>(x.rows());
  kernels::matmul(w.packed(), row_major(x.data(), n, static_cast<std::size_t>(x.cols())),
                  row_major(out.data(), n, w.rows()), kernels::product_options{w.activations(), exec});
  return out;
}

/// `x W^T` for several weights reading the same input (q, k, v; gate, up), each as `apply_linear` computes it, but
/// with `x` quantized to int8 once per block size among the packed int8 weights rather than once per weight (the
/// same codes, so the same bits).
template <class... Weights>
  requires(std::same_as<Weights, linear_weight> && ...)
std::array<matrix, sizeof...(Weights)> apply_linears(const matrix& x, const cpu_exec& exec, const Weights&... w) {
  std::vector<kernels::int8_activations> quantized;  // one per block size met
  const auto n = static_cast<std::size_t>(x.rows()), cols = static_cast<std::size_t>(x.cols());
  const auto one = [&](const linear_weight& weight) {
    if (!weight.is_packed() || weight.activations() != kernels::activation_precision::int8) {
      return apply_linear(x, weight, exec);
    }
    const std::size_t block = weight.packed().block_elements();
    auto it = std::find_if(quantized.begin(), quantized.end(), [&](const auto& q) { return q.block == block; });
    if (it == quantized.end()) {
      kernels::quantize_activations(row_major(x.data(), n, cols), block, quantized.emplace_back());
      it = quantized.end() - 1;
    }
    matrix out(x.rows(), static_cast<Eigen::Index>(weight.rows()));
    kernels::matmul(weight.packed(), *it, row_major(out.data(), n, weight.rows()), exec);
    return out;
  };
  return {one(w)...};
}

/// A block whose linear weights may stay packed.
using packed_layer = basic_layer<linear_weight>;

/// One weight of `source`'s tensor `info` (already checked to be the layer's shape): a ternary tensor packed and an
/// F16/BF16 one kept as stored (each viewed in the mapping when the reader views its data, else copied), any other
/// type dequantized to fp32. Errors name the file and the tensor.
inline linear_weight load_linear_weight(const gguf_source& source, const io::gguf_tensor_info& info,
                                        kernels::activation_precision activations) {
  const io::gguf_reader& r = source.reader();
  if (info.type == pack::ggml_type::f16 || info.type == pack::ggml_type::bf16) {
    const auto e = info.type == pack::ggml_type::f16 ? kernels::half_encoding::fp16 : kernels::half_encoding::bf16;
    if (r.views_data()) return linear_weight::half_borrowed(e, info.rows(), info.cols(), r.tensor_bytes(info));
    return linear_weight::half_owned(e, info.rows(), info.cols(), r.read_tensor_data(info));
  }
  const std::optional<pack::format> f = pack::format_of(info.type);
  if (!f) return linear_weight::dense(source.read_matrix(info), info.type);
  try {
    if (r.views_data()) {
      return linear_weight::borrowed(kernels::make_packed_view(*f, info.rows(), info.cols(), r.tensor_bytes(info)),
                                     activations);
    }
    return linear_weight::owned(*f, info.rows(), info.cols(), r.read_tensor_data(info), activations);
  } catch (const error& e) {
    fail(e.code(), "gguf '", source.files().front().string(), "': tensor '", info.name, "': ", e.detail());
  }
}

/// Block `index` of `source` for the packed runtime: ternary linear layers packed (zero-copy from the mapped
/// file), the others and the vectors fp32. Shapes are checked against the configuration.
inline packed_layer packed_block(const gguf_source& source, std::size_t index,
                                 kernels::activation_precision activations) {
  packed_layer w;
  for (const block_vector v : all_block_vectors) {
    if (has_vector(source.cfg().arch, v)) w.values(v) = source.block_vector_values(index, v);
  }
  for (const linear which : all_linears) {
    w.weight(which) = load_linear_weight(source, source.linear_tensor(index, which), activations);
  }
  return w;
}

/// The output matrix (`vocab x dim`, the embedding's when tied) for the packed runtime: packed when the file
/// stores it ternary, fp16/bf16 as stored, else fp32.
inline linear_weight packed_output(const gguf_source& source, kernels::activation_precision activations) {
  const io::gguf_tensor_info& info =
      source.reader().tensor(source.has_classifier() ? "output.weight" : "token_embd.weight");
  const config& cfg = source.cfg();
  if (info.ne.size() != 2 || info.rows() != cfg.vocab_size || info.cols() != cfg.dim) {
    fail(errc::shape_mismatch, "gguf '", source.files().front().string(), "': tensor '", info.name, "' is ",
         info.rows(), "x", info.cols(), ", expected ", cfg.vocab_size, "x", cfg.dim);
  }
  return load_linear_weight(source, info, activations);
}

/// What a packed runtime holds: linear layers by stored type, and their bytes (packed views; dense: fp16/bf16 values
/// as stored, other types as fp32).
struct weight_tally {
  std::map<pack::ggml_type, std::size_t> layers;  ///< linear layers per stored type
  std::size_t packed_layers = 0;
  std::size_t dense_layers = 0;
  std::size_t owned_layers = 0;  ///< packed or half layers whose bytes were copied (the reader did not map the file)
  std::size_t packed_bytes = 0;
  std::size_t dense_bytes = 0;

  void add(const linear_weight& w) {
    ++layers[w.stored_type()];
    (w.is_packed() ? packed_layers : dense_layers) += 1;
    owned_layers += w.owns_bytes() ? 1 : 0;
    (w.is_packed() ? packed_bytes : dense_bytes) += w.data_bytes();
  }
  void add(const packed_layer& l) {
    for (const linear which : all_linears) add(l.weight(which));
  }
  /// "30 packed (Q2_0 25, TQ2_0 5), 5 dense (F16 5)".
  [[nodiscard]] std::string describe() const {
    std::string packed, dense;
    for (const auto& [type, n] : layers) {
      std::string& into = pack::format_of(type).has_value() ? packed : dense;
      if (!into.empty()) into += ", ";
      into += pack::ggml_type_name(type);
      into += ' ';
      into += std::to_string(n);
    }
    std::string out = std::to_string(packed_layers);
    const auto list = [&](const std::string& types) {
      if (types.empty()) return;
      out += " (";
      out += types;
      out += ')';
    };
    out += " packed";
    list(packed);
    out += ", ";
    out += std::to_string(dense_layers);
    out += " dense";
    list(dense);
    return out;
  }
};

/// A whole model for the packed runtime (generation): every block's weights packed in place or dense, the
/// embedding read a row at a time from the source (which must outlive the model), the output matrix.
struct packed_model {
  config cfg;
  const model_source* source = nullptr;
  vector final_norm;
  linear_weight classifier;  ///< the output matrix (the embedding's values when tied)
  std::vector<packed_layer> layers;

  [[nodiscard]] const linear_weight& output() const noexcept { return classifier; }
};

/// Token embeddings of `b`, read row by row from the model's source.
inline matrix embed(const packed_model& m, const batch& b) {
  matrix h(static_cast<Eigen::Index>(b.size()), static_cast<Eigen::Index>(m.cfg.dim));
  for (std::size_t i = 0; i < b.size(); ++i) {
    m.source->embedding_rows(static_cast<std::size_t>(token_row(b.tokens[i], m.cfg.vocab_size)),
                             std::span<float>(h.row(static_cast<Eigen::Index>(i)).data(), m.cfg.dim));
  }
  return h;
}

/// `source`'s model for the packed runtime.
inline packed_model load_packed_model(const gguf_source& source, kernels::activation_precision activations) {
  packed_model m;
  m.cfg = source.cfg();
  m.source = &source;
  m.final_norm = source.final_norm();
  m.classifier = packed_output(source, activations);
  m.layers.reserve(m.cfg.n_layers);
  for (std::size_t l = 0; l < m.cfg.n_layers; ++l) m.layers.push_back(packed_block(source, l, activations));
  return m;
}

/// Logits of `b`, `tokens x vocab`, through the packed runtime.
inline matrix logits(const packed_model& m, const batch& b, const cpu_exec& exec = {}) {
  return apply_linear(final_hidden(m, b, no_observer{}, exec), m.output(), exec);
}

}  // namespace ternq::llama
