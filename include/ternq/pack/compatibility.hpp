// SPDX-License-Identifier: MIT
// Whether a ternary_matrix can be stored in a block format as it is, and if not, the first conflict, named.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>

#include "ternq/core/error.hpp"
#include "ternq/core/ternary_matrix.hpp"
#include "ternq/pack/format.hpp"

namespace ternq::pack {

/// The first reason a matrix cannot be packed as it is.
struct conflict {
  errc code;            ///< the id `pack` throws
  std::string message;  ///< "pack <FORMAT>: <the problem>", naming row, block, scales or shape
  bool refittable;      ///< a symmetric re-fit per block (`refit_policy::symmetric_per_block`) resolves it
};

namespace detail {

inline constexpr const char* refit_hint =
    " (pack_options{.refit = refit_policy::symmetric_per_block} re-fits it, changing the weights)";

/// Index of the first code outside {-1, 0, +1}, or `codes.size()`. Scans in
/// chunks with a byte-wide maximum of `t + 1` (which compilers vectorize)
/// and searches inside the first bad chunk only.
inline std::size_t first_invalid_code(std::span<const std::int8_t> codes) noexcept {
  constexpr std::size_t chunk = 4096;
  for (std::size_t begin = 0; begin < codes.size(); begin += chunk) {
    const std::size_t end = begin + chunk < codes.size() ? begin + chunk : codes.size();
    std::uint8_t largest = 0;
    for (std::size_t k = begin; k < end; ++k) {
      const auto c = static_cast<std::uint8_t>(codes[k] + 1);
      largest = c > largest ? c : largest;
    }
    if (largest <= 2) continue;
    for (std::size_t k = begin; k < end; ++k) {
      if (static_cast<std::uint8_t>(codes[k] + 1) > 2U) return k;
    }
  }
  return codes.size();
}

/// Index of the first NaN or Inf in `v`, or `v.size()` (a branch-free scan, then a search).
inline std::size_t first_non_finite(std::span<const float> v) noexcept {
  constexpr float max = std::numeric_limits<float>::max();
  unsigned bad = 0;
  for (const float x : v) bad |= static_cast<unsigned>(!(std::fabs(x) <= max));
  if (bad == 0) return v.size();
  std::size_t k = 0;
  while (k < v.size() && std::fabs(v[k]) <= max) ++k;
  return k;
}

/// Index of the first value that rounds to an fp16 infinity (|x| >= 65520), or `v.size()`.
inline std::size_t first_beyond_fp16(std::span<const float> v) noexcept {
  constexpr float limit = 65520.0F;  // the midpoint between 65504 and 2^16 rounds (to even) to Inf
  unsigned bad = 0;
  for (const float x : v) bad |= static_cast<unsigned>(std::fabs(x) >= limit);
  if (bad == 0) return v.size();
  std::size_t k = 0;
  while (k < v.size() && std::fabs(v[k]) < limit) ++k;
  return k;
}

inline std::string context_of(format f) { return ternq::detail::concat("pack ", name_of(f)); }

}  // namespace detail

/// Finds the first conflict between `q` and format `f`, checking in this
/// order: an empty matrix; `cols` not a multiple of the block; a non-finite
/// scale or offset; a code outside {-1, 0, +1}; offsets (no ternary GGML
/// format stores one); a column permutation (the formats store original
/// column order); scales that differ inside one block (or, for I2_S,
/// anywhere in the tensor); a scale beyond the fp16 range (the block
/// formats store fp16 scales; values inside the range are rounded to fp16,
/// which is the format's precision, not a conflict).
inline std::optional<conflict> find_conflict(const ternary_matrix& q, format f) {
  const std::string ctx = detail::context_of(f);
  const ggml_type_traits& t = traits_of(f);
  const std::size_t block = t.block_elements;
  const group_layout& layout = q.layout();
  const auto make = [&](errc code, bool refittable, const auto&... parts) {
    std::string message = ternq::detail::concat(ctx, ": ", parts...);
    if (refittable) message += detail::refit_hint;
    return std::optional<conflict>(conflict{code, std::move(message), refittable});
  };

  if (q.rows() == 0 || q.cols() == 0) {
    return make(errc::empty_matrix, false, "the matrix is empty (", q.rows(), "x", q.cols(), ")");
  }
  if (q.cols() % block != 0) {
    return make(errc::shape_mismatch, false, "in_features ", q.cols(), " is not a multiple of the ", block,
                "-element block");
  }
  if (const std::size_t k = detail::first_non_finite(q.scales()); k < q.scales().size()) {
    return make(errc::non_finite, false, "the scale of row ", k / layout.count(), ", group ", k % layout.count(),
                " is not finite (", q.scales()[k], ")");
  }
  if (const std::size_t k = detail::first_non_finite(q.offsets()); k < q.offsets().size()) {
    return make(errc::non_finite, false, "the offset of row ", k / layout.count(), ", group ", k % layout.count(),
                " is not finite (", q.offsets()[k], ")");
  }
  if (const std::size_t bad = detail::first_invalid_code(q.codes()); bad < q.codes().size()) {
    return make(errc::invalid_argument, false, "code ", static_cast<int>(q.codes()[bad]), " at (", bad / q.cols(), ", ",
                bad % q.cols(), ") is not in {-1, 0, +1}");
  }
  if (q.has_offsets()) {
    return make(errc::unsupported, true,
                "the matrix is asymmetric (alpha T + mu); no ternary GGML format stores an offset");
  }
  if (q.has_permutation()) {
    return make(errc::unsupported, true,
                "the matrix has a column permutation; the format stores columns in their original order");
  }
  if (per_tensor_scale(f)) {
    const float s0 = q.scale(0, 0);
    for (std::size_t i = 0; i < q.rows(); ++i) {
      for (std::size_t k = 0; k < layout.count(); ++k) {
        if (q.scale(i, k) != s0) {
          return make(errc::unsupported, true, "the format stores one scale per tensor, but row ", i, ", group ", k,
                      " has scale ", q.scale(i, k), " and row 0, group 0 has ", s0);
        }
      }
    }
    return std::nullopt;  // an f32 scale: no range limit
  }
  if (layout.group_size() % block != 0) {
    for (std::size_t i = 0; i < q.rows(); ++i) {
      for (std::size_t b = 0; b < q.cols() / block; ++b) {
        const std::size_t k0 = layout.group_of(b * block);
        const std::size_t k1 = layout.group_of((b + 1) * block - 1);
        for (std::size_t k = k0 + 1; k <= k1; ++k) {
          if (q.scale(i, k) != q.scale(i, k0)) {
            return make(errc::unsupported, true, "row ", i, ", block ", b, " (columns ", b * block, "..",
                        (b + 1) * block - 1, ") spans groups ", k0, " and ", k, " with different scales (",
                        q.scale(i, k0), " and ", q.scale(i, k), "); a block stores one scale, so the group size ",
                        layout.group_size(), " must be a multiple of ", block,
                        " or the groups inside a block must share their scale");
          }
        }
      }
    }
  }
  if (const std::size_t k = detail::first_beyond_fp16(q.scales()); k < q.scales().size()) {
    return make(errc::unsupported, false, "the scale ", q.scales()[k], " of row ", k / layout.count(), ", group ",
                k % layout.count(), " overflows fp16 (largest finite 65504)");
  }
  return std::nullopt;
}

/// Throws the first conflict of `find_conflict` as a `ternq::error`.
inline void require_compatible(const ternary_matrix& q, format f) {
  if (auto c = find_conflict(q, f)) throw error(c->code, c->message);
}

}  // namespace ternq::pack
