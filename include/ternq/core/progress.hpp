// SPDX-License-Identifier: MIT
// Progress reporting and cancellation for long-running work.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string_view>

#include "ternq/core/error.hpp"

namespace ternq {

/// What a long computation reports after each unit of work.
struct progress_event {
  std::string_view stage;       ///< e.g. "gptq.block", "catq.step"
  std::size_t done = 0;         ///< units finished so far
  std::size_t total = 0;        ///< units in all
  std::optional<double> error;  ///< the method's running error figure, when it has one
};

/// Called after each unit of work; return `false` to cancel. Cancelling
/// throws `ternq::error` with id `cancelled` from the computation.
using progress_callback = std::function<bool(const progress_event&)>;

/// Invokes `callback` (if set) and throws `cancelled` when it asks to stop.
inline void report_progress(const progress_callback& callback, const progress_event& event) {
  if (callback && !callback(event)) {
    fail(errc::cancelled, event.stage, ": cancelled by the progress callback after ", event.done, " of ", event.total);
  }
}

}  // namespace ternq
