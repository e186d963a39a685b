// SPDX-License-Identifier: MIT
// Adam with bias correction over flat parameter spans: std-only and deterministic.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "ternq/config.hpp"
#include "ternq/core/error.hpp"
#include "ternq/core/host_device_math.hpp"
#include "ternq/core/parallel.hpp"

namespace ternq::optim {

/// Adam's hyper-parameters (Kingma and Ba, with the usual defaults).
struct adam_options {
  double lr = 1e-3;       ///< step size
  double beta1 = 0.9;     ///< decay of the first-moment estimate, in [0, 1)
  double beta2 = 0.999;   ///< decay of the second-moment estimate, in [0, 1)
  double epsilon = 1e-8;  ///< added to sqrt(v_hat) in the denominator, > 0
};

/// Throws `invalid_argument` (prefixed by `context`) for hyper-parameters outside their domain.
inline void validate(const adam_options& o, std::string_view context) {
  if (!(std::isfinite(o.lr) && o.lr > 0.0))
    fail(errc::invalid_argument, context, ": lr must be finite and > 0 (got ", o.lr, ")");
  if (!(o.beta1 >= 0.0 && o.beta1 < 1.0))
    fail(errc::invalid_argument, context, ": beta1 must be in [0, 1) (got ", o.beta1, ")");
  if (!(o.beta2 >= 0.0 && o.beta2 < 1.0))
    fail(errc::invalid_argument, context, ": beta2 must be in [0, 1) (got ", o.beta2, ")");
  if (!(std::isfinite(o.epsilon) && o.epsilon > 0.0)) {
    fail(errc::invalid_argument, context, ": epsilon must be finite and > 0 (got ", o.epsilon, ")");
  }
}

/// The per-step constants of Adam's update, in the parameters' type `S`
/// (the bias corrections computed in double once per step).
template <class S>
struct adam_step_terms {
  S b1 = 0;
  S b2 = 0;
  S one_minus_b1 = 0;
  S one_minus_b2 = 0;
  S step_size = 0;    ///< lr / (1 - beta1^t)
  S inv_sqrt_c2 = 0;  ///< 1 / sqrt(1 - beta2^t)
  S eps = 0;

  adam_step_terms(const adam_options& o, std::size_t t)
      : b1(static_cast<S>(o.beta1)),
        b2(static_cast<S>(o.beta2)),
        one_minus_b1(static_cast<S>(1.0 - o.beta1)),
        one_minus_b2(static_cast<S>(1.0 - o.beta2)),
        // lr * m_hat = (lr / (1 - beta1^t)) m;  sqrt(v_hat) = sqrt(v) / sqrt(1 - beta2^t).
        step_size(static_cast<S>(o.lr / (1.0 - std::pow(o.beta1, static_cast<double>(t))))),
        inv_sqrt_c2(static_cast<S>(1.0 / std::sqrt(1.0 - std::pow(o.beta2, static_cast<double>(t))))),
        eps(static_cast<S>(o.epsilon)) {}
};

/// Adam's update of one parameter `p` with gradient `g` and moments `m`, `v`:
/// the one body of arithmetic of the CPU optimizer and the CUDA kernel.
template <class S>
TERNQ_HOST_DEVICE TERNQ_ALWAYS_INLINE void adam_update(S& p, S& m, S& v, S g, const adam_step_terms<S>& k) noexcept {
  m = k.b1 * m + k.one_minus_b1 * g;
  v = k.b2 * v + k.one_minus_b2 * g * g;
  p -= k.step_size * m / (ternq::detail::square_root(v) * k.inv_sqrt_c2 + k.eps);
}

/// Adam over a fixed number of parameters of type `S` (float or double).
///
/// Step `t` (counted from 1):
///
///     m = beta1 m + (1 - beta1) g
///     v = beta2 v + (1 - beta2) g^2
///     p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)
///
/// The moments are kept in `S`; the bias corrections are computed in double
/// once per step. Every element is updated independently, so splitting the
/// update over threads (`step(exec, ...)`) gives bit-identical results.
template <class S>
class adam {
 public:
  adam() = default;
  adam(std::size_t parameters, const adam_options& options)
      : options_(options), m_(parameters, S{0}), v_(parameters, S{0}) {
    validate(options_, "adam");
  }

  [[nodiscard]] std::size_t size() const noexcept { return m_.size(); }
  /// Steps taken so far (`t` of the last step).
  [[nodiscard]] std::size_t steps() const noexcept { return t_; }
  [[nodiscard]] const adam_options& options() const noexcept { return options_; }
  [[nodiscard]] std::span<const S> first_moment() const noexcept { return m_; }
  [[nodiscard]] std::span<const S> second_moment() const noexcept { return v_; }

  /// One step on all parameters with the gradients `grads`.
  void step(std::span<S> params, std::span<const S> grads) { step(cpu_exec{.threads = 1}, params, grads); }

  /// One step, the elementwise update split over `exec`'s threads.
  void step(const cpu_exec& exec, std::span<S> params, std::span<const S> grads) {
    if (params.size() != m_.size() || grads.size() != m_.size()) {
      fail(errc::shape_mismatch, "adam::step: ", params.size(), " parameters and ", grads.size(),
           " gradients for an optimizer of ", m_.size());
    }
    ++t_;
    const adam_step_terms<S> k(options_, t_);
    S* p = params.data();
    const S* g = grads.data();
    S* m = m_.data();
    S* v = v_.data();
    constexpr std::size_t chunk = 4096;  // fixed chunks: the same arithmetic whatever the thread count
    parallel_for((m_.size() + chunk - 1) / chunk, exec.thread_count(), [&](std::size_t c0, std::size_t c1) {
      const std::size_t end = std::min(c1 * chunk, m_.size());
      for (std::size_t j = c0 * chunk; j < end; ++j) adam_update(p[j], m[j], v[j], g[j], k);
    });
  }

  /// Forgets the moments and the step count.
  void reset() {
    std::fill(m_.begin(), m_.end(), S{0});
    std::fill(v_.begin(), v_.end(), S{0});
    t_ = 0;
  }

 private:
  adam_options options_{};
  std::vector<S> m_;
  std::vector<S> v_;
  std::size_t t_ = 0;
};

}  // namespace ternq::optim
