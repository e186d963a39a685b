// SPDX-License-Identifier: MIT
// The per-layer quantization report of ternq-quantize, as CSV and JSON.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>
#include <ternq/io/atomic_output.hpp>

#include "cli/json_text.hpp"

namespace ternq::cli {

/// One row of the report: a weight matrix and what became of it.
struct report_row {
  std::string layer;  ///< e.g. "blk.0.attn_q.weight" or a tensor name
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::string method;
  double relative_weight_error = 0.0;
  double relative_output_error = 0.0;  ///< negative when no calibration data was given
  double seconds = 0.0;
  /// The type it was stored as ("TQ2_0", "Q2_0", "F16", ...; "F32" in tensor mode); empty when no file holds it.
  std::string format;
  /// Why it is not in the chosen format: the conflict that made it fall back, or "--keep"; empty when it is.
  std::string format_reason;
  double refit_change = -1.0;  ///< --refit: the relative change of its symmetric re-fit; negative when not re-fitted
  std::string order;           ///< the driver's column order and where it went ("act-order, folded into ...")
};

/// How the table printed at the end of a run says where a row went: "Q2_0", "F16 (pack Q2_0: ...)",
/// "TQ2_0; re-fitted (relative change 0.0123)", "-" when no file holds it.
inline std::string stored_as(const report_row& r) {
  if (r.format.empty()) return "-";
  std::string out = r.format;
  if (!r.format_reason.empty()) out += " (" + r.format_reason + ")";
  if (r.refit_change >= 0) out += "; re-fitted (relative change " + std::to_string(r.refit_change) + ")";
  return out;
}

/// One row as the JSON report writes it: the storage as fields (null where they do not apply), so a reader
/// compares types and filters fallbacks without parsing prose.
inline nlohmann::json to_json(const report_row& r) {
  const auto text_or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  const auto figure_or_null = [](double x) { return x >= 0 ? nlohmann::json(x) : nlohmann::json(); };
  return {{"layer", r.layer},
          {"shape", {r.rows, r.cols}},
          {"method", r.method},
          {"rel_e_w", r.relative_weight_error},
          {"rel_e_x", figure_or_null(r.relative_output_error)},
          {"time_s", r.seconds},
          {"format", text_or_null(r.format)},
          {"format_reason", text_or_null(r.format_reason)},
          {"refit_change", figure_or_null(r.refit_change)},
          {"order", r.order}};
}

/// A row back from `to_json(row)` (a resumed run's rows come from its checkpoint).
inline report_row row_from_json(const nlohmann::json& j) {
  report_row r;
  r.layer = j.at("layer").get<std::string>();
  r.rows = j.at("shape").at(0).get<std::size_t>();
  r.cols = j.at("shape").at(1).get<std::size_t>();
  r.method = j.at("method").get<std::string>();
  r.relative_weight_error = j.at("rel_e_w").get<double>();
  r.relative_output_error = j.at("rel_e_x").is_null() ? -1.0 : j.at("rel_e_x").get<double>();
  r.seconds = j.at("time_s").get<double>();
  r.format = j.at("format").is_null() ? std::string() : j.at("format").get<std::string>();
  r.format_reason = j.at("format_reason").is_null() ? std::string() : j.at("format_reason").get<std::string>();
  r.refit_change = j.at("refit_change").is_null() ? -1.0 : j.at("refit_change").get<double>();
  r.order = j.at("order").get<std::string>();
  return r;
}

inline nlohmann::json to_json(const std::vector<report_row>& rows, const nlohmann::json& summary) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& r : rows) layers.push_back(to_json(r));
  return {{"summary", summary}, {"layers", std::move(layers)}};
}

inline std::string to_csv(const std::vector<report_row>& rows) {
  std::string out = "layer,rows,cols,method,rel_e_w,rel_e_x,time_s,format,format_reason,refit_change,order\n";
  const auto figure = [](double x) { return x >= 0 ? std::to_string(x) : std::string(); };
  for (const auto& r : rows) {
    out += r.layer + "," + std::to_string(r.rows) + "," + std::to_string(r.cols) + "," + r.method + "," +
           std::to_string(r.relative_weight_error) + "," + figure(r.relative_output_error) + "," +
           std::to_string(r.seconds) + "," + r.format + ",\"" + r.format_reason + "\"," + figure(r.refit_change) +
           ",\"" + r.order + "\"\n";
  }
  return out;
}

/// Writes `text` to `path` (through `io::atomic_output`: the previous file
/// or none until it is complete), throwing `io` naming the path on failure.
inline void write_text(const std::string& path, const std::string& text) {
  io::atomic_output f(path, "report");
  f.write(std::as_bytes(std::span(text)));
  f.commit();
}

/// Writes the JSON report to `path` and the CSV beside it (`path` with `.csv`).
inline void write_report(const std::string& json_path, const std::vector<report_row>& rows,
                         const nlohmann::json& summary) {
  write_text(json_path, json_text(to_json(rows, summary), 2) + "\n");
  std::string csv_path = json_path;
  const auto dot = csv_path.rfind('.');
  csv_path = (dot == std::string::npos ? csv_path : csv_path.substr(0, dot)) + ".csv";
  write_text(csv_path, to_csv(rows));
}

}  // namespace ternq::cli
