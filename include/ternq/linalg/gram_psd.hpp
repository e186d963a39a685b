// SPDX-License-Identifier: MIT
// The positive semi-definiteness rule for Gram matrices and its refusals, without a factorization: shared by the
// CPU check (Eigen's Cholesky, gram_checks.hpp) and the CUDA one (cuSOLVER's).
#pragma once

#include <string_view>

#include "ternq/core/error.hpp"

namespace ternq::linalg {

/// A Gram matrix `C = X X^T` is positive semi-definite; one assembled from
/// rounded sums may have eigenvalues slightly below zero. `C` passes when
/// `C + tau mean(diag C) I` has a Cholesky factorization, with
/// `tau = gram_psd_tolerance`: no eigenvalue below `-1%` of the mean
/// eigenvalue (`mean(diag C) = trace(C) / m`). It is the GPTQ driver's
/// default damping, so a Gram matrix the driver accepts at its default
/// passes here too.
inline constexpr double gram_psd_tolerance = 1e-2;

/// The refusal of a non-zero `what` whose trace is not positive.
[[noreturn]] inline void fail_zero_trace_gram(std::string_view context, std::string_view what) {
  fail(errc::invalid_argument, context, ": ", what,
       " is not positive semi-definite: its diagonal is zero but other entries are not");
}

/// The refusal of an `m x m` `what` of trace `trace` whose shifted Cholesky factorization failed.
[[noreturn]] inline void fail_not_psd_gram(std::string_view context, std::string_view what, double trace, double m) {
  fail(errc::invalid_argument, context, ": ", what, " is not positive semi-definite: it has an eigenvalue below -",
       gram_psd_tolerance, " x its mean eigenvalue ", trace / m, " (C + ", gram_psd_tolerance,
       " mean(diag C) I has no Cholesky factorization); a Gram matrix X X^T has none");
}

}  // namespace ternq::linalg
