// SPDX-License-Identifier: MIT
// The packed runtime (tools/llama/packed_model.hpp): a GGUF's ternary layers multiplied from their blocks give the
// logits of the dequantized model for every ternary format the writer produces and for each family; the weights are
// views into the mapped file (no dequantized copy), copies only from a streamed reader; bad tensors are refused by
// name.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <ternq/adapters/eigen.hpp>
#include <ternq/core/half.hpp>
#include <ternq/io/gguf_reader.hpp>
#include <ternq/ternq.hpp>

#include "llama/forward.hpp"
#include "llama/gguf_io.hpp"
#include "llama/packed_model.hpp"
#include "llama/source.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using kernels::activation_precision;
using pack::format;

/// Every linear layer of `m` ternarized for format `f` (groups of its block; I2_S: one scale for the whole
/// tensor), scales rounded to fp16 as a file stores them; the model's weights become the dequantized values.
std::map<std::pair<std::size_t, llama::linear>, ternary_matrix> ternarize(llama::model& m, format f) {
  std::map<std::pair<std::size_t, llama::linear>, ternary_matrix> out;
  const std::size_t block = pack::traits_of(f).block_elements;
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    for (const auto which : llama::all_linears) {
      llama::matrix& w = m.layers[l].weight(which);
      ternary_matrix q = pack::per_tensor_scale(f) ? quantize(w, absmean{.group_size = per_row})
                                                   : quantize(w, optimal_symmetric{.group_size = block});
      if (pack::per_tensor_scale(f)) {
        for (float& s : q.scales()) s = q.scales()[0];
      }
      for (float& s : q.scales()) s = fp16_bits_to_fp32(fp32_to_fp16_bits(s));
      ternq::dequantize(q, w);
      out.emplace(std::pair{l, which}, std::move(q));
    }
  }
  return out;
}

/// A model whose every width is a multiple of 256 (so that every format holds every layer), 2 layers, grouped-query
/// attention (4 heads over 2), of family `arch` (Qwen3 with heads of 128: q_dim 512 != dim 256).
llama::config wide_config(llama::family arch = llama::family::llama) {
  llama::config cfg{.arch = arch,
                    .dim = 256,
                    .hidden_dim = 512,
                    .n_layers = 2,
                    .n_heads = 4,
                    .n_kv_heads = 2,
                    .vocab_size = 64,
                    .seq_len = 64};
  cfg.rope = llama::rope_of(arch);
  if (arch == llama::family::qwen3) cfg.head_width = 128;
  return cfg;
}

/// A random model of `wide_config(arch)` whose linear layers have unit gain (weights of standard deviation
/// `1 / sqrt(in)`), as trained models roughly do, so that attention is not saturated and a small change of an input
/// gives a small change of the logits.
llama::model wide_model(std::uint64_t seed, llama::family arch = llama::family::llama) {
  llama::model m = tools_test::random_model(seed, wide_config(arch));
  for (auto& l : m.layers) {
    for (const auto which : llama::all_linears) {
      llama::matrix& w = l.weight(which);
      w *= static_cast<float>(1.0 / (0.2 * std::sqrt(static_cast<double>(w.cols()))));
    }
  }
  return m;
}

/// Writes `m`, its linear layers ternarized for `f`, as a GGUF at `path`; `m` becomes the dequantized model.
void write_ternary(llama::model& m, format f, const std::filesystem::path& path) {
  const auto ternary = ternarize(m, f);
  llama::gguf_storage storage;
  storage.format = f;
  const auto stored = llama::save_gguf(m, ternary, storage, nullptr, path, "packed-runtime test");
  for (const auto& s : stored) {
    if (s.linear) REQUIRE_MESSAGE(s.ggml == pack::ggml_type_of(f), s.name << " is " << s.type);
  }
}

/// How far logits `a` are from the reference `b`: max |a - b| against max |b|, and the relative Frobenius error.
struct difference {
  double max_abs = 0.0;
  double scale = 0.0;
  double relative = 0.0;  ///< ||a - b|| / ||b||
};
difference compare(const llama::matrix& a, const llama::matrix& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  difference d;
  d.max_abs = static_cast<double>((a - b).cwiseAbs().maxCoeff());
  d.scale = static_cast<double>(b.cwiseAbs().maxCoeff());
  d.relative = static_cast<double>((a - b).norm() / b.norm());
  return d;
}

}  // namespace

// Tolerances, relative to the largest logit: f32 activations differ from the fp32 forward pass only by the order
// of the sums (the packed products sum each block in double), so 1e-5 (measured: below 7e-7 for every format);
// int8 activations round every layer input to 8 bits per weight block, so 4e-2 (measured: 0.4% to 1.5% on these
// unit-gain models), with the relative Frobenius error of all logits below 2.5e-2 (measured: 0.5% to 1.3%).
constexpr double f32_tolerance = 1e-5;
constexpr double int8_tolerance = 4e-2;
constexpr double int8_relative = 2.5e-2;

TEST_CASE("packed runtime: the logits of every ternary format equal the dequantized model's") {
  tools_test::temp_dir dir("packed-formats");
  const llama::batch b = tools_test::random_batch(2, 12, 64, 7);
  for (const format f : pack::all_formats) {
    CAPTURE(pack::name_of(f));
    llama::model m = wide_model(11);
    const auto path = dir.path() / (std::string(pack::name_of(f)) + ".gguf");
    write_ternary(m, f, path);
    const llama::gguf_source source(path);
    const llama::matrix dense = llama::logits(llama::materialize(source), b);
    // The file's dequantized model is the in-memory one: its logits are the reference of both.
    CHECK(compare(dense, llama::logits(m, b)).max_abs == 0.0);

    const llama::packed_model exact = llama::load_packed_model(source, activation_precision::f32);
    llama::weight_tally tally;
    for (const auto& l : exact.layers) tally.add(l);
    CHECK(tally.packed_layers == 14);
    CHECK(tally.dense_layers == 0);
    CHECK(tally.layers.at(pack::ggml_type_of(f)) == 14);
    const difference d32 = compare(llama::logits(exact, b), dense);
    MESSAGE(pack::name_of(f) << ": f32 activations max |dlogit| " << d32.max_abs << " of " << d32.scale);
    CHECK(d32.max_abs <= f32_tolerance * d32.scale);

    const llama::packed_model fast = llama::load_packed_model(source, activation_precision::int8);
    const difference d8 = compare(llama::logits(fast, b), dense);
    MESSAGE(pack::name_of(f) << ": int8 activations max |dlogit| " << d8.max_abs << " of " << d8.scale
                             << ", relative error " << d8.relative);
    CHECK(d8.max_abs <= int8_tolerance * d8.scale);
    CHECK(d8.relative <= int8_relative);
    CHECK(d8.max_abs > d32.max_abs);  // the int8 path really quantized its inputs
  }
}

TEST_CASE("packed runtime: Qwen2's biases and Qwen3's q/k norms and wide heads run packed as dequantized") {
  tools_test::temp_dir dir("packed-families");
  const llama::batch b = tools_test::random_batch(1, 20, 64, 3);
  for (const auto arch : {llama::family::qwen2, llama::family::qwen3}) {
    CAPTURE(llama::gguf_architecture(arch));
    llama::model m = wide_model(5, arch);
    const auto path = dir.path() / (std::string(llama::gguf_architecture(arch)) + ".gguf");
    write_ternary(m, format::tq2_0, path);
    const llama::gguf_source source(path);
    REQUIRE(source.cfg().arch == arch);
    const llama::matrix dense = llama::logits(llama::materialize(source), b);
    const difference d32 =
        compare(llama::logits(llama::load_packed_model(source, activation_precision::f32), b), dense);
    CHECK(d32.max_abs <= f32_tolerance * d32.scale);
    const difference d8 =
        compare(llama::logits(llama::load_packed_model(source, activation_precision::int8), b), dense);
    CHECK(d8.max_abs <= int8_tolerance * d8.scale);
    CHECK(d8.relative <= int8_relative);
  }
}

TEST_CASE("packed runtime: weights are views into the mapped file, copies only from a streamed reader") {
  tools_test::temp_dir dir("packed-zero-copy");
  llama::model m = wide_model(2);
  const auto path = dir.path() / "m.gguf";
  write_ternary(m, format::tq1_0, path);
  const llama::batch b = tools_test::random_batch(1, 9, 64, 1);

  const llama::gguf_source mapped(path);
  REQUIRE(mapped.reader().mapped());
  const llama::packed_model pm = llama::load_packed_model(mapped, activation_precision::int8);
  for (std::size_t l = 0; l < pm.layers.size(); ++l) {
    for (const auto which : llama::all_linears) {
      const llama::linear_weight& w = pm.layers[l].weight(which);
      REQUIRE(w.is_packed());
      CHECK_FALSE(w.owns_bytes());
      CHECK(w.values().size() == 0);  // no dequantized copy
      // The kernels read the file's bytes where the mapping holds them.
      const auto bytes = mapped.reader().tensor_bytes(mapped.reader().tensor(llama::gguf_name(l, which)));
      CHECK(w.packed().bytes.data() == bytes.data());
      CHECK(w.packed().bytes.size() == bytes.size());
    }
  }

  // Without a mapping the bytes are read once into the weight; the products are the same bit for bit.
  const llama::gguf_source streamed(path, llama::gguf_access::streamed);
  REQUIRE_FALSE(streamed.reader().views_data());
  llama::packed_model copied = llama::load_packed_model(streamed, activation_precision::int8);
  llama::weight_tally tally;
  for (const auto& l : copied.layers) tally.add(l);
  CHECK(tally.owned_layers == 14);
  CHECK(llama::logits(copied, b) == llama::logits(pm, b));
  // A move keeps an owned buffer, and the view into it, valid.
  llama::linear_weight moved = std::move(copied.layers[0].wq);
  CHECK(moved.owns_bytes());
  CHECK(llama::apply_linear(llama::matrix::Ones(1, 256), moved) ==
        llama::apply_linear(llama::matrix::Ones(1, 256), pm.layers[0].wq));
}

TEST_CASE("packed runtime: float layers stay dense beside packed ones") {
  tools_test::temp_dir dir("packed-mixed");
  llama::model m = wide_model(4);
  auto ternary = ternarize(m, format::q2_0);
  ternary.erase({1, llama::linear::down});  // stored as floats: F16, which holds its dequantized values exactly
  llama::gguf_storage storage;
  storage.format = format::q2_0;
  storage.keep["blk.0.attn_v.weight"] = pack::ggml_type::q8_0;
  const auto path = dir.path() / "mixed.gguf";
  llama::save_gguf(m, ternary, storage, nullptr, path, "mixed");
  const llama::gguf_source source(path);
  const llama::packed_model pm = llama::load_packed_model(source, activation_precision::f32);
  llama::weight_tally tally;
  for (const auto& l : pm.layers) tally.add(l);
  CHECK(tally.packed_layers == 12);
  CHECK(tally.dense_layers == 2);
  CHECK(tally.describe() == "12 packed (Q2_0 12), 2 dense (F16 1, Q8_0 1)");
  CHECK_FALSE(pm.layers[1].w2.is_packed());
  CHECK(pm.layers[1].w2.is_half());  // F16 kept at its stored size
  CHECK_FALSE(pm.layers[0].wv.is_half());
  CHECK_FALSE(pm.layers[0].wv.is_packed());
  const llama::batch b = tools_test::random_batch(1, 10, 64, 9);
  const llama::matrix dense = llama::logits(llama::materialize(source), b);
  const difference d = compare(llama::logits(pm, b), dense);
  CHECK(d.max_abs <= f32_tolerance * d.scale);
}

TEST_CASE("packed runtime: F16 and BF16 weights stay at their stored size and give the dense product's bits") {
  tools_test::temp_dir dir("packed-half");
  llama::model m = wide_model(5);
  auto ternary = ternarize(m, format::q2_0);
  // Block 0's up projection as BF16, block 1's down projection and the output head as F16: their values rounded
  // first, so the file holds them exactly.
  ternary.erase({0, llama::linear::up});
  ternary.erase({1, llama::linear::down});
  for (float& v : m.layers[0].weight(llama::linear::up).reshaped()) v = bf16_bits_to_fp32(fp32_to_bf16_bits(v));
  for (float& v : m.layers[1].weight(llama::linear::down).reshaped()) v = fp16_bits_to_fp32(fp32_to_fp16_bits(v));
  REQUIRE(m.classifier.has_value());
  for (float& v : m.classifier->reshaped()) v = fp16_bits_to_fp32(fp32_to_fp16_bits(v));
  llama::gguf_storage storage;
  storage.format = format::q2_0;
  storage.keep["blk.0.ffn_up.weight"] = pack::ggml_type::bf16;
  storage.keep["output.weight"] = pack::ggml_type::f16;
  const auto path = dir.path() / "half.gguf";
  llama::save_gguf(m, ternary, storage, nullptr, path, "half");

  const llama::gguf_source mapped(path);
  REQUIRE(mapped.reader().mapped());
  const llama::packed_model pm = llama::load_packed_model(mapped, activation_precision::f32);
  const llama::linear_weight& up = pm.layers[0].weight(llama::linear::up);
  const llama::linear_weight& down = pm.layers[1].weight(llama::linear::down);
  REQUIRE(up.is_half());
  REQUIRE(down.is_half());
  REQUIRE(pm.output().is_half());
  CHECK(up.stored_type() == pack::ggml_type::bf16);
  CHECK(down.stored_type() == pack::ggml_type::f16);
  for (const llama::linear_weight* w : {&up, &down, &pm.output()}) {
    CHECK_FALSE(w->is_packed());
    CHECK_FALSE(w->owns_bytes());
    CHECK(w->values().size() == 0);  // no fp32 copy
    CHECK(w->data_bytes() == 2 * w->rows() * w->cols());
  }
  const auto file_bytes = [&](const std::string& name) {
    return mapped.reader().tensor_bytes(mapped.reader().tensor(name)).data();
  };
  CHECK(up.half_precision().bytes.data() == file_bytes("blk.0.ffn_up.weight"));
  CHECK(pm.output().half_precision().bytes.data() == file_bytes("output.weight"));
  llama::weight_tally tally;
  for (const auto& l : pm.layers) tally.add(l);
  CHECK(tally.describe() == "12 packed (Q2_0 12), 2 dense (F16 1, BF16 1)");

  // Each product is the dense fp32 matrix's bit for bit, for any thread count and variant (widening is exact and
  // the tiles are the dense path's), with one token and with several.
  const llama::model dense = llama::materialize(mapped);
  for (const Eigen::Index tokens : {1, 7}) {
    const llama::matrix x = llama::matrix::Random(tokens, 256);
    const llama::matrix xh = llama::matrix::Random(tokens, 512);
    for (const ternq::simd_level level : ternq::supported_simd_levels()) {
      for (const unsigned threads : {1U, 3U}) {
        const cpu_exec exec{.threads = threads, .simd = level};
        CHECK(llama::apply_linear(x, up, exec) == llama::apply_linear(x, dense.layers[0].weight(llama::linear::up)));
        CHECK(llama::apply_linear(xh, down, exec) ==
              llama::apply_linear(xh, dense.layers[1].weight(llama::linear::down)));
        CHECK(llama::apply_linear(x, pm.output(), exec) == llama::apply_linear(x, dense.output()));
      }
    }
  }
  const llama::batch b = tools_test::random_batch(1, 10, 64, 3);
  const difference d = compare(llama::logits(pm, b), llama::logits(dense, b));
  CHECK(d.max_abs <= f32_tolerance * d.scale);

  // A streamed reader copies the values once, at their stored size; the products are the same.
  const llama::gguf_source streamed(path, llama::gguf_access::streamed);
  const llama::packed_model copied = llama::load_packed_model(streamed, activation_precision::f32);
  REQUIRE(copied.output().is_half());
  CHECK(copied.output().owns_bytes());
  CHECK(copied.output().data_bytes() == pm.output().data_bytes());
  CHECK(llama::logits(copied, b) == llama::logits(pm, b));
}

TEST_CASE("packed runtime: a tensor whose shape does not fit the model, or a non-finite scale, is refused by name") {
  tools_test::temp_dir dir("packed-bad");
  {
    // blk.1.attn_k holds q_dim rows where the configuration says kv_dim.
    llama::model m = wide_model(6);
    m.layers[1].wk = m.layers[1].wq;
    const auto path = dir.path() / "shape.gguf";
    write_ternary(m, format::tq2_0, path);
    const llama::gguf_source source(path);
    const std::string expected = "[ternq.shape_mismatch] gguf '" + path.string() +
                                 "': tensor 'blk.1.attn_k.weight' (TQ2_0) has extents [256, 256]; the model's k "
                                 "layer is 128x256 (ne [256, 128])";
    CHECK_NOTHROW((void)llama::packed_block(source, 0, activation_precision::int8));
    CHECK_THROWS_WITH_AS((void)llama::packed_block(source, 1, activation_precision::int8), expected.c_str(),
                         ternq::error);
    // The dequantized path checks the same.
    CHECK_THROWS_WITH_AS((void)source.block(1), expected.c_str(), ternq::error);
  }
  {
    // An Inf scale in block 1 of row 2 of blk.0.ffn_down (256 x 512: two blocks a row).
    llama::model m = wide_model(8);
    const auto path = dir.path() / "inf.gguf";
    write_ternary(m, format::tq2_0, path);
    std::uint64_t at = 0;
    {
      const io::gguf_reader r = io::gguf_reader::open(path);
      const io::gguf_tensor_info& info = r.tensor("blk.0.ffn_down.weight");
      const std::size_t row_bytes = info.size / info.rows();
      at = r.data_offset() + info.offset + 2 * row_bytes + 1 * sizeof(pack::block_tq2_0) +
           offsetof(pack::block_tq2_0, d);
    }
    {
      std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
      f.seekp(static_cast<std::streamoff>(at));
      const unsigned char inf[2] = {0x00, 0x7C};  // fp16 +Inf, little-endian
      f.write(reinterpret_cast<const char*>(inf), 2);
    }
    const llama::gguf_source source(path);
    CHECK_THROWS_WITH_AS((void)llama::packed_block(source, 0, activation_precision::int8),
                         ("[ternq.non_finite] gguf '" + path.string() +
                          "': tensor 'blk.0.ffn_down.weight': packed TQ2_0 matrix: the scale of row 2, block 1 is not "
                          "finite (inf)")
                             .c_str(),
                         ternq::error);
    CHECK_NOTHROW((void)llama::packed_block(source, 1, activation_precision::int8));
  }
}

TEST_CASE("packed runtime: q/k/v and gate/up share one quantization of their input, with the same bits") {
  // Three weights of different formats (blocks of 64 and 256, twice 256) and a dense one, read by the same input.
  testing::rng r(3);
  const auto weight = [&](format f, std::size_t rows, activation_precision a) {
    llama::matrix w(static_cast<Eigen::Index>(rows), 256);
    for (Eigen::Index k = 0; k < w.size(); ++k) w.data()[k] = static_cast<float>(r.normal());
    const ternary_matrix q = quantize(w, optimal_symmetric{.group_size = pack::traits_of(f).block_elements});
    return llama::linear_weight::owned(f, rows, 256, pack::pack(q, f).data, a);
  };
  llama::matrix x(5, 256);
  for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = static_cast<float>(r.normal());
  const llama::linear_weight a = weight(format::q2_0, 64, activation_precision::int8);
  const llama::linear_weight b = weight(format::tq2_0, 32, activation_precision::int8);
  const llama::linear_weight c = weight(format::tq1_0, 96, activation_precision::int8);
  const llama::linear_weight d = weight(format::tq2_0, 16, activation_precision::f32);
  const llama::linear_weight e = llama::linear_weight::dense(llama::matrix::Ones(8, 256));
  const auto together = llama::apply_linears(x, cpu_exec{}, a, b, c, d, e);
  CHECK(together[0] == llama::apply_linear(x, a));
  CHECK(together[1] == llama::apply_linear(x, b));
  CHECK(together[2] == llama::apply_linear(x, c));
  CHECK(together[3] == llama::apply_linear(x, d));
  CHECK(together[4] == llama::apply_linear(x, e));
}
