// SPDX-License-Identifier: MIT
// safetensors_shards: the safetensors files of a model directory (one file or an indexed set), tensors by name.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/core/view.hpp"
#include "ternq/io/detail/json.hpp"
#include "ternq/io/float_matrix.hpp"
#include "ternq/io/mapped_file.hpp"
#include "ternq/io/safetensors_reader.hpp"

namespace ternq::io {

/// The tensors of a Hugging Face style model directory: `model.safetensors`
/// when it exists, else the shards named by `model.safetensors.index.json`
/// (its `weight_map`, tensor name -> shard file name). Every shard is opened
/// (and so validated) once. With an index, the names it maps are the
/// model's tensors; each must be in its shard. Problems are named:
/// `[ternq.io]` for a missing file or shard, `[ternq.corrupt_file]` for a
/// bad index, a shard name that is not a plain file name, or a tensor its
/// shard does not hold.
class safetensors_shards {
 public:
  static constexpr std::string_view single_file = "model.safetensors";
  static constexpr std::string_view index_file = "model.safetensors.index.json";

  explicit safetensors_shards(const std::filesystem::path& directory)
      : directory_(directory), context_("model directory '" + directory.string() + "'") {
    std::error_code ec;
    if (std::filesystem::is_regular_file(directory / single_file, ec)) {
      shards_.emplace_back(directory / single_file);
      for (const tensor_info& t : shards_.front().tensors()) shard_of_.emplace(t.name, 0);
    } else if (std::filesystem::is_regular_file(directory / index_file, ec)) {
      open_index();
    } else {
      fail(errc::io, context_, ": neither ", single_file, " nor ", index_file, " exists");
    }
  }

  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return directory_; }
  [[nodiscard]] std::size_t shard_count() const noexcept { return shards_.size(); }
  [[nodiscard]] const safetensors_file& shard(std::size_t i) const { return shards_.at(i); }

  /// The number of tensors across all shards.
  [[nodiscard]] std::size_t tensor_count() const noexcept { return shard_of_.size(); }
  /// Every tensor name, sorted.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(shard_of_.size());
    for (const auto& [name, shard] : shard_of_) out.push_back(name);
    return out;
  }
  [[nodiscard]] const tensor_info* find(std::string_view name) const noexcept {
    const auto it = shard_of_.find(name);
    return it == shard_of_.end() ? nullptr : shards_[it->second].find(name);
  }
  [[nodiscard]] bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
  /// The tensor named `name`; `[ternq.invalid_argument]` when there is none.
  [[nodiscard]] const tensor_info& info(std::string_view name) const { return file_of(name).info(name); }
  /// The shard holding tensor `name`.
  [[nodiscard]] const safetensors_file& file_of(std::string_view name) const {
    const auto it = shard_of_.find(name);
    if (it == shard_of_.end()) fail(errc::invalid_argument, context_, ": no tensor named '", name, "'");
    return shards_[it->second];
  }
  /// As `safetensors_file::view`, `matrix`, `values` on the tensor's shard.
  [[nodiscard]] matrix_view<const float> view(std::string_view name) const { return file_of(name).view(name); }
  [[nodiscard]] float_matrix matrix(std::string_view name) const { return file_of(name).matrix(name); }
  [[nodiscard]] std::vector<float> values(std::string_view name) const { return file_of(name).values(name); }
  void read_values(std::string_view name, std::span<float> out) const { file_of(name).read_values(name, out); }
  void read_rows(std::string_view name, std::size_t first, std::span<float> out) const {
    file_of(name).read_rows(name, first, out);
  }

 private:
  void open_index() {
    const auto index_path = directory_ / index_file;
    const mapped_file map(index_path);
    const std::string where = context_ + ": " + std::string(index_file);
    const nlohmann::json index =
        detail::parse_json(std::string_view(reinterpret_cast<const char*>(map.bytes().data()), map.size()), where);
    const auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
    if (!index.is_object() || weight_map == index.end() || !weight_map->is_object()) {
      fail(errc::corrupt_file, where, " has no weight_map object");
    }
    std::map<std::string, std::size_t, std::less<>> shard_index;  // file name -> position in shards_
    for (const auto& [name, file] : weight_map->items()) {
      if (!file.is_string()) {
        fail(errc::corrupt_file, where, ": tensor '", name, "' is mapped to a JSON ", file.type_name(),
             ", not a file name");
      }
      const auto& shard = file.get_ref<const std::string&>();
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos) {
        fail(errc::corrupt_file, where, ": tensor '", name, "' is mapped to '", shard,
             "', which is not a file name in the model directory");
      }
      auto it = shard_index.find(shard);
      if (it == shard_index.end()) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(directory_ / shard, ec)) {
          fail(errc::io, context_, ": shard '", shard, "' (holding tensor '", name, "') does not exist");
        }
        shards_.emplace_back(directory_ / shard);
        it = shard_index.emplace(shard, shards_.size() - 1).first;
      }
      if (!shards_[it->second].contains(name)) {
        fail(errc::corrupt_file, where, ": tensor '", name, "' is mapped to shard '", shard,
             "', which does not hold it");
      }
      shard_of_.emplace(name, it->second);
    }
  }

  std::filesystem::path directory_;
  std::string context_;
  std::vector<safetensors_file> shards_;
  std::map<std::string, std::size_t, std::less<>> shard_of_;
};

}  // namespace ternq::io
