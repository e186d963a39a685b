// SPDX-License-Identifier: MIT
// Seeded generators of LLM-like weight matrices and activations, shared by tests, benchmarks and examples.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <vector>

#include <Eigen/Core>

namespace ternq::testing {

/// Row-major float matrix: the natural layout of a `Linear` weight (`out x in`).
using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A small, fully specified generator (xoshiro256** seeded by splitmix64),
/// so every platform and standard library produces the same matrices
/// (`std::normal_distribution` is implementation-defined).
class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept {
    for (auto& s : state_) {
      seed += 0x9E3779B97F4A7C15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
      s = z ^ (z >> 31U);
    }
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17U;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform in (0, 1).
  double uniform() noexcept { return (static_cast<double>(next() >> 11U) + 0.5) * 0x1.0p-53; }

  /// Standard normal (Box-Muller; one value per call, no cached state).
  double normal() noexcept {
    const double u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  /// Student-t with `dof` degrees of freedom (`dof <= 0`: standard normal),
  /// scaled to unit variance when `dof > 2`.
  double student_t(int dof) noexcept {
    const double z = normal();
    if (dof <= 0) return z;
    double chi2 = 0.0;
    for (int k = 0; k < dof; ++k) {
      const double g = normal();
      chi2 += g * g;
    }
    const double t = z / std::sqrt(chi2 / dof);
    return dof > 2 ? t * std::sqrt((dof - 2.0) / dof) : t;
  }

  /// Uniform integer in [0, n).
  std::size_t below(std::size_t n) noexcept { return static_cast<std::size_t>(next() % n); }

 private:
  static std::uint64_t rotl(std::uint64_t x, unsigned k) noexcept { return (x << k) | (x >> (64U - k)); }
  std::uint64_t state_[4]{};
};

/// The input channels that carry outliers, a pure function of `(cols, fraction, seed)`:
/// weights and activations generated with the same arguments agree on them.
inline std::vector<std::size_t> outlier_channels(std::size_t cols, double fraction, std::uint64_t seed) {
  const auto count = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(cols)));
  std::vector<std::size_t> all(cols);
  for (std::size_t j = 0; j < cols; ++j) all[j] = j;
  rng r(seed ^ 0x5851F42D4C957F2DULL);
  for (std::size_t j = 0; j < std::min(count, cols); ++j) std::swap(all[j], all[j + r.below(cols - j)]);
  all.resize(std::min(count, cols));
  std::sort(all.begin(), all.end());
  return all;
}

/// Features of a weight matrix that break naive quantizers.
struct weight_spec {
  double row_mean_spread = 0.4;    ///< std of each row's mean, in units of that row's scale
  double row_scale_spread = 0.35;  ///< log-normal spread of the per-row scale
  int tail_dof = 4;                ///< Student-t degrees of freedom (heavy tails); 0: Gaussian
  double outlier_fraction = 0.01;  ///< fraction of input channels (columns) that are outliers
  double outlier_gain = 3.0;       ///< extra magnitude of the weights in outlier columns
  double base_scale = 0.02;        ///< typical weight magnitude
};

/// An `rows x cols` weight matrix with non-zero row means, heavy tails and
/// outlier input channels.
inline row_matrix llm_like_weights(std::size_t rows, std::size_t cols, std::uint64_t seed,
                                   const weight_spec& spec = {}) {
  rng r(seed);
  row_matrix w(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  std::vector<double> column_gain(cols, 1.0);
  for (std::size_t j : outlier_channels(cols, spec.outlier_fraction, seed)) column_gain[j] = spec.outlier_gain;
  for (std::size_t i = 0; i < rows; ++i) {
    const double scale = spec.base_scale * std::exp(spec.row_scale_spread * r.normal());
    const double mean = spec.row_mean_spread * scale * r.normal();
    for (std::size_t j = 0; j < cols; ++j) {
      w(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) =
          static_cast<float>(mean + scale * column_gain[j] * r.student_t(spec.tail_dof));
    }
  }
  return w;
}

/// Features of a layer's input activations.
struct activation_spec {
  std::size_t rank = 8;              ///< rank of the shared (correlated) component
  double shared_weight = 0.7;        ///< share of each channel's variance from the shared component
  double outlier_fraction = 0.01;    ///< fraction of channels with massive activations
  double outlier_gain = 25.0;        ///< their magnitude relative to ordinary channels
  double channel_mean_spread = 0.3;  ///< std of per-channel means (LLM activations are not centred)
  double dead_fraction = 0.0;        ///< fraction of channels that are always zero
};

/// `tokens x cols` activations (one row per token) with correlated channels,
/// non-zero channel means and a few massive outlier channels (the same ones
/// `llm_like_weights(.., cols, seed)` marks, for the same fraction and seed).
inline row_matrix llm_like_activations(std::size_t tokens, std::size_t cols, std::uint64_t seed,
                                       const activation_spec& spec = {}) {
  rng r(seed * 0x2545F4914F6CDD1DULL + 17);
  const std::size_t rank = std::max<std::size_t>(spec.rank, 1);
  Eigen::MatrixXd loading(static_cast<Eigen::Index>(cols), static_cast<Eigen::Index>(rank));
  std::vector<double> mean(cols), gain(cols, 1.0);
  for (std::size_t j = 0; j < cols; ++j) {
    for (std::size_t k = 0; k < rank; ++k) {
      loading(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(k)) = r.normal() / std::sqrt(double(rank));
    }
    mean[j] = spec.channel_mean_spread * r.normal();
  }
  for (std::size_t j : outlier_channels(cols, spec.outlier_fraction, seed)) gain[j] = spec.outlier_gain;
  std::vector<bool> dead(cols, false);
  for (std::size_t j = 0; j < cols; ++j) dead[j] = r.uniform() < spec.dead_fraction;

  const double shared = std::sqrt(spec.shared_weight);
  const double own = std::sqrt(1.0 - spec.shared_weight);
  row_matrix x(static_cast<Eigen::Index>(tokens), static_cast<Eigen::Index>(cols));
  Eigen::VectorXd factor(static_cast<Eigen::Index>(rank));
  for (std::size_t t = 0; t < tokens; ++t) {
    for (std::size_t k = 0; k < rank; ++k) factor(static_cast<Eigen::Index>(k)) = r.normal();
    for (std::size_t j = 0; j < cols; ++j) {
      const double common = loading.row(static_cast<Eigen::Index>(j)).dot(factor);
      const double value = gain[j] * (mean[j] + shared * common + own * r.normal());
      x(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(j)) = dead[j] ? 0.0F : static_cast<float>(value);
    }
  }
  return x;
}

/// A Gram matrix in double, row-major (as the device tests and benchmarks hand it over).
using row_gram_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// `C = X^T X` of activations `x` (one row per token), in double.
inline row_gram_matrix gram_of_activations(const row_matrix& x) {
  return x.cast<double>().transpose() * x.cast<double>();
}

/// i.i.d. Gaussian `rows x cols` matrix with standard deviation `sigma`.
inline row_matrix gaussian_matrix(std::size_t rows, std::size_t cols, std::uint64_t seed, double sigma = 1.0) {
  rng r(seed);
  row_matrix m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = static_cast<float>(sigma * r.normal());
  }
  return m;
}

}  // namespace ternq::testing
