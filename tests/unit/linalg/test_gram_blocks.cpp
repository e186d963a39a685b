// SPDX-License-Identifier: MIT
// The packed diagonal Gram blocks of the CUDA itf_aga, checked on the CPU: the blocks, C 1 and 1^T C 1 against
// Eigen, and the shifted blocks' Cholesky verdicts against require_psd's on every block.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "llm_like.hpp"
#include "ternq/core/grouping.hpp"
#include "ternq/linalg/gram_blocks.hpp"
#include "ternq/linalg/gram_checks.hpp"

namespace {

using gram_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

gram_matrix llm_like_gram(std::size_t cols, std::uint64_t seed) {
  const Eigen::MatrixXd x = ternq::testing::llm_like_activations(2 * cols, cols, seed).cast<double>();
  return x.transpose() * x;
}

ternq::matrix_view<const double> view_of(const gram_matrix& c) {
  return ternq::row_major(c.data(), static_cast<std::size_t>(c.rows()), static_cast<std::size_t>(c.cols()));
}

/// Block `k` of `blocks` as an Eigen matrix.
Eigen::MatrixXd block_of(const ternq::linalg::gram_blocks& blocks, const std::vector<double>& packed,
                         const ternq::group_layout& layout, std::size_t k) {
  const auto n = static_cast<Eigen::Index>(layout.size(k));
  return Eigen::Map<const Eigen::MatrixXd>(packed.data() + blocks.offset(k), n, n);
}

}  // namespace

TEST_CASE("pack_gram_blocks: every diagonal block, C 1 and 1^T C 1, with full, short and single groups") {
  const gram_matrix c = llm_like_gram(200, 5);
  // (group size, full blocks): 200 = 3 x 64 + 8, 4 x 50, 200 x 1, one row-wide block
  for (const auto& [group, full] : {std::pair{ternq::group_size_option(64), std::size_t{3}},
                                    std::pair{ternq::group_size_option(50), std::size_t{4}},
                                    std::pair{ternq::group_size_option(1), std::size_t{200}},
                                    std::pair{ternq::group_size_option(ternq::per_row), std::size_t{1}}}) {
    const ternq::group_layout layout(200, group);
    const ternq::linalg::gram_blocks blocks = ternq::linalg::pack_gram_blocks(view_of(c), layout);
    CHECK(blocks.full == full);
    CHECK(blocks.packed.size() == (full == 3 ? 3 * 64 * 64 + 8 * 8 : full * layout.group_size() * layout.group_size()));
    for (std::size_t k = 0; k < layout.count(); ++k) {
      CAPTURE(k);
      const auto b = static_cast<Eigen::Index>(layout.begin(k));
      const auto n = static_cast<Eigen::Index>(layout.size(k));
      const Eigen::MatrixXd expected = c.block(b, b, n, n);
      CHECK(block_of(blocks, blocks.packed, layout, k) == expected);
      const Eigen::VectorXd ones = expected.rowwise().sum();
      for (Eigen::Index p = 0; p < n; ++p) {
        CHECK(std::abs(blocks.ones[static_cast<std::size_t>(b + p)] - ones(p)) <= 1e-12 * expected.cwiseAbs().sum());
      }
      CHECK(std::abs(blocks.totals[k] - ones.sum()) <= 1e-12 * expected.cwiseAbs().sum());
    }
  }
  CHECK_THROWS_AS(ternq::linalg::pack_gram_blocks(view_of(c), ternq::group_layout(100, 64)), ternq::error);
}

TEST_CASE("shift_for_psd_check: each shifted block factors exactly when require_psd accepts the block") {
  gram_matrix c = llm_like_gram(100, 9);
  c.block(32, 0, 32, 100).setZero();  // group 1 never fired: an all-zero block, which passes
  c.block(0, 32, 100, 32).setZero();
  c(70, 71) = c(71, 70) = 10.0 * std::sqrt(c(70, 70) * c(71, 71));  // group 2 indefinite
  c(97, 98) = c(98, 97) = 10.0 * std::sqrt(c(97, 97) * c(98, 98));  // the short last group (4 columns) indefinite
  const ternq::group_layout layout(100, ternq::group_size_option(32));
  const ternq::linalg::gram_blocks blocks = ternq::linalg::pack_gram_blocks(view_of(c), layout);
  const ternq::linalg::shifted_gram_blocks shifted = ternq::linalg::shift_for_psd_check(blocks, layout);
  std::vector<bool> factors(layout.count());
  for (std::size_t k = 0; k < layout.count(); ++k) {
    CAPTURE(k);
    const auto n = layout.size(k);
    const Eigen::MatrixXd h = block_of(blocks, shifted.packed, layout, k);
    factors[k] = Eigen::LLT<Eigen::MatrixXd>(h).info() == Eigen::Success;
    const Eigen::MatrixXd block = block_of(blocks, blocks.packed, layout, k);
    bool accepted = true;
    try {
      ternq::linalg::require_psd(ternq::col_major(block.data(), n, n, n), "test");
    } catch (const ternq::error&) {
      accepted = false;
    }
    CHECK(factors[k] == accepted);
    CHECK(factors[k] == (k != 2 && k != 3));
    CHECK(shifted.hollow[k] == 0);
    CHECK(shifted.traces[k] == doctest::Approx(block.trace()));
  }
  // The first refused block is named, with require_psd's message.
  const auto message = [&](const ternq::linalg::shifted_gram_blocks& sh, const ternq::group_layout& l,
                           const std::vector<bool>& f) -> std::string {
    try {
      ternq::linalg::refuse_first_non_psd_block(sh, l, "ctx", [&](std::size_t k) { return bool(f[k]); });
    } catch (const ternq::error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(message(shifted, layout, factors)
            .find("ctx: gram block C[B, B] of group 2 is not positive semi-definite: it "
                  "has an eigenvalue below") != std::string::npos);
  CHECK(message(shifted, layout, std::vector<bool>(layout.count(), true)).empty());

  // A non-zero block with a zero diagonal is hollow: refused in its turn, before any later block.
  gram_matrix hollow = gram_matrix::Zero(64, 64);
  hollow(40, 41) = hollow(41, 40) = 1.0;
  const ternq::group_layout two(64, ternq::group_size_option(32));
  const ternq::linalg::shifted_gram_blocks hs =
      ternq::linalg::shift_for_psd_check(ternq::linalg::pack_gram_blocks(view_of(hollow), two), two);
  CHECK(hs.hollow[0] == 0);
  CHECK(hs.hollow[1] == 1);
  CHECK(message(hs, two, {true, true})
            .find("ctx: gram block C[B, B] of group 1 is not positive semi-definite: its "
                  "diagonal is zero") != std::string::npos);
}
