// SPDX-License-Identifier: MIT
// Asymmetric ternary quantizer (ATQ) of one row-group: initialization and Iterative Ternary Fitting (ALGORITHMS.md §2).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/host_device_math.hpp"

namespace ternq {

/// An asymmetric ternary grid: the levels `mu - alpha`, `mu`, `mu + alpha`.
/// Kept in double while fitting; a `ternary_matrix` stores it in float.
struct atq_grid {
  double alpha = 0.0;  ///< scale, >= 0 after every ITF/AGA step
  double mu = 0.0;     ///< offset
};

/// What fitting one row-group did.
struct itf_group_stats {
  unsigned iterations = 0;  ///< grid solves after the initialization (the last one may follow a max_iters stop)
  bool converged = false;   ///< the codes stopped changing within `max_iters`
  bool degenerate = false;  ///< a grid solve met `den = 0` (all codes equal) and used the fallback rule
};

/// Counters over many row-groups (a whole matrix or one GPTQ block).
struct atq_stats {
  std::size_t groups = 0;              ///< row-groups fitted
  std::uint64_t iterations = 0;        ///< ITF grid solves, summed over the groups
  unsigned max_iterations = 0;         ///< the most ITF grid solves any group needed
  std::size_t unconverged_groups = 0;  ///< groups stopped by `max_iters`
  std::size_t degenerate_groups = 0;   ///< groups where a grid solve met `den = 0`
  std::size_t aga_fallbacks = 0;       ///< groups where AGA kept the ITF grid (vanishing determinant)

  void add(const itf_group_stats& s) noexcept {
    ++groups;
    iterations += s.iterations;
    max_iterations = std::max(max_iterations, s.iterations);
    unconverged_groups += s.converged ? 0 : 1;
    degenerate_groups += s.degenerate ? 1 : 0;
  }
  void merge(const atq_stats& o) noexcept {
    groups += o.groups;
    iterations += o.iterations;
    max_iterations = std::max(max_iterations, o.max_iterations);
    unconverged_groups += o.unconverged_groups;
    degenerate_groups += o.degenerate_groups;
    aga_fallbacks += o.aga_fallbacks;
  }
  /// Mean ITF grid solves per group.
  [[nodiscard]] double mean_iterations() const noexcept {
    return groups == 0 ? 0.0 : static_cast<double>(iterations) / static_cast<double>(groups);
  }
};

/// An ITF result for one row-group: the grid and how it was reached.
struct itf_group_result {
  atq_grid grid;
  itf_group_stats stats;
};

/// The sums the 2x2 grid system of ITF needs (ALGORITHMS.md §2, step 1):
/// `sum t`, `sum t^2`, `sum w`, `sum w t` over the `g'` columns of a group.
/// `sum t` and `sum t^2` are small integers, exact in double.
struct itf_sums {
  double n = 0.0;
  double t = 0.0;
  double tt = 0.0;
  double w = 0.0;
  double wt = 0.0;
};

namespace detail {

template <class T>
void check_atq_sizes(std::span<const T> w, std::size_t codes, const char* context) {
  if (codes != w.size()) fail(errc::shape_mismatch, context, ": ", codes, " codes for ", w.size(), " weights");
}

/// `a * b` rounded to double before it is used: an empty asm statement hides the product from the optimizer, which
/// then cannot contract it with a following addition into one fused multiply-add (whose single rounding would change
/// the last bits where the target has FMA and the compiler contracts, as GCC does by default).
/// Device code gets `__dmul_rn`, which nvcc never contracts either.
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE double rounded_product(double a, double b) noexcept {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  double p = a * b;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(p));
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  __asm__("" : "+w"(p));
#elif defined(__GNUC__) || defined(__clang__)
  __asm__("" : "+m"(p));
#endif
  return p;
#endif
}

/// Partial sums in lanes: lane `l` adds the terms `j = l (mod 8)` in order
/// and the lanes are combined in a fixed tree. Breaking one long chain of
/// dependent additions lets a loop run at throughput instead of latency; the
/// order is part of the definition, so every path (the step functions, the
/// fused loop, float or double input) gets the same bits.
inline constexpr std::size_t itf_lanes = 8;

/// `sum_j f(j)` for `j < n` in `itf_lanes` lanes.
template <class F>
double lane_sum(std::size_t n, F f) noexcept {
  double lane[itf_lanes] = {};
  std::size_t j = 0;
  for (; j + itf_lanes <= n; j += itf_lanes) {
    for (std::size_t l = 0; l < itf_lanes; ++l) lane[l] += f(j + l);
  }
  for (std::size_t l = 0; j < n; ++j, ++l) lane[l] += f(j);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/// `sum w` in double. Every float is exact in double and so is every partial
/// sum of a constant group, in any order (`c k` needs 24 + log2 k bits), so
/// `mean` of a constant group is that constant exactly and the group comes
/// back with E_w = 0.
template <class T>
double exact_sum(std::span<const T> w) noexcept {
  return lane_sum(w.size(), [&](std::size_t j) { return static_cast<double>(w[j]); });
}

}  // namespace detail

/// The code of the grid level nearest to `x` (ALGORITHMS.md §2, step 2,
/// "flexible rounding"): `clamp(round((x - mu) / alpha), -1, 1)` with ties
/// away from zero, computed without a division as comparisons of `x - mu`
/// against `+-alpha/2` in the arithmetic of `S`. A grid with `alpha <= 0`
/// has a single level and gives code 0.
template <class S>
TERNQ_HOST_DEVICE constexpr std::int8_t nearest_level_code(S x, S alpha, S mu) noexcept {
  if (!(alpha > S{0})) return 0;
  const S d = x - mu;
  const S half = alpha * S(0.5);
  return static_cast<std::int8_t>(static_cast<int>(d >= half) - static_cast<int>(d <= -half));
}

namespace detail {

/// One pass over a group: when `round` is set, first replaces every code
/// `in[j]` by the nearest level of `*round`, written to `out[j]` (`out` may
/// be `in`), counting the changes; then accumulates `sum t`, `sum t^2`
/// (exact, in integers) and `sum w t` (in lanes) of the codes into `s`.
/// Returns the number of changed codes.
template <class T>
std::size_t itf_pass(std::span<const T> w, const std::int8_t* in, std::int8_t* out, const atq_grid* round,
                     itf_sums& s) noexcept {
  const std::size_t n = w.size();
  std::size_t changed = 0;
  const std::int8_t* codes = in;
  if (round) {
    // nearest_level_code(x, alpha, mu) in double, in a loop the compiler can vectorize
    const double mu = round->mu;
    const double half = round->alpha > 0.0 ? round->alpha * 0.5 : 0.0;
    const bool collapsed = !(round->alpha > 0.0);
    for (std::size_t j = 0; j < n; ++j) {
      const double d = static_cast<double>(w[j]) - mu;
      const int r = collapsed ? 0 : static_cast<int>(d >= half) - static_cast<int>(d <= -half);
      changed += static_cast<std::size_t>(r != in[j]);
      out[j] = static_cast<std::int8_t>(r);
    }
    codes = out;
  }
  long long sum_t = 0;
  long long sum_tt = 0;
  for (std::size_t j = 0; j < n; ++j) {
    sum_t += codes[j];
    sum_tt += codes[j] * codes[j];
  }
  s.t = static_cast<double>(sum_t);
  s.tt = static_cast<double>(sum_tt);
  s.wt = lane_sum(n, [&](std::size_t j) { return static_cast<double>(codes[j]) * static_cast<double>(w[j]); });
  return changed;
}

}  // namespace detail

/// The sums of `itf_sums` for codes `t` of weights `w`.
template <class T>
itf_sums itf_accumulate(std::span<const T> w, std::span<const std::int8_t> t) {
  detail::check_atq_sizes(w, t.size(), "itf_accumulate");
  itf_sums s;
  s.n = static_cast<double>(w.size());
  s.w = detail::exact_sum(w);
  detail::itf_pass(w, t.data(), nullptr, nullptr, s);
  return s;
}

/// Step 1 of ITF: the grid minimizing `E_w` for fixed codes, from the 2x2
/// normal equations (ALGORITHMS.md §2)
///
///     den   = g' sum t^2 - (sum t)^2
///     alpha = (g' sum(w t) - sum t sum w) / den
///     mu    = (sum t^2 sum w - sum t sum(w t)) / den
///
/// When `den = 0` every code equals the same `c`; then any grid with
/// `alpha c + mu = mean(w)` is optimal and the rule keeps `previous.alpha`
/// and sets `mu = mean(w) - alpha c` (`mu = mean(w)` for all-zero codes, as
/// the spec says; for all +-1 codes the literal `mu = mean(w)` would raise
/// `E_w`, which ITF must never do). `*degenerate` (when given) reports it.
/// The solution may have `alpha < 0`; `itf_solve_grid` below flips it.
/// Every product is rounded on its own (`detail::rounded_product`), so the
/// grid has the same bits inlined into any instruction-set variant, with or
/// without FMA in its target.
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE atq_grid itf_grid_from_sums(const itf_sums& s, atq_grid previous,
                                                                  bool* degenerate = nullptr) {
  using detail::rounded_product;
  const double den = s.n * s.tt - s.t * s.t;  // exact: integers below 2^53
  if (degenerate) *degenerate = !(den > 0.0);
  if (!(den > 0.0)) {
    const double c = s.n > 0.0 ? s.t / s.n : 0.0;  // the common code
    const double mean = s.n > 0.0 ? s.w / s.n : 0.0;
    return {previous.alpha, mean - rounded_product(previous.alpha, c)};
  }
  return {(rounded_product(s.n, s.wt) - rounded_product(s.t, s.w)) / den,
          (rounded_product(s.tt, s.w) - rounded_product(s.t, s.wt)) / den};
}

/// Step 1 of ITF on one group, with the sign rule applied: a negative
/// `alpha` is made positive and the codes `t` are negated with it (the
/// dequantized group is unchanged). Returns the grid; `*degenerate` as above.
template <class T>
atq_grid itf_solve_grid(std::span<const T> w, std::span<std::int8_t> t, atq_grid previous, bool* degenerate = nullptr) {
  detail::check_atq_sizes(w, t.size(), "itf_solve_grid");
  atq_grid grid = itf_grid_from_sums(itf_accumulate(w, std::span<const std::int8_t>(t)), previous, degenerate);
  if (grid.alpha < 0.0) {
    grid.alpha = -grid.alpha;
    for (auto& c : t) c = static_cast<std::int8_t>(-c);
  }
  return grid;
}

/// Step 2 of ITF: writes the code of the nearest grid level of every weight
/// (in double arithmetic) and returns how many codes changed.
template <class T>
std::size_t itf_round(std::span<const T> w, atq_grid grid, std::span<std::int8_t> t) {
  detail::check_atq_sizes(w, t.size(), "itf_round");
  std::size_t changed = 0;
  for (std::size_t j = 0; j < w.size(); ++j) {
    const std::int8_t c = nearest_level_code(static_cast<double>(w[j]), grid.alpha, grid.mu);
    changed += static_cast<std::size_t>(c != t[j]);
    t[j] = c;
  }
  return changed;
}

/// One ITF step: the optimal grid for the current codes, then the optimal
/// codes for that grid. `E_w` does not increase across either half. Returns
/// the number of codes that changed (0: converged).
template <class T>
std::size_t itf_step(std::span<const T> w, std::span<std::int8_t> t, atq_grid& grid, bool* degenerate = nullptr) {
  grid = itf_solve_grid(w, t, grid, degenerate);
  return itf_round(w, grid, t);
}

/// The ATQ initialization (ALGORITHMS.md §2): `mu = mean(w)`, `wc = w - mu`,
/// `Delta = 0.75 mean|wc|`, `T = sign(wc) [|wc| > Delta]`,
/// `alpha = sum(T wc) / sum|T|`. A constant group gives codes 0, `alpha = 0`
/// and `mu` equal to the constant (exactly, see `detail::exact_sum`).
template <class T>
atq_grid atq_init_group(std::span<const T> w, std::span<std::int8_t> t) {
  detail::check_atq_sizes(w, t.size(), "atq_init_group");
  if (w.empty()) return {};
  const double n = static_cast<double>(w.size());
  const double mu = detail::exact_sum(w) / n;
  const double delta =
      0.75 * detail::lane_sum(w.size(), [&](std::size_t j) { return std::abs(static_cast<double>(w[j]) - mu); }) / n;
  std::size_t count = 0;
  for (std::size_t j = 0; j < w.size(); ++j) {
    const double wc = static_cast<double>(w[j]) - mu;
    t[j] = static_cast<std::int8_t>(static_cast<int>(wc > delta) - static_cast<int>(wc < -delta));
    count += static_cast<std::size_t>(t[j] != 0);
  }
  const double kept = detail::lane_sum(  // sum |wc| over the non-zero codes = sum T wc
      w.size(), [&](std::size_t j) { return static_cast<double>(t[j]) * (static_cast<double>(w[j]) - mu); });
  return {count > 0 ? kept / static_cast<double>(count) : 0.0, mu};
}

namespace detail {

/// Step 1 of an ITF iteration from the sums `s` of the current codes, counted in `r.stats`: the grid, with the sign
/// rule applied as `|alpha|` (the rounding that follows re-derives the codes). Every path that fits groups (the
/// portable one, the AVX-512 batches, the CUDA kernel) takes its steps through this and `itf_final_grid_solve`.
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE void itf_iteration_grid(const itf_sums& s, itf_group_result& r) {
  bool degenerate = false;
  r.grid = itf_grid_from_sums(s, r.grid, &degenerate);
  r.grid.alpha = magnitude(r.grid.alpha);
  r.stats.degenerate = r.stats.degenerate || degenerate;
  ++r.stats.iterations;
}

/// The grid solve after a last step that still changed codes: optimal for the final codes, counted in `r.stats`.
/// Returns true when the sign rule negated `alpha`: the caller then negates the codes.
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE bool itf_final_grid_solve(const itf_sums& s, itf_group_result& r) {
  bool degenerate = false;
  r.grid = itf_grid_from_sums(s, r.grid, &degenerate);
  const bool negate = r.grid.alpha < 0.0;
  if (negate) r.grid.alpha = -r.grid.alpha;
  r.stats.degenerate = r.stats.degenerate || degenerate;
  ++r.stats.iterations;
  return negate;
}

/// `itf_final_grid_solve` for the codes `t` of the group.
TERNQ_ALWAYS_INLINE void itf_final_grid(const itf_sums& s, std::span<std::int8_t> t, itf_group_result& r) {
  if (itf_final_grid_solve(s, r)) {
    for (auto& c : t) c = static_cast<std::int8_t>(-c);
  }
}

/// The iteration of ITF on one group after its initialization (grid `init`, `s` the sums of its codes): a grid
/// solve, then a pass, until a pass changes no code or `max_iters` grid solves were made; then the final grid
/// solve if the last pass changed codes. `pass(grid, s)` rounds the codes to `grid`, puts the sums of the new
/// codes into `s` and returns whether any code changed; `negate()` negates the codes. The portable fit and the
/// CUDA kernel (one group per team of threads) share it; the AVX-512 batches interleave the same steps.
TERNQ_EXEC_CHECK_DISABLE
template <class Pass, class Negate>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE itf_group_result itf_iterate(atq_grid init, itf_sums s, unsigned max_iters,
                                                                   Pass&& pass, Negate&& negate) {
  itf_group_result r;
  r.grid = init;
  bool changed_last = false;
  for (unsigned it = 0; it < max_iters; ++it) {
    itf_iteration_grid(s, r);
    changed_last = pass(r.grid, s);
    if (!changed_last) {
      r.stats.converged = true;
      return r;
    }
  }
  if (changed_last && itf_final_grid_solve(s, r)) negate();
  return r;
}

}  // namespace detail

/// ATQ with Iterative Ternary Fitting on one row-group (Algorithm 1 of the
/// paper without the AGA line): initialize, then alternate the optimal grid
/// (step 1) and the optimal codes (step 2) until the codes stop changing or
/// `max_iters` grid solves were made. If the codes still changed at the last
/// step, one more grid solve makes the grid optimal for the final codes
/// (counted in `iterations`; it can only lower `E_w`). Writes the codes to
/// `t`. Each pass over the group updates the codes and accumulates the sums
/// of the next grid solve at once.
template <class T>
TERNQ_ALWAYS_INLINE itf_group_result itf_fit_group(std::span<const T> w, std::span<std::int8_t> t,
                                                   unsigned max_iters = 10) {
  detail::check_atq_sizes(w, t.size(), "itf_fit_group");
  const atq_grid init = atq_init_group(w, t);
  if (w.empty()) {
    itf_group_result r;
    r.stats.converged = true;
    return r;
  }
  return detail::itf_iterate(
      init, itf_accumulate(w, std::span<const std::int8_t>(t)), max_iters,
      [&](const atq_grid& grid, itf_sums& s) { return detail::itf_pass(w, t.data(), t.data(), &grid, s) != 0; },
      [&] {
        for (auto& c : t) c = static_cast<std::int8_t>(-c);
      });
}

/// `E_w = ||w - (alpha t + mu)||^2` of one group in double (for tests and reports).
template <class T>
double atq_group_error(std::span<const T> w, std::span<const std::int8_t> t, atq_grid grid) {
  detail::check_atq_sizes(w, t.size(), "atq_group_error");
  double e = 0.0;
  for (std::size_t j = 0; j < w.size(); ++j) {
    const double d = static_cast<double>(w[j]) - (grid.alpha * t[j] + grid.mu);
    e += d * d;
  }
  return e;
}

}  // namespace ternq
