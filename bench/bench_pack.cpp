// SPDX-License-Identifier: MIT
// Pack and unpack throughput of every ternary format on one thread, against a plain copy of the same code bytes.
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <ternq/pack/pack.hpp>
#include <ternq/pack/unpack.hpp>

#include "llm_like.hpp"
#include "support/ratio_reporter.hpp"

namespace {

using ternq::ternary_matrix;
using ternq::pack::format;

/// Random codes with the format's own grid (one scale per block; one per tensor for I2_S).
ternary_matrix make_matrix(std::size_t rows, std::size_t cols, format f) {
  const bool per_tensor = ternq::pack::per_tensor_scale(f);
  ternary_matrix q(rows, cols,
                   per_tensor ? ternq::per_row : ternq::group_size_option(ternq::pack::traits_of(f).block_elements));
  ternq::testing::rng r(42);
  for (auto& c : q.codes()) c = static_cast<std::int8_t>(static_cast<int>(r.next() % 3) - 1);
  for (auto& s : q.scales()) s = per_tensor ? 0.02F : 0.01F + 0.02F * static_cast<float>(r.uniform());
  return q;
}

void set_bytes(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

/// The baseline: memcpy of the int8 codes (one byte per weight), the bytes pack reads and unpack writes.
void plain_copy(benchmark::State& state, const ternary_matrix* q) {
  std::vector<std::int8_t> out(q->codes().size());
  for (auto _ : state) {
    std::memcpy(out.data(), q->codes().data(), out.size());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, out.size());
}

/// `pack_into`: compatibility checks (codes, scales) and encoding into a preallocated buffer.
void pack(benchmark::State& state, const ternary_matrix* q, format f) {
  std::vector<std::uint8_t> out(ternq::pack::packed_size(f, q->rows(), q->cols()));
  for (auto _ : state) {
    ternq::pack::pack_into(*q, f, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, q->codes().size());
}

/// `unpack_into`: decoding codes and scales into a preallocated ternary_matrix.
void unpack(benchmark::State& state, const ternary_matrix* q, format f) {
  const std::vector<std::uint8_t> packed = ternq::pack::pack(*q, f).data;
  ternary_matrix out = ternq::pack::unpack(f, packed, q->rows(), q->cols());
  for (auto _ : state) {
    ternq::pack::unpack_into(f, packed, out);
    benchmark::DoNotOptimize(out.codes().data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, q->codes().size());
}

}  // namespace

int main(int argc, char** argv) {
  const auto shapes = ternq::bench::take_shape_flags(argc, argv, {{4096, 4096}});
  std::vector<ternary_matrix> matrices;
  matrices.reserve(shapes.size() * ternq::pack::all_formats.size());
  std::vector<ternq::bench::ratio_spec> ratios;
  for (const auto& s : shapes) {
    const std::string n = ternq::bench::shape_name(s);
    bool baseline = false;
    for (const format f : ternq::pack::all_formats) {
      if (s.cols % ternq::pack::traits_of(f).block_elements != 0) continue;
      matrices.push_back(make_matrix(s.rows, s.cols, f));
      const ternary_matrix* q = &matrices.back();
      if (!baseline) {
        benchmark::RegisterBenchmark(("plain_copy/" + n).c_str(), plain_copy, q);
        baseline = true;
      }
      const std::string name(ternq::pack::name_of(f));
      benchmark::RegisterBenchmark(("pack/" + name + "/" + n).c_str(), pack, q, f);
      benchmark::RegisterBenchmark(("unpack/" + name + "/" + n).c_str(), unpack, q, f);
      ratios.push_back({"pack " + name + " throughput / memcpy of the codes " + n, "pack/" + name + "/" + n,
                        "plain_copy/" + n, false, 0.25});
      ratios.push_back({"unpack " + name + " throughput / memcpy of the codes " + n, "unpack/" + name + "/" + n,
                        "plain_copy/" + n, false, 0.25});
    }
  }
  return ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
}
