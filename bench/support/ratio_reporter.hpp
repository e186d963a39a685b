// SPDX-License-Identifier: MIT
// Benchmark reporting as ratios against a baseline measured in the same run, a shape flag, and the run itself.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

namespace ternq::bench {

/// One figure of merit: `time(baseline) / time(subject)` per iteration (a
/// throughput ratio when both process the same bytes), or its inverse.
struct ratio_spec {
  std::string label;        ///< what the ratio means, printed as is
  std::string subject;      ///< benchmark name
  std::string baseline;     ///< benchmark name measured in the same run
  bool time_ratio = false;  ///< true: print time(subject) / time(baseline) instead
  double goal = 0.0;        ///< the target, printed beside the ratio (0: none)
};

/// Console output as usual, then a table of the requested ratios.
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  explicit ratio_reporter(std::vector<ratio_spec> specs) : specs_(std::move(specs)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (run.error_occurred || run.iterations <= 0) continue;
      // Real time per iteration; with --benchmark_repetitions the mean
      // aggregate replaces the single runs.
      const bool single = run.run_type == Run::RT_Iteration;
      const bool mean = run.run_type == Run::RT_Aggregate && run.aggregate_name == "mean";
      if (!single && !mean) continue;
      const std::string name = run.run_name.str();
      if (single && have_mean_.count(name) != 0) continue;
      if (mean) have_mean_.insert(name);
      // per iteration, in the benchmark's time unit (nanoseconds for every benchmark here)
      seconds_[name] = run.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\n%-58s %10s %10s\n", "ratio (same run, same machine)", "measured", "goal");
    for (const auto& s : specs_) {
      const auto a = seconds_.find(s.subject);
      const auto b = seconds_.find(s.baseline);
      if (a == seconds_.end() || b == seconds_.end()) continue;  // filtered out
      const double r = s.time_ratio ? a->second / b->second : b->second / a->second;
      if (s.goal > 0) {
        const bool met = s.time_ratio ? r <= s.goal : r >= s.goal;
        std::printf("%-58s %10.3f %9s%.2f %s\n", s.label.c_str(), r, s.time_ratio ? "<= " : ">= ", s.goal,
                    met ? "met" : "MISSED");
      } else {
        std::printf("%-58s %10.3f\n", s.label.c_str(), r);
      }
    }
  }

 private:
  std::vector<ratio_spec> specs_;
  std::map<std::string, double> seconds_;
  std::set<std::string> have_mean_;
};

/// A `rows x cols` shape.
struct shape {
  std::size_t rows;
  std::size_t cols;
};

/// Removes `--shape=RxC` flags (or flags of another `prefix`, such as
/// "--calib-shape=") from argv before benchmark::Initialize sees them and
/// returns the shapes given, or `fallback` when none is.
inline std::vector<shape> take_shape_flags(int& argc, char** argv, std::vector<shape> fallback,
                                           const char* prefix = "--shape=") {
  std::vector<shape> shapes;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0) {
      shape s{};
      if (std::sscanf(argv[i] + std::strlen(prefix), "%zux%zu", &s.rows, &s.cols) != 2 || s.rows == 0 || s.cols == 0) {
        std::fprintf(stderr, "bad %s (expected %sROWSxCOLS)\n", argv[i], prefix);
        std::exit(2);
      }
      shapes.push_back(s);
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return shapes.empty() ? fallback : shapes;
}

inline std::string shape_name(const shape& s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); }

/// The end of every benchmark program's `main`: lets Google Benchmark take
/// its flags, runs the registered benchmarks with the ratio table after them,
/// and returns the exit status (1 for an argument nobody recognized).
inline int run_benchmarks(int& argc, char** argv, std::vector<ratio_spec> ratios) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ratio_reporter reporter(std::move(ratios));
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace ternq::bench
