// SPDX-License-Identifier: MIT
// Packed-matrix products (GEMV and small batches) straight from TQ2_0/Q2_0/TQ1_0/I2_S blocks, hot and cold, on 1
// and 2 threads, against a dense f32 Eigen product of the same shape and a plain read of the packed bytes.
#include <unistd.h>

#include <ternq/config.hpp>
#if TERNQ_HAS_AVX2_VARIANT
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <Eigen/Core>

#include <ternq/kernels.hpp>
#include <ternq/pack/pack.hpp>

#include "llm_like.hpp"
#include "support/ratio_reporter.hpp"

namespace {

using ternq::pack::format;
using ternq::testing::row_matrix;

/// Bytes of weight copies a cold benchmark cycles through: twice the last-level cache, between 64 and 512 MiB, so
/// that every product reads its weights from memory. `--cold_mib=N` sets it (the smoke test keeps it small).
std::size_t cold_bytes = 0;

/// The L3 cache one core sees: Linux's sysfs (glibc's sysconf reports the whole package's L3 on some AMD
/// processors and virtual machines), else sysconf, else 0.
std::size_t last_level_cache() {
  if (std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
    unsigned long long size = 0;
    char unit = 0;
    const int read = std::fscanf(f, "%llu%c", &size, &unit);
    std::fclose(f);
    if (read >= 1 && size > 0) return static_cast<std::size_t>(size) << (unit == 'K' ? 10 : unit == 'M' ? 20 : 0);
  }
  long llc = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
  llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
  return llc > 0 ? static_cast<std::size_t>(llc) : 0;
}

std::size_t default_cold_bytes() {
  return std::clamp<std::size_t>(2 * last_level_cache(), std::size_t{64} << 20, std::size_t{512} << 20);
}

/// Random codes (a third each of -1, 0, +1) with the format's grid, packed.
std::vector<std::uint8_t> make_packed(format f, const ternq::bench::shape& s) {
  const bool per_tensor = ternq::pack::per_tensor_scale(f);
  ternq::ternary_matrix q(s.rows, s.cols,
                          per_tensor ? ternq::per_row
                                     : ternq::group_size_option(ternq::pack::traits_of(f).block_elements));
  ternq::testing::rng r(42);
  for (auto& c : q.codes()) c = static_cast<std::int8_t>(static_cast<int>(r.next() % 3) - 1);
  for (auto& v : q.scales()) v = per_tensor ? 0.02F : 0.01F + 0.02F * static_cast<float>(r.uniform());
  return ternq::pack::pack(q, f).data;
}

/// One packed matrix (hot) or enough copies of it to spill the last-level cache (cold); the last set built is
/// kept for the next benchmark of the same matrix.
struct weight_set {
  format f = format::tq2_0;
  ternq::bench::shape s{};
  std::vector<std::vector<std::uint8_t>> copies;
};

const weight_set& weights(format f, const ternq::bench::shape& s, bool cold) {
  static std::map<std::tuple<format, std::size_t, std::size_t>, std::vector<std::uint8_t>> packed;
  static weight_set current;
  static bool current_cold = false;
  const auto key = std::make_tuple(f, s.rows, s.cols);
  auto it = packed.find(key);
  if (it == packed.end()) it = packed.emplace(key, make_packed(f, s)).first;
  if (current.copies.empty() || current.f != f || current.s.rows != s.rows || current.s.cols != s.cols ||
      current_cold != cold) {
    current = {f, s, {}};
    current_cold = cold;
    const std::size_t n = cold ? std::max<std::size_t>(2, (cold_bytes + it->second.size() - 1) / it->second.size()) : 1;
    for (std::size_t i = 0; i < n; ++i) current.copies.push_back(it->second);
  }
  return current;
}

void set_bytes(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

/// `Y = X W^T` from the packed blocks, int8 activations (quantized in the call, as `matvec` does).
void product(benchmark::State& state, format f, ternq::bench::shape s, std::size_t n, unsigned threads, bool cold,
             std::optional<ternq::simd_level> simd) {
  const weight_set& w = weights(f, s, cold);
  std::vector<ternq::kernels::packed_view> views;
  for (const auto& c : w.copies) views.push_back(ternq::kernels::make_packed_view(f, s.rows, s.cols, c));
  const row_matrix x = ternq::testing::llm_like_activations(n, s.cols, 7);
  row_matrix y(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(s.rows));
  const ternq::kernels::product_options options{.exec = {.threads = threads, .simd = simd}};
  const auto xv = ternq::row_major(x.data(), n, s.cols);
  const auto yv = ternq::row_major(y.data(), n, s.rows);
  std::size_t i = 0;
  for (auto _ : state) {
    ternq::kernels::matmul(views[i], xv, yv, options);
    i = i + 1 == views.size() ? 0 : i + 1;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, w.copies.front().size());
  state.SetLabel(std::string(ternq::simd_level_name(options.exec.simd_variant())) + ", " +
                 std::to_string(w.copies.size()) + (w.copies.size() == 1 ? " copy" : " copies"));
}

/// The dense f32 matrix of a shape (the last one built is kept).
const row_matrix& dense(const ternq::bench::shape& s) {
  static std::unique_ptr<row_matrix> m;
  if (!m || static_cast<std::size_t>(m->rows()) != s.rows || static_cast<std::size_t>(m->cols()) != s.cols) {
    m.reset();
    m = std::make_unique<row_matrix>(row_matrix::Random(static_cast<Eigen::Index>(s.rows),
                                                        static_cast<Eigen::Index>(s.cols)) *
                                     0.02F);
  }
  return *m;
}

/// The baseline: Eigen's f32 product of the same shape with dense float weights (4 bytes a weight, more than the
/// last-level cache at these shapes), rows split over `threads` threads as the packed product splits them.
void eigen_f32(benchmark::State& state, ternq::bench::shape s, std::size_t n, unsigned threads) {
  const row_matrix& w = dense(s);
  const row_matrix x = ternq::testing::llm_like_activations(n, s.cols, 7);
  row_matrix y(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(s.rows));
  for (auto _ : state) {
    ternq::parallel_for((s.rows + 63) / 64, threads, [&](std::size_t p0, std::size_t p1) {
      const auto r0 = static_cast<Eigen::Index>(p0 * 64);
      const auto r1 = static_cast<Eigen::Index>(std::min(s.rows, p1 * 64));
      if (n == 1) {
        y.row(0).segment(r0, r1 - r0).noalias() = (w.middleRows(r0, r1 - r0) * x.row(0).transpose()).transpose();
      } else {
        y.middleCols(r0, r1 - r0).noalias() = x * w.middleRows(r0, r1 - r0).transpose();
      }
    });
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, static_cast<std::size_t>(w.size()) * sizeof(float));
}

/// The sum of the bytes `[p, p + n)`, reading 64-bit words (baseline x86-64 vectorizes it to 16-byte loads).
std::uint64_t sum_bytes_portable(const std::uint8_t* p, std::size_t n) {
  std::uint64_t a = 0;
  for (std::size_t b = 0; b < n; ++b) a += p[b];
  return a;
}

#if TERNQ_HAS_AVX2_VARIANT
/// The same with 32-byte loads, four independent sums (`vpsadbw` adds each 8 bytes into a 64-bit lane).
TERNQ_TARGET_AVX2 std::uint64_t sum_bytes_avx2(const std::uint8_t* p, std::size_t n) {
  __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  const __m256i zero = _mm256_setzero_si256();
  std::size_t b = 0;
  for (; b + 128 <= n; b += 128) {
    for (int k = 0; k < 4; ++k) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + b + 32 * static_cast<std::size_t>(k)));
      acc[k] = _mm256_add_epi64(acc[k], _mm256_sad_epu8(v, zero));
    }
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
  alignas(32) std::uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sum_bytes_portable(p + b, n - b);
}
#endif

std::uint64_t sum_bytes(const std::uint8_t* p, std::size_t n) {
#if TERNQ_HAS_AVX2_VARIANT
  if (ternq::simd_supported(ternq::simd_level::avx2)) return sum_bytes_avx2(p, n);
#endif
  return sum_bytes_portable(p, n);
}

/// The memory floor: every packed byte read once (summed with the widest loads the machine has), the bytes split
/// over `threads` threads.
void plain_read(benchmark::State& state, format f, ternq::bench::shape s, unsigned threads, bool cold) {
  const weight_set& w = weights(f, s, cold);
  const std::size_t size = w.copies.front().size();
  std::size_t i = 0;
  for (auto _ : state) {
    const std::uint8_t* bytes = w.copies[i].data();
    i = i + 1 == w.copies.size() ? 0 : i + 1;
    std::uint64_t acc[2] = {0, 0};
    ternq::parallel_for(2, threads, [&](std::size_t p0, std::size_t p1) {
      const std::size_t b0 = size * p0 / 2 / 64 * 64;
      const std::size_t b1 = p1 == 2 ? size : size * p1 / 2 / 64 * 64;
      acc[p0] = sum_bytes(bytes + b0, b1 - b0);
    });
    benchmark::DoNotOptimize(acc);
  }
  set_bytes(state, size);
}

/// Quantizing the activations to int8 blocks, the part of a product that does not depend on the rows.
void quantize(benchmark::State& state, std::size_t cols, std::size_t n) {
  const row_matrix x = ternq::testing::llm_like_activations(n, cols, 7);
  ternq::kernels::int8_activations q;
  for (auto _ : state) {
    ternq::kernels::quantize_activations(ternq::row_major(x.data(), n, cols), 256, q);
    benchmark::DoNotOptimize(q.q.data());
  }
  set_bytes(state, n * cols * sizeof(float));
}

std::size_t take_cold_flag(int& argc, char** argv) {
  std::size_t bytes = default_cold_bytes();
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--cold_mib=", 11) == 0) {
      bytes = static_cast<std::size_t>(std::strtoull(argv[i] + 11, nullptr, 10)) << 20;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  cold_bytes = take_cold_flag(argc, argv);
  const auto shapes = ternq::bench::take_shape_flags(argc, argv, {{4096, 4096}, {11008, 4096}, {4096, 11008}});
  const std::vector<format> formats = {format::tq2_0, format::q2_0, format::tq1_0, format::i2_s};
  std::vector<ternq::bench::ratio_spec> ratios;
  bool first_shape = true;
  for (const auto& s : shapes) {
    const std::string sn = ternq::bench::shape_name(s);
    for (const std::size_t n : {std::size_t{1}, std::size_t{64}}) {
      const std::string name = "quantize_activations/" + std::to_string(s.cols) + "/n=" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), quantize, s.cols, n);
    }
    for (const std::size_t n : {std::size_t{1}, std::size_t{8}, std::size_t{64}}) {
      for (const unsigned t : {1U, 2U}) {
        const std::string suffix = "/n=" + std::to_string(n) + "/t=" + std::to_string(t);
        benchmark::RegisterBenchmark(("eigen_f32/" + sn + suffix).c_str(), eigen_f32, s, n, t);
      }
    }
    for (const format f : formats) {
      if (s.cols % ternq::pack::traits_of(f).block_elements != 0) continue;
      const std::string fn(ternq::pack::name_of(f));
      for (const bool cold : {false, true}) {
        const std::string temp = cold ? "cold" : "hot";
        if (first_shape && !cold) {
          const std::string p = "portable/" + fn + "/" + sn + "/n=1/t=1/hot";
          benchmark::RegisterBenchmark(p.c_str(), product, f, s, 1, 1U, false, ternq::simd_level::portable);
          ratios.push_back({fn + " " + sn + " n=1 t=1 hot: best variant / portable", "product/" + fn + "/" + sn +
                                "/n=1/t=1/hot", p, false, 0.0});
        }
        for (const unsigned t : {1U, 2U}) {
          const std::string read = "read/" + fn + "/" + sn + "/t=" + std::to_string(t) + "/" + temp;
          benchmark::RegisterBenchmark(read.c_str(), plain_read, f, s, t, cold);
          for (const std::size_t n : {std::size_t{1}, std::size_t{8}, std::size_t{64}}) {
            const std::string suffix = "/n=" + std::to_string(n) + "/t=" + std::to_string(t);
            const std::string p = "product/" + fn + "/" + sn + suffix + "/" + temp;
            benchmark::RegisterBenchmark(p.c_str(), product, f, s, n, t, cold, std::nullopt);
            const std::string label = fn + " " + sn + " n=" + std::to_string(n) + " t=" + std::to_string(t) + " " + temp;
            ratios.push_back({label + ": speed / Eigen f32", p, "eigen_f32/" + sn + suffix, false, 0.0});
            if (n == 1) ratios.push_back({label + ": plain read time / product time", p, read, false, 0.0});
          }
        }
      }
    }
    first_shape = false;
  }
  return ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
}
