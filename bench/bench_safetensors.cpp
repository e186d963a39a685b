// SPDX-License-Identifier: MIT
// safetensors reading: open, validate and convert a tensor to float, against a plain read() of the same file.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <ternq/ternq.hpp>

#include "llm_like.hpp"
#include "support/ratio_reporter.hpp"

namespace {

using ternq::io::dtype;

/// The baseline: the whole file read with read(2) into a buffer allocated once (page cache warm).
void plain_read(benchmark::State& state, std::filesystem::path path) {
  const auto size = static_cast<std::size_t>(std::filesystem::file_size(path));
  std::vector<char> buffer(size);
  for (auto _ : state) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    std::size_t done = 0;
    while (done < size) {
      const ::ssize_t n = ::read(fd, buffer.data() + done, size - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(size));
}

/// Open (map, parse and validate the header), then copy/convert the tensor into a float buffer allocated once.
void read_into(benchmark::State& state, std::filesystem::path path) {
  const auto size = static_cast<std::size_t>(std::filesystem::file_size(path));
  std::vector<float> out(ternq::io::safetensors_file(path).info("w").element_count());
  for (auto _ : state) {
    const ternq::io::safetensors_file f(path);
    f.read_values("w", out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(size));
}

/// The same into a fresh `float_matrix` each time: adds the cost of new memory (page faults), which
/// dominates on some virtualized machines.
void read_matrix(benchmark::State& state, std::filesystem::path path) {
  const auto size = static_cast<std::size_t>(std::filesystem::file_size(path));
  for (auto _ : state) {
    const ternq::io::safetensors_file f(path);
    auto m = f.matrix("w");
    benchmark::DoNotOptimize(m.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(size));
}

}  // namespace

int main(int argc, char** argv) {
  const auto shapes = ternq::bench::take_shape_flags(argc, argv, {{4096, 4096}});
  const auto dir = std::filesystem::temp_directory_path() / ("ternq-bench-safetensors-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::vector<ternq::bench::ratio_spec> ratios;
  std::vector<ternq::testing::row_matrix> matrices;
  matrices.reserve(shapes.size());
  for (const auto& s : shapes) {
    matrices.push_back(ternq::testing::llm_like_weights(s.rows, s.cols, 42));
    const auto& w = matrices.back();
    const std::string n = ternq::bench::shape_name(s);
    for (const dtype t : {dtype::f32, dtype::bf16, dtype::f16}) {
      const std::string tn(ternq::io::dtype_name(t));
      const auto path = dir / (n + "-" + tn + ".safetensors");
      ternq::io::safetensors_writer out;
      out.add("w", t, ternq::row_major(w.data(), s.rows, s.cols));
      out.write(path);
      benchmark::RegisterBenchmark(("plain_read/" + tn + "/" + n).c_str(), plain_read, path);
      benchmark::RegisterBenchmark(("safetensors_read_values/" + tn + "/" + n).c_str(), read_into, path);
      benchmark::RegisterBenchmark(("safetensors_matrix/" + tn + "/" + n).c_str(), read_matrix, path);
      ratios.push_back({"safetensors " + tn + " -> float buffer / plain read " + n,
                        "safetensors_read_values/" + tn + "/" + n, "plain_read/" + tn + "/" + n, false,
                        t == dtype::f32 ? 0.5 : (t == dtype::bf16 ? 0.25 : 0.125)});
      ratios.push_back({"safetensors " + tn + " -> new float_matrix / plain read " + n,
                        "safetensors_matrix/" + tn + "/" + n, "plain_read/" + tn + "/" + n, false, 0.0});
    }
  }
  const int status = ternq::bench::run_benchmarks(argc, argv, std::move(ratios));
  std::filesystem::remove_all(dir);
  return status;
}
