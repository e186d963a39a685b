// SPDX-License-Identifier: MIT
// The checkpoint of a streaming run: per finished decoder block a file of its tensors as the output stores them,
// the hidden state entering the next block, and a manifest (what the run is, how far it got, its report rows).
// A run killed at any point resumes from the last block whose manifest entry was written, and produces the same
// bytes as a run that was never interrupted; anything that does not match the run asking to resume is refused.
//
// Files, each written through `io::atomic_output` (complete or absent) and ending in a 64-bit FNV-1a checksum of
// everything before it:
//   block-NNNNN.bin        the block's GGUF tensors (norms, q, k, v, o, norm, gate, up, down) with their types
//   activations-NNNNN.bin  the calibration hidden state entering block NNNNN (F32 or BF16)
//   manifest.json          { "format", "fingerprint", "blocks_done", "blocks": [per-block records] }
// Commit order for block k: block file, activations entering k + 1, manifest (the commit point), then the
// activations entering k are deleted. A kill between two steps leaves a state the manifest still describes.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <ternq/core/error.hpp>
#include <ternq/core/half.hpp>
#include <ternq/io/atomic_output.hpp>
#include <ternq/io/mapped_file.hpp>
#include <ternq/pack/bytes.hpp>
#include <ternq/pack/ggml_types.hpp>

#include "llama/gguf_io.hpp"
#include "llama/model.hpp"
#include "llama/source.hpp"

namespace ternq::llama {

/// A tensor as the output file stores it, bytes included.
struct stored_entry {
  stored_tensor info;
  std::vector<std::int64_t> ne;
  std::vector<std::uint8_t> data;
};

/// How the calibration hidden state is kept between blocks.
enum class activation_precision { f32, bf16 };

namespace detail {

/// Little-endian record writer that checksums what it writes.
class record_writer {
 public:
  record_writer(const std::filesystem::path& path, std::string_view magic)
      : out_(path, "checkpoint '" + path.string() + "'") {
    bytes(std::as_bytes(std::span(magic.data(), magic.size())));
  }
  void u8(std::uint8_t v) { bytes(std::as_bytes(std::span(&v, 1))); }
  void u32(std::uint32_t v) {
    std::array<std::uint8_t, 4> b{};
    pack::store_le(b.data(), v);
    bytes(std::as_bytes(std::span(b)));
  }
  void u64(std::uint64_t v) {
    std::array<std::uint8_t, 8> b{};
    pack::store_le(b.data(), v);
    bytes(std::as_bytes(std::span(b)));
  }
  void text(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    bytes(std::as_bytes(std::span(s.data(), s.size())));
  }
  void bytes(std::span<const std::byte> b) {
    hash_ = fnv1a(std::span(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()), hash_);
    out_.write(b);
  }
  /// Appends the checksum and publishes the file.
  void commit() {
    std::array<std::uint8_t, 8> b{};
    pack::store_le(b.data(), hash_);
    out_.write(std::as_bytes(std::span(b)));
    out_.commit();
  }

 private:
  io::atomic_output out_;
  std::uint64_t hash_ = fnv1a({});
};

/// Reads a record file written by `record_writer`: checks the magic and the checksum over the whole file
/// (streamed), then hands out fields; any read past the end is a corrupt file.
class record_reader {
 public:
  record_reader(const std::filesystem::path& path, std::string_view magic) : file_(path), context_(path.string()) {
    const std::size_t size = file_.size();
    if (size < magic.size() + 8) corrupt("is too short");
    std::vector<std::byte> head(magic.size());
    file_.read(0, head);
    if (!std::equal(head.begin(), head.end(), reinterpret_cast<const std::byte*>(magic.data()))) {
      corrupt("is not a ternq checkpoint file of this kind");
    }
    std::uint64_t h = fnv1a({});
    std::vector<std::byte> chunk(std::size_t{1} << 20);
    for (std::size_t at = 0; at < size - 8;) {
      const std::size_t n = std::min(chunk.size(), size - 8 - at);
      file_.read(at, std::span(chunk).first(n));
      h = fnv1a(std::span(reinterpret_cast<const std::uint8_t*>(chunk.data()), n), h);
      at += n;
    }
    std::array<std::byte, 8> tail{};
    file_.read(size - 8, tail);
    if (pack::load_le<std::uint64_t>(reinterpret_cast<const std::uint8_t*>(tail.data())) != h) {
      corrupt("fails its checksum (damaged or truncated)");
    }
    end_ = size - 8;
    at_ = magic.size();
  }
  std::uint8_t u8() { return fixed<std::uint8_t>(); }
  std::uint32_t u32() { return fixed<std::uint32_t>(); }
  std::uint64_t u64() { return fixed<std::uint64_t>(); }
  std::string text() {
    const std::uint32_t n = u32();
    std::string s(n, '\0');
    read(std::as_writable_bytes(std::span(s.data(), s.size())));
    return s;
  }
  void read(std::span<std::byte> out) {
    if (out.size() > end_ - at_) corrupt("ends early");
    file_.read(at_, out);
    at_ += out.size();
  }
  /// Skips `n` bytes, returning where they start.
  std::size_t skip(std::uint64_t n) {
    if (n > end_ - at_) corrupt("ends early");
    const std::size_t start = at_;
    at_ += static_cast<std::size_t>(n);
    return start;
  }
  void read_at(std::size_t offset, std::span<std::byte> out) const { file_.read(offset, out); }
  [[nodiscard]] bool at_end() const noexcept { return at_ == end_; }
  [[noreturn]] void corrupt(std::string_view what) const {
    fail(errc::corrupt_file, "checkpoint file '", context_, "' ", what,
         "; delete the checkpoint directory to start the run over");
  }

 private:
  template <class T>
  T fixed() {
    std::array<std::byte, sizeof(T)> b{};
    read(b);
    return pack::load_le<T>(reinterpret_cast<const std::uint8_t*>(b.data()));
  }

  io::mapped_file file_;
  std::string context_;
  std::size_t at_ = 0;
  std::size_t end_ = 0;
};

inline constexpr std::string_view block_magic = "TQBLOCK1";
inline constexpr std::string_view activations_magic = "TQACTIV1";

}  // namespace detail

/// Writes the tensors of block `index`.
inline void write_block_file(const std::filesystem::path& path, std::size_t index,
                             const std::vector<stored_entry>& entries) {
  detail::record_writer w(path, detail::block_magic);
  w.u64(index);
  w.u64(entries.size());
  for (const stored_entry& e : entries) {
    w.text(e.info.name);
    w.u32(static_cast<std::uint32_t>(e.info.ggml));
    w.u32(static_cast<std::uint32_t>(e.ne.size()));
    for (const std::int64_t n : e.ne) w.u64(static_cast<std::uint64_t>(n));
    w.u64(e.info.elements);
    w.text(e.info.reason);
    w.u8(static_cast<std::uint8_t>((e.info.linear ? 1U : 0U) | (e.info.kept ? 2U : 0U)));
    w.u64(e.data.size());
    w.bytes(std::as_bytes(std::span(e.data)));
  }
  w.commit();
}

/// A block file, checked whole when opened; tensor data are read one at a time.
class block_file {
 public:
  block_file(const std::filesystem::path& path, std::size_t expected_index) : r_(path, detail::block_magic) {
    if (r_.u64() != expected_index) r_.corrupt("holds another block than its name says");
    const std::uint64_t count = r_.u64();
    if (count > 64) r_.corrupt("declares an impossible tensor count");
    for (std::uint64_t k = 0; k < count; ++k) {
      item it;
      it.info.name = r_.text();
      const std::uint32_t type = r_.u32();
      const pack::ggml_type_traits* traits = pack::find_ggml_type(type);
      if (traits == nullptr) r_.corrupt("names an unknown tensor type");
      it.info.ggml = static_cast<pack::ggml_type>(type);
      it.info.type = std::string(traits->name);
      const std::uint32_t dims = r_.u32();
      if (dims == 0 || dims > 4) r_.corrupt("declares an impossible tensor rank");
      for (std::uint32_t d = 0; d < dims; ++d) it.ne.push_back(static_cast<std::int64_t>(r_.u64()));
      it.info.elements = r_.u64();
      it.info.reason = r_.text();
      const std::uint8_t flags = r_.u8();
      it.info.linear = (flags & 1U) != 0;
      it.info.kept = (flags & 2U) != 0;
      it.size = r_.u64();
      it.info.bytes = it.size;
      it.offset = r_.skip(it.size);
      items_.push_back(std::move(it));
    }
    if (!r_.at_end()) r_.corrupt("has bytes after its last tensor");
  }

  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] const stored_tensor& info(std::size_t i) const { return items_.at(i).info; }
  [[nodiscard]] const std::vector<std::int64_t>& ne(std::size_t i) const { return items_.at(i).ne; }
  [[nodiscard]] std::vector<std::uint8_t> data(std::size_t i) const {
    const item& it = items_.at(i);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(it.size));
    r_.read_at(it.offset, std::as_writable_bytes(std::span(out)));
    return out;
  }
  /// The index of tensor `name`.
  [[nodiscard]] std::size_t find(std::string_view name) const {
    for (std::size_t i = 0; i < items_.size(); ++i) {
      if (items_[i].info.name == name) return i;
    }
    r_.corrupt("lacks tensor '" + std::string(name) + "'");
  }
  /// Tensor `i` decoded to floats (`ne[1] x ne[0]`, row-major), as an engine reading the file sees it.
  [[nodiscard]] matrix values(std::size_t i) const {
    const item& it = items_.at(i);
    const auto cols = static_cast<std::size_t>(it.ne[0]);
    const std::size_t rows = it.ne.size() > 1 ? static_cast<std::size_t>(it.ne[1]) : 1;
    matrix m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
    pack::to_float_into(it.info.ggml, data(i), rows, cols, std::span<float>(m.data(), static_cast<std::size_t>(m.size())));
    return m;
  }

 private:
  struct item {
    stored_tensor info;
    std::vector<std::int64_t> ne;
    std::uint64_t size = 0;
    std::size_t offset = 0;
  };
  detail::record_reader r_;
  std::vector<item> items_;
};

/// Rounds every value of `h` to bf16 (kept in fp32 storage), as the BF16 activation store keeps it.
inline void round_to_bf16(matrix& h) {
  for (Eigen::Index k = 0; k < h.size(); ++k) h.data()[k] = bf16_bits_to_fp32(fp32_to_bf16_bits(h.data()[k]));
}

/// Writes the hidden state entering block `next`.
inline void write_activations(const std::filesystem::path& path, std::size_t next, const matrix& h,
                              activation_precision precision) {
  detail::record_writer w(path, detail::activations_magic);
  w.u64(next);
  w.u32(precision == activation_precision::bf16 ? 1 : 0);
  w.u64(static_cast<std::uint64_t>(h.rows()));
  w.u64(static_cast<std::uint64_t>(h.cols()));
  constexpr std::size_t chunk = 1 << 16;
  std::vector<std::uint8_t> buf;
  const std::span<const float> values(h.data(), static_cast<std::size_t>(h.size()));
  const pack::ggml_type t = precision == activation_precision::bf16 ? pack::ggml_type::bf16 : pack::ggml_type::f32;
  for (std::size_t k = 0; k < values.size(); k += chunk) {
    const std::size_t n = std::min(chunk, values.size() - k);
    buf.resize(n * pack::float_type_size(t));
    pack::encode_floats(t, values.subspan(k, n), buf);
    w.bytes(std::as_bytes(std::span(buf)));
  }
  w.commit();
}

/// Reads the hidden state entering block `next`, which must be `rows x cols` at `precision`.
inline matrix read_activations(const std::filesystem::path& path, std::size_t next, std::size_t rows,
                               std::size_t cols, activation_precision precision) {
  detail::record_reader r(path, detail::activations_magic);
  if (r.u64() != next) r.corrupt("holds the activations of another block");
  const bool bf16 = r.u32() == 1;
  if (bf16 != (precision == activation_precision::bf16)) r.corrupt("has another activation precision");
  if (r.u64() != rows || r.u64() != cols) r.corrupt("has another calibration batch shape");
  const pack::ggml_type t = bf16 ? pack::ggml_type::bf16 : pack::ggml_type::f32;
  matrix h(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  constexpr std::size_t chunk = 1 << 16;
  std::vector<std::uint8_t> buf;
  const std::span<float> values(h.data(), static_cast<std::size_t>(h.size()));
  for (std::size_t k = 0; k < values.size(); k += chunk) {
    const std::size_t n = std::min(chunk, values.size() - k);
    buf.resize(n * pack::float_type_size(t));
    r.read(std::as_writable_bytes(std::span(buf)));
    pack::decode_floats(t, buf, values.subspan(k, n));
  }
  if (!r.at_end()) r.corrupt("has bytes after its values");
  return h;
}

/// The checkpoint directory of one run.
class checkpoint {
 public:
  static constexpr int format_version = 1;

  /// Opens `directory` (created when absent) for a run described by `fingerprint`. A directory holding another
  /// run's manifest is refused unless `resume` (then the fingerprints must be equal, else the differing fields
  /// are named); with `resume` and no manifest the run starts at block 0. Every block file the manifest counts is
  /// checked (checksum, index), so a damaged checkpoint is refused before any work.
  checkpoint(std::filesystem::path directory, nlohmann::json fingerprint, bool resume)
      : dir_(std::move(directory)), fingerprint_(std::move(fingerprint)) {
    std::filesystem::create_directories(dir_);
    const auto manifest = dir_ / "manifest.json";
    if (!std::filesystem::exists(manifest)) {
      remove_stale();
      return;
    }
    nlohmann::json m;
    {
      std::ifstream in(manifest);
      m = nlohmann::json::parse(in, nullptr, false);
    }
    if (m.is_discarded() || !m.is_object() || !m.contains("blocks_done") || !m.contains("fingerprint") ||
        !m.contains("blocks") || !m["blocks_done"].is_number_unsigned() || !m["blocks"].is_array()) {
      fail(errc::corrupt_file, "checkpoint '", dir_.string(),
           "': manifest.json is damaged; delete the directory to start the run over");
    }
    if (!resume) {
      fail(errc::invalid_argument, "checkpoint directory '", dir_.string(), "' holds a run (",
           m["blocks_done"].get<std::size_t>(),
           " blocks done): pass --resume to continue it, or name an empty directory to start over");
    }
    if (m.value("format", 0) != format_version) {
      fail(errc::unsupported, "checkpoint '", dir_.string(), "' was written by another version of its format");
    }
    if (m["fingerprint"] != fingerprint_) {
      std::string fields;
      const nlohmann::json& old = m["fingerprint"];
      for (const auto& [key, value] : fingerprint_.items()) {
        if (!old.contains(key) || old[key] != value) fields += (fields.empty() ? "" : ", ") + key;
      }
      fail(errc::invalid_argument, "checkpoint '", dir_.string(), "' belongs to another run (it differs in: ",
           fields.empty() ? std::string("fingerprint") : fields,
           "); a checkpoint is never reused for a different model, method, options or calibration data (delete it "
           "or name another directory)");
    }
    blocks_done_ = m["blocks_done"].get<std::size_t>();
    records_ = m["blocks"];
    if (records_.size() != blocks_done_) {
      fail(errc::corrupt_file, "checkpoint '", dir_.string(), "': manifest.json counts ", blocks_done_,
           " blocks but records ", records_.size());
    }
    for (std::size_t b = 0; b < blocks_done_; ++b) (void)block_file(block_path(b), b);
  }

  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return dir_; }
  [[nodiscard]] std::size_t blocks_done() const noexcept { return blocks_done_; }
  /// The records committed with each block, in block order.
  [[nodiscard]] const nlohmann::json& records() const noexcept { return records_; }

  [[nodiscard]] std::filesystem::path block_path(std::size_t b) const { return dir_ / numbered("block", b); }
  [[nodiscard]] std::filesystem::path activations_path(std::size_t next) const {
    return dir_ / numbered("activations", next);
  }

  /// The hidden state entering the next block to run.
  [[nodiscard]] matrix activations(std::size_t rows, std::size_t cols, activation_precision precision) const {
    return read_activations(activations_path(blocks_done_), blocks_done_, rows, cols, precision);
  }

  /// Commits block `b` (== blocks_done()): its tensors, the hidden state entering block b + 1 (none for
  /// data-free runs) and its record (report rows, times).
  void commit_block(std::size_t b, const std::vector<stored_entry>& entries, const matrix* next_state,
                    activation_precision precision, nlohmann::json record) {
    if (b != blocks_done_) fail(errc::invalid_argument, "checkpoint: block ", b, " committed after ", blocks_done_);
    write_block_file(block_path(b), b, entries);
    if (next_state != nullptr) write_activations(activations_path(b + 1), b + 1, *next_state, precision);
    records_.push_back(std::move(record));
    blocks_done_ = b + 1;
    write_manifest();
    std::error_code ec;
    std::filesystem::remove(activations_path(b), ec);
  }

  /// Deletes every file of the checkpoint, and the directory when it is then empty.
  void remove_all() {
    std::error_code ec;
    for (std::size_t b = 0; b <= blocks_done_; ++b) {
      std::filesystem::remove(block_path(b), ec);
      std::filesystem::remove(activations_path(b), ec);
    }
    std::filesystem::remove(dir_ / "manifest.json", ec);
    std::filesystem::remove(dir_, ec);  // only when empty
  }

 private:
  static std::string numbered(std::string_view stem, std::size_t n) {
    char name[64];
    std::snprintf(name, sizeof name, "%.*s-%05zu.bin", static_cast<int>(stem.size()), stem.data(), n);
    return name;
  }

  /// Files of an earlier run that never committed a manifest.
  void remove_stale() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      const std::string n = e.path().filename().string();
      if ((n.starts_with("block-") || n.starts_with("activations-")) && n.ends_with(".bin")) {
        std::filesystem::remove(e.path(), ec);
      }
    }
  }

  void write_manifest() const {
    const nlohmann::json m = {{"format", format_version},
                              {"fingerprint", fingerprint_},
                              {"blocks_done", blocks_done_},
                              {"blocks", records_}};
    const std::string text = m.dump(1) + "\n";
    io::atomic_output out(dir_ / "manifest.json", "checkpoint manifest");
    out.write(std::as_bytes(std::span(text)));
    out.commit();
  }

  std::filesystem::path dir_;
  nlohmann::json fingerprint_;
  std::size_t blocks_done_ = 0;
  nlohmann::json records_ = nlohmann::json::array();
};

}  // namespace ternq::llama
