// SPDX-License-Identifier: MIT
// The method names of the command-line tools, parsed into ternq method structs.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <ternq/ternq.hpp>

#include "cli/device.hpp"
#include "cli/suggest.hpp"

namespace ternq::cli {

/// Every method a tool can run, as one value.
using any_method = std::variant<absmean, twn, optimal_symmetric, itf, itf_aga, optimal_aga, gptq, catq>;

/// A parsed `--method` value and what the result will look like.
struct method_choice {
  std::string name;
  any_method method;
  bool needs_gram = false;  ///< calibration statistics are required
  bool asymmetric = false;  ///< the grids have offsets (alpha T + mu)
  bool permutes = false;    ///< the columns are reordered
};

/// The names `--method` accepts: the data-free and standalone methods, CAT-Q
/// (`catq_std`: with the standard-deviation scale prior instead of §4's
/// absmean; `catq_paper`, `catq_std_paper`: with `catq::paper()`'s 1000-step
/// setup instead of the 100-step defaults), and `gptq_[act_|ssr_|random_]<grid>` for the blockwise driver with any
/// grid (`gptq_itf_aga`, `gptq_act_itf_aga`, `gptq_ssr_itf_aga`, ...).
inline std::vector<std::string> method_names() {
  std::vector<std::string> names = {"absmean", "twn", "optimal", "itf", "itf_aga", "optimal_aga", "catq",
                                    "catq_std", "catq_paper", "catq_std_paper"};
  for (const char* order : {"", "act_", "ssr_", "random_"}) {
    for (const char* grid : {"absmean", "twn", "optimal", "itf", "itf_aga", "optimal_aga"}) {
      names.push_back(std::string("gptq_") + order + grid);
    }
  }
  return names;
}

namespace detail {
inline std::optional<gptq_grid> grid_named(std::string_view name, group_size_option g) {
  if (name == "absmean") return absmean{.group_size = g};
  if (name == "twn") return twn{.group_size = g};
  if (name == "optimal") return optimal_symmetric{.group_size = g};
  if (name == "itf") return itf{.group_size = g};
  if (name == "itf_aga") return itf_aga{.group_size = g};
  if (name == "optimal_aga") return optimal_aga{.group_size = g};
  return std::nullopt;
}
}  // namespace detail

/// Parses a method name; `group_size` applies to every method, `seed` to the random block order.
inline method_choice parse_method(std::string_view name, group_size_option group_size, std::uint64_t seed) {
  method_choice c;
  c.name = std::string(name);
  if (name.starts_with("gptq_")) {
    std::string_view rest = name.substr(5);
    block_order order = sequential{};
    if (rest.starts_with("act_")) {
      order = act_order{};
      rest.remove_prefix(4);
    } else if (rest.starts_with("ssr_")) {
      order = ssr{};
      rest.remove_prefix(4);
    } else if (rest.starts_with("random_")) {
      order = random_order{.seed = seed};
      rest.remove_prefix(7);
    }
    if (const auto grid = detail::grid_named(rest, group_size)) {
      gptq g;
      g.grid = *grid;
      g.order = order;
      c.method = g;
      c.needs_gram = true;
      c.asymmetric = gptq_asymmetric(g);
      c.permutes = !std::holds_alternative<sequential>(order);
      return c;
    }
  } else if (name == "catq" || name == "catq_std" || name == "catq_paper" || name == "catq_std_paper") {
    catq m = name.ends_with("_paper") ? catq::paper() : catq{};
    m.group_size = group_size;
    if (name.starts_with("catq_std")) m.priors.scale = catq_scale_prior::standard_deviation;
    c.method = m;
    c.needs_gram = true;
    return c;
  } else if (const auto grid = detail::grid_named(name, group_size)) {
    std::visit([&](const auto& m) { c.method = m; }, *grid);
    c.asymmetric = name == "itf" || name == "itf_aga";
    c.needs_gram = name == "itf_aga" || name == "optimal_aga";
    return c;
  }
  // The nearest name first; the list spells the gptq_ family as its pattern rather than its 24 names.
  const std::string hint = did_you_mean(name, method_names());
  fail(errc::invalid_argument, "unknown method '", name, "'", hint.empty() ? "" : ": ", hint,
       " (known: absmean, twn, optimal, itf, itf_aga, optimal_aga, catq, catq_std, catq_paper, catq_std_paper, and "
       "gptq_[act_|ssr_|random_]<grid> with <grid> one of absmean, twn, optimal, itf, itf_aga, optimal_aga)");
}

/// How a report names a block order: "sequential", "act-order", "SSR", "random order", "given order".
inline std::string order_name(const block_order& order) {
  constexpr std::array<const char*, 5> names = {"sequential", "act-order", "random order", "SSR", "given order"};
  static_assert(std::variant_size_v<block_order> == names.size());
  return names[order.index()];
}

/// Quantizes `w` with a method that needs no calibration data (`choice.needs_gram` false).
template <class W>
ternary_matrix run_data_free(const cpu_exec& exec, const method_choice& choice, const W& w) {
  return std::visit(
      [&](const auto& m) -> ternary_matrix {
        using M = std::remove_cvref_t<decltype(m)>;
        if constexpr (data_free_method<M, typename decltype(as_const_view(w))::value_type>) {
          return quantize(exec, w, m);
        } else {
          fail(errc::invalid_argument, "method ", choice.name, " needs calibration statistics");
        }
      },
      choice.method);
}

/// Quantizes `w` with `choice`; `gram` is used by the methods that need it.
template <class W, class G>
ternary_matrix run_method(const cpu_exec& exec, const method_choice& choice, const W& w, const G& gram) {
  return std::visit([&](const auto& m) { return quantize(exec, w, m, gram); }, choice.method);
}

/// Where a tool runs its quantizers: the CPU's threads, or with `--device cuda[:N]` a CUDA device (every method has a
/// specialization; `require_device` checks the device before any work).
struct executor {
  cpu_exec cpu;
  device_choice device;
};

/// The method of `choice` as a data-free one with a CUDA specialization, if it is one.
inline std::optional<cuda_method> cuda_method_of(const method_choice& choice) {
  if (const auto* m = std::get_if<absmean>(&choice.method)) return *m;
  if (const auto* m = std::get_if<twn>(&choice.method)) return *m;
  if (const auto* m = std::get_if<optimal_symmetric>(&choice.method)) return *m;
  if (const auto* m = std::get_if<itf>(&choice.method)) return *m;
  return std::nullopt;
}

/// The method of `choice` as one with a CUDA specialization that needs a Gram matrix, if it is one (every method
/// is one of the two).
inline std::optional<cuda_gram_method> cuda_gram_method_of(const method_choice& choice) {
  if (const auto* m = std::get_if<itf_aga>(&choice.method)) return *m;
  if (const auto* m = std::get_if<optimal_aga>(&choice.method)) return *m;
  if (const auto* m = std::get_if<catq>(&choice.method)) return *m;
  if (const auto* m = std::get_if<gptq>(&choice.method)) return *m;
  return std::nullopt;
}

/// Refuses, before any work, a CUDA `device` that the build cannot serve or that is not there. Every method has a
/// CUDA specialization, so the method is not asked.
inline void require_device(const device_choice& device) {
  if (device.cuda) require_cuda_device(*device.cuda);
}

/// `run_data_free` on the executor's device: the CUDA specialization when one was chosen (checked by
/// `require_device`), else the CPU.
template <class W>
ternary_matrix run_data_free(const executor& ex, const method_choice& choice, const W& w) {
  if (!ex.device.cuda) return run_data_free(ex.cpu, choice, w);
  const auto method = cuda_method_of(choice);
  if (!method) {  // a Gram method without calibration data: the CPU path's refusal; nothing runs elsewhere
    fail(errc::invalid_argument, "method ", choice.name, " needs calibration statistics");
  }
  const auto view = as_const_view(w);
  static_assert(std::is_same_v<typename decltype(view)::value_type, float>, "the CUDA path takes float weights");
  return quantize_on_cuda(*ex.device.cuda, *method, view);
}

/// `run_method` on the executor's device: itf_aga, optimal_aga, catq (its scale refit included) and gptq with the
/// Gram matrix; the data-free methods with `gram` checked as the CPU path checks it, then left aside.
template <class W, class G>
ternary_matrix run_method(const executor& ex, const method_choice& choice, const W& w, const G& gram) {
  if (!ex.device.cuda) return run_method(ex.cpu, choice, w, gram);
  const auto view = as_const_view(w);
  static_assert(std::is_same_v<typename decltype(view)::value_type, float>, "the CUDA path takes float weights");
  if (const auto m = cuda_gram_method_of(choice))
    return quantize_on_cuda(*ex.device.cuda, *m, view, as_const_view(gram));
  require_gram_for(as_const_view(gram), view.cols(), "quantize");
  return run_data_free(ex, choice, w);
}

/// `refit_scales_to_output(q, w, gram, precision)` on the executor's device (the CPU's threads, or the CUDA
/// specialization when one was chosen).
template <class W, class G>
scale_refit_report refit_scales(const executor& ex, ternary_matrix& q, const W& w, const G& gram,
                                grid_precision precision) {
  if (!ex.device.cuda) return refit_scales_to_output(q, w, gram, precision, ex.cpu);
  const auto view = as_const_view(w);
  static_assert(std::is_same_v<typename decltype(view)::value_type, float>, "the CUDA path takes float weights");
  return refit_scales_on_cuda(*ex.device.cuda, q, view, as_const_view(gram), precision);
}

}  // namespace ternq::cli
