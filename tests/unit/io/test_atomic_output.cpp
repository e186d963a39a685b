// SPDX-License-Identifier: MIT
// Outputs that never lie: a writer killed mid-file leaves the previous file (or none), never a truncated one.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "ternq/io/atomic_output.hpp"
#include "ternq/io/gguf_reader.hpp"
#include "ternq/io/gguf_writer.hpp"
#include "ternq/io/llama2c_model.hpp"
#include "ternq/io/safetensors_reader.hpp"
#include "ternq/io/safetensors_stream_writer.hpp"
#include "ternq/io/safetensors_writer.hpp"

using ternq::testing::read_file;
using ternq::testing::temp_dir;
using ternq::testing::write_file;

namespace {

/// Runs `write` in a child process whose files may not grow beyond
/// `limit` bytes: the kernel kills it with SIGXFSZ at the first write past
/// the limit, in the middle of the file, with no destructor or handler run.
/// Returns the signal that ended the child (0 if it exited).
int kill_mid_file(std::uint64_t limit, const std::function<void()>& write) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const ::rlimit r{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    if (::setrlimit(RLIMIT_FSIZE, &r) != 0) ::_exit(2);
    try {
      write();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/// Files in `dir` other than `keep`, by name.
std::vector<std::string> others(const temp_dir& dir, const std::string& keep) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().filename() != keep) out.push_back(e.path().filename().string());
  }
  return out;
}

std::vector<float> ramp(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 1000) * 0.25F;
  return v;
}

}  // namespace

TEST_CASE("atomic_output: the target appears only on commit, complete; an abandoned file leaves nothing") {
  const temp_dir dir("atomic");
  const auto target = dir / "out.bin";
  {
    ternq::io::atomic_output out(target, "test");
    const std::string a = "hello";
    out.write(std::as_bytes(std::span(a)));
    out.stream() << " world";
    CHECK_FALSE(std::filesystem::exists(target));
    CHECK(std::filesystem::exists(out.temporary_path()));
    CHECK(out.temporary_path().parent_path() == dir.path());
    out.commit();
    CHECK_THROWS_WITH_AS(out.commit(), doctest::Contains("commit() on"), ternq::error);
  }
  CHECK(read_file(target) == "hello world");
  CHECK(others(dir, "out.bin").empty());
  {
    ternq::io::atomic_output out(target, "test");
    const std::string partial = "partial";
    out.write(std::as_bytes(std::span(partial)));
  }  // destroyed without commit
  CHECK(read_file(target) == "hello world");
  CHECK(others(dir, "out.bin").empty());
  CHECK_THROWS_WITH_AS(ternq::io::atomic_output(dir / "no-such-dir" / "x", "test"),
                       doctest::Contains("[ternq.io] test: cannot create a temporary file for"), ternq::error);
}

TEST_CASE("a safetensors writer killed mid-file leaves the previous file, and no file where there was none") {
  const temp_dir dir("atomic-st");
  const auto target = dir / "w.safetensors";
  const std::vector<float> old_values = ramp(16);
  {
    ternq::io::safetensors_writer out;
    out.add("w", ternq::io::dtype::f32, {4, 4}, old_values);
    out.write(target);
  }
  const std::string previous = read_file(target);
  const std::vector<float> big = ramp(1 << 20);  // 4 MiB of data, killed after 64 KiB
  const auto write_big = [&](const std::filesystem::path& path) {
    return [&big, path] {
      ternq::io::safetensors_writer out;
      out.add("w", ternq::io::dtype::f32, {1024, 1024}, big);
      out.write(path);
    };
  };
  CHECK(kill_mid_file(65536, write_big(target)) == SIGXFSZ);
  CHECK(read_file(target) == previous);
  const ternq::io::safetensors_file f(target);
  CHECK(f.values("w") == old_values);
  const std::vector<std::string> left = others(dir, "w.safetensors");
  REQUIRE(left.size() == 1);  // the orphaned temporary, not the target
  CHECK(left[0].starts_with(".w.safetensors."));
  CHECK(left[0].ends_with(".part"));

  CHECK(kill_mid_file(65536, write_big(dir / "new.safetensors")) == SIGXFSZ);
  CHECK_FALSE(std::filesystem::exists(dir / "new.safetensors"));
}

TEST_CASE("a safetensors stream writer killed mid-file leaves no file") {
  const temp_dir dir("atomic-st-stream");
  const std::vector<float> piece = ramp(4096);
  CHECK(kill_mid_file(65536, [&] {
          ternq::io::safetensors_stream_writer out;
          out.add_tensor("w", ternq::io::dtype::bf16, {1024, 1024});
          out.open(dir / "new.safetensors");
          for (std::size_t k = 0; k < 256; ++k) out.write(piece);  // 2 MiB, killed after 64 KiB
          out.close();
        }) == SIGXFSZ);
  CHECK_FALSE(std::filesystem::exists(dir / "new.safetensors"));
  const std::vector<std::string> left = others(dir, "new.safetensors");
  REQUIRE(left.size() == 1);  // only the orphaned temporary
  CHECK(left[0].ends_with(".part"));
}

TEST_CASE("a GGUF writer killed mid-file leaves the previous file, which still parses") {
  const temp_dir dir("atomic-gguf");
  const auto target = dir / "m.gguf";
  const auto write_gguf = [&](std::size_t n) {
    return [n, target] {
      const std::vector<float> v = ramp(n);
      ternq::io::gguf_writer w;
      w.add("general.architecture", std::string("test"));
      w.add_tensor("t", ternq::pack::ggml_type::f32, {static_cast<std::int64_t>(n)});
      w.open(target);
      w.write_tensor("t", std::span<const float>(v));
      w.close();
    };
  };
  write_gguf(64)();
  const std::string previous = read_file(target);
  CHECK(kill_mid_file(65536, write_gguf(1 << 20)) == SIGXFSZ);
  CHECK(read_file(target) == previous);
  const auto r = ternq::io::gguf_reader::open(target);
  CHECK(r.tensor("t").ne == std::vector<std::int64_t>{64});
}

TEST_CASE("a llama2.c checkpoint writer killed mid-file leaves the previous checkpoint") {
  const temp_dir dir("atomic-l2c");
  const auto target = dir / "model.bin";
  const ternq::io::llama2c_config small{
      .dim = 8, .hidden_dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2, .vocab_size = 10, .seq_len = 4};
  ternq::io::llama2c_model(small).write(target);
  const std::string previous = read_file(target);
  ternq::io::llama2c_config large = small;
  large.dim = 256;
  large.hidden_dim = 512;
  large.n_layers = 4;
  CHECK(kill_mid_file(65536, [&] { ternq::io::llama2c_model(large).write(target); }) == SIGXFSZ);
  CHECK(read_file(target) == previous);
  CHECK(ternq::io::llama2c_model::load(target).config() == small);
}
