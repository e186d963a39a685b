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
  std::string format;  ///< how it was stored ("tq2_0", "f16 (fallback: ...)", "f32")
  std::string order;   ///< the driver's column order and where it went ("act-order, folded into ...")
};

/// One row as the JSON report writes it.
inline nlohmann::json to_json(const report_row& r) {
  nlohmann::json j = {{"layer", r.layer},    {"shape", {r.rows, r.cols}},
                      {"method", r.method},  {"rel_e_w", r.relative_weight_error},
                      {"time_s", r.seconds}, {"format", r.format},
                      {"order", r.order}};
  if (r.relative_output_error >= 0) {
    j["rel_e_x"] = r.relative_output_error;
  } else {
    j["rel_e_x"] = nullptr;
  }
  return j;
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
  r.format = j.at("format").get<std::string>();
  r.order = j.at("order").get<std::string>();
  return r;
}

inline nlohmann::json to_json(const std::vector<report_row>& rows, const nlohmann::json& summary) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& r : rows) layers.push_back(to_json(r));
  return {{"summary", summary}, {"layers", std::move(layers)}};
}

inline std::string to_csv(const std::vector<report_row>& rows) {
  std::string out = "layer,rows,cols,method,rel_e_w,rel_e_x,time_s,format,order\n";
  for (const auto& r : rows) {
    out += r.layer + "," + std::to_string(r.rows) + "," + std::to_string(r.cols) + "," + r.method + "," +
           std::to_string(r.relative_weight_error) + "," +
           (r.relative_output_error >= 0 ? std::to_string(r.relative_output_error) : std::string()) + "," +
           std::to_string(r.seconds) + ",\"" + r.format + "\",\"" + r.order + "\"\n";
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
  write_text(json_path, to_json(rows, summary).dump(2) + "\n");
  std::string csv_path = json_path;
  const auto dot = csv_path.rfind('.');
  csv_path = (dot == std::string::npos ? csv_path : csv_path.substr(0, dot)) + ".csv";
  write_text(csv_path, to_csv(rows));
}

}  // namespace ternq::cli
