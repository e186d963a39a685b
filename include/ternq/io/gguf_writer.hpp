// SPDX-License-Identifier: MIT
// A streaming GGUF v3 writer: typed metadata, tensor infos with exact padded offsets, then each tensor's data in order.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/io/atomic_output.hpp"
#include "ternq/io/detail/gguf_encode.hpp"
#include "ternq/io/gguf_types.hpp"
#include "ternq/pack/bytes.hpp"
#include "ternq/pack/float_types.hpp"
#include "ternq/pack/ggml_types.hpp"
#include "ternq/pack/pack.hpp"

namespace ternq::io {

/// Writes a GGUF v3 file in one pass, holding at most one tensor's bytes.
///
/// 1. Describe the file: metadata (`add`, `edit_metadata()`, `set_alignment`) and
///    tensor infos (`add_tensor`), in the order they are to appear.
/// 2. `open(path)` writes the header, metadata and tensor infos with their
///    offsets (each tensor's data starts at the running sum of the padded
///    sizes before it, as ggml requires).
/// 3. `write_tensor` each tensor's data in info order; each is checked
///    against its info's size and padded to the alignment. A tensor too
///    large to hold whole (a vocabulary-sized embedding) can instead be
///    given in pieces: `begin_tensor`, `write_part` any number of times,
///    `end_tensor`; the file is the same byte for byte.
/// 4. `close()` checks that every tensor was written and flushes.
///
/// Errors: `invalid_argument` for misuse (a duplicated key or tensor name, a
/// name of 64 bytes or more, more than 4 extents, `ne[0]` not a multiple of
/// the block, data of the wrong size or out of order), `unsupported` for a
/// type ternq does not write or 128-element blocks under id 42, `io` when
/// the system refuses a write. A file opened by path is written through
/// `atomic_output`: until `close()` the target keeps its previous contents
/// (or stays absent), and a writer destroyed before `close()` removes its
/// temporary file, so no truncated file is ever left under the final name.
class gguf_writer {
 public:
  gguf_writer() = default;
  gguf_writer(const gguf_writer&) = delete;
  gguf_writer& operator=(const gguf_writer&) = delete;
  ~gguf_writer() = default;  // an uncommitted atomic_output removes its temporary file

  /// The metadata to edit (for helpers such as `add_llama_metadata`); only before `open`.
  [[nodiscard]] gguf_metadata& edit_metadata() {
    require_state(state::describing, "edit_metadata()");
    return metadata_;
  }
  /// The metadata as written.
  [[nodiscard]] const gguf_metadata& metadata() const noexcept { return metadata_; }

  /// Appends a key-value pair (keys unique).
  void add(std::string key, gguf_value value) { edit_metadata().add(std::move(key), std::move(value)); }

  /// Sets `general.alignment` (a power of two; the default is 32).
  void set_alignment(std::uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      fail(errc::invalid_argument, "gguf_writer: alignment ", alignment, " is not a power of two");
    }
    edit_metadata().assign(std::string(gguf_alignment_key), alignment);
  }

  /// Declares the next tensor. `ne` has 1 to 4 extents, `ne[0]` innermost
  /// and a multiple of the type's block. Returns its info (the offset is
  /// final after `open`).
  const gguf_tensor_info& add_tensor(std::string name, pack::ggml_type type, std::vector<std::int64_t> ne) {
    require_state(state::describing, "add_tensor()");
    const std::string ctx = ternq::detail::concat("gguf_writer: tensor '", name, "'");
    if (name.empty()) fail(errc::invalid_argument, "gguf_writer: empty tensor name");
    if (name.size() >= gguf_max_name_bytes) {
      fail(errc::invalid_argument, ctx, ": the name has ", name.size(), " bytes (at most ", gguf_max_name_bytes - 1,
           ")");
    }
    if (std::any_of(tensors_.begin(), tensors_.end(), [&](const auto& t) { return t.name == name; })) {
      fail(errc::invalid_argument, "gguf_writer: duplicated tensor name '", name, "'");
    }
    if (ne.empty() || ne.size() > gguf_max_dims) {
      fail(errc::invalid_argument, ctx, ": ", ne.size(), " extents (1 to ", gguf_max_dims, ")");
    }
    if (pack::find_ggml_type(static_cast<std::uint32_t>(type)) == nullptr) {
      fail(errc::unsupported, ctx, ": ggml type ", static_cast<std::uint32_t>(type), " is not one ternq writes");
    }
    gguf_tensor_info info;
    info.size = pack::ggml_nbytes(type, ne, errc::invalid_argument, ctx);
    info.name = std::move(name);
    info.type = type;
    info.ne = std::move(ne);
    tensors_.push_back(std::move(info));
    return tensors_.back();
  }

  /// Declares a tensor for a packed matrix (`ne = [cols, rows]`, its format's type).
  const gguf_tensor_info& add_tensor(std::string name, const pack::packed_tensor& p) {
    const auto ne = p.ne();
    return add_tensor(std::move(name), p.type(), {ne[0], ne[1]});
  }

  [[nodiscard]] const std::vector<gguf_tensor_info>& tensors() const noexcept { return tensors_; }
  [[nodiscard]] std::uint32_t alignment() const noexcept {
    const auto* a = metadata_.find(gguf_alignment_key);
    return a != nullptr && std::holds_alternative<std::uint32_t>(*a) ? std::get<std::uint32_t>(*a)
                                                                     : gguf_default_alignment;
  }

  /// Starts writing `path` (through `atomic_output`: a temporary file
  /// beside it, renamed over it by `close()`) with everything before the
  /// tensor data.
  void open(const std::filesystem::path& path) {
    require_state(state::describing, "open()");
    auto file = std::make_unique<atomic_output>(path, "gguf_writer");
    path_ = path;
    owned_ = std::move(file);
    begin(owned_->stream());
  }

  /// Writes into a caller's stream (binary mode) instead of a file.
  void open(std::ostream& out) {
    require_state(state::describing, "open()");
    begin(out);
  }

  /// Writes the next tensor's data, which must be exactly its size.
  void write_tensor(std::string_view name, std::span<const std::uint8_t> data) {
    const gguf_tensor_info& info = next_tensor(name);
    if (info.type == pack::ggml_type::q2_0 && data.size() != info.size) {
      const std::uint64_t elements = info.size / 18 * 64;
      if (elements % 128 == 0 && data.size() == elements / 128 * 34) {
        fail(errc::unsupported, "gguf_writer: tensor '", info.name,
             "': refusing 34-byte blocks of 128 elements under ggml type 42; id 42 is mainline Q2_0 with 64-element "
             "blocks (pack format::q2_0, which repeats a group-128 scale in both halves, or write PQ2_0, id 142)");
      }
    }
    if (data.size() != info.size) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", info.name, "' has ", data.size(), " bytes of data; its ",
           pack::ggml_type_name(info.type), " info needs ", info.size);
    }
    emit(data.data(), data.size());
    finish_tensor();
  }

  /// Starts the next tensor's data, given in pieces by `write_part` and ended by `end_tensor`, so that its bytes
  /// never have to be whole in memory.
  void begin_tensor(std::string_view name) {
    (void)next_tensor(name, "begin_tensor()");
    part_written_ = 0;
    in_parts_ = true;
  }

  /// Appends the next piece of the tensor begun by `begin_tensor`. A piece that would go past its size is refused
  /// before any of it is written.
  void write_part(std::span<const std::uint8_t> data) {
    require_state(state::writing, "write_part()");
    if (!in_parts_) fail(errc::invalid_argument, "gguf_writer: write_part() without begin_tensor()");
    const gguf_tensor_info& info = tensors_[next_];
    if (data.size() > info.size - part_written_) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", info.name, "' given ", part_written_ + data.size(),
           " bytes of data; its ", pack::ggml_type_name(info.type), " info needs ", info.size);
    }
    emit(data.data(), data.size());
    part_written_ += data.size();
  }

  /// Ends the tensor begun by `begin_tensor`, which must have received exactly its size, and pads it.
  void end_tensor() {
    require_state(state::writing, "end_tensor()");
    if (!in_parts_) fail(errc::invalid_argument, "gguf_writer: end_tensor() without begin_tensor()");
    const gguf_tensor_info& info = tensors_[next_];
    if (part_written_ != info.size) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", info.name, "' ended after ", part_written_,
           " bytes of data; its ", pack::ggml_type_name(info.type), " info needs ", info.size);
    }
    in_parts_ = false;
    finish_tensor();
  }

  /// Writes the next tensor from float values, converted to its type (F32,
  /// F16 or BF16, round to nearest even), one chunk at a time.
  void write_tensor(std::string_view name, std::span<const float> values) {
    const gguf_tensor_info& info = next_tensor(name);
    if (!pack::is_float_type(info.type)) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", info.name, "' is ", pack::ggml_type_name(info.type),
           "; float values are written only to F32, F16 or BF16 tensors");
    }
    const std::size_t width = pack::float_type_size(info.type);
    if (values.size() * width != info.size) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", info.name, "' has ", values.size(),
           " values; its info needs ", info.size / width);
    }
    constexpr std::size_t chunk = 16384;
    std::vector<std::uint8_t> buffer(std::min(values.size(), chunk) * width);
    for (std::size_t k = 0; k < values.size(); k += chunk) {
      const std::size_t n = std::min(chunk, values.size() - k);
      const std::span<std::uint8_t> out(buffer.data(), n * width);
      pack::encode_floats(info.type, values.subspan(k, n), out);
      emit(out.data(), out.size());
    }
    finish_tensor();
  }

  /// Writes a packed matrix as the next tensor.
  void write_tensor(std::string_view name, const pack::packed_tensor& p) {
    const gguf_tensor_info* info = next_ < tensors_.size() ? &tensors_[next_] : nullptr;
    if (info != nullptr && info->name == name && info->type != p.type()) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", info->name, "' is declared ",
           pack::ggml_type_name(info->type), " but the packed data is ", pack::ggml_type_name(p.type()));
    }
    if (info != nullptr && info->name == name && (info->cols() != p.cols || info->rows() != p.rows)) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", info->name, "' is declared with ne[0] = ", info->cols(),
           " and ", info->rows(), " rows, but the packed matrix is ", p.rows, "x", p.cols);
    }
    write_tensor(name, std::span<const std::uint8_t>(p.data));
  }

  /// Checks that every tensor was written and flushes (and closes an owned file).
  void close() {
    require_state(state::writing, "close()");
    if (in_parts_) {
      fail(errc::invalid_argument, "gguf_writer: close() before end_tensor() of tensor '", tensors_[next_].name, "'");
    }
    if (next_ != tensors_.size()) {
      fail(errc::invalid_argument, "gguf_writer: close() after ", next_, " of ", tensors_.size(), " tensors (next: '",
           tensors_[next_].name, "')");
    }
    out_->flush();
    if (!out_->good()) fail(errc::io, "gguf_writer: flushing ", target(), " failed");
    if (owned_) owned_->commit();
    state_ = state::closed;
  }

  /// Bytes written so far.
  [[nodiscard]] std::uint64_t bytes_written() const noexcept { return written_; }

 private:
  enum class state : std::uint8_t { describing, writing, closed };

  void require_state(state s, const char* call) const {
    if (state_ == s) return;
    static constexpr const char* names[] = {"before open()", "after open()", "after close()"};
    fail(errc::invalid_argument, "gguf_writer: ", call, " called ", names[static_cast<int>(state_)]);
  }

  [[nodiscard]] std::string target() const {
    return owned_ ? ternq::detail::concat("'", path_.string(), "'") : std::string("the stream");
  }

  void validate_metadata() const {
    if (const gguf_value* a = metadata_.find(gguf_alignment_key)) {
      const auto* u = std::get_if<std::uint32_t>(a);
      if (u == nullptr || *u == 0 || (*u & (*u - 1)) != 0) {
        fail(errc::invalid_argument, "gguf_writer: ", gguf_alignment_key, " must be a UINT32 power of two (it is ",
             gguf_type_name(type_of(*a)), u != nullptr ? ternq::detail::concat(" ", *u) : std::string(), ")");
      }
    }
  }

  void begin(std::ostream& out) {
    validate_metadata();
    const std::uint64_t align = alignment();
    std::uint64_t offset = 0;
    for (auto& t : tensors_) {
      t.offset = offset;
      offset += gguf_align(t.size, align);
    }
    detail::byte_builder h;
    h.put(gguf_magic);
    h.put(gguf_version);
    h.put(static_cast<std::uint64_t>(tensors_.size()));
    h.put(static_cast<std::uint64_t>(metadata_.size()));
    for (const auto& kv : metadata_) {
      h.put_string(kv.key);
      h.put(static_cast<std::int32_t>(type_of(kv.value)));
      detail::put_value(h, kv.value);
    }
    for (const auto& t : tensors_) {
      h.put_string(t.name);
      h.put(static_cast<std::uint32_t>(t.ne.size()));
      for (const std::int64_t n : t.ne) h.put(n);
      h.put(static_cast<std::int32_t>(t.type));
      h.put(t.offset);
    }
    h.pad_to(align);
    out_ = &out;
    state_ = state::writing;
    emit(h.bytes().data(), h.bytes().size());
    data_start_ = written_;
  }

  const gguf_tensor_info& next_tensor(std::string_view name, const char* call = "write_tensor()") {
    require_state(state::writing, call);
    if (in_parts_) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", name, "' started before end_tensor() of tensor '",
           tensors_[next_].name, "'");
    }
    if (next_ >= tensors_.size()) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", name, "' written after all ", tensors_.size(),
           " declared tensors");
    }
    const gguf_tensor_info& info = tensors_[next_];
    if (info.name != name) {
      fail(errc::invalid_argument, "gguf_writer: tensor '", name, "' written out of order (next is '", info.name, "')");
    }
    return info;
  }

  void finish_tensor() {
    const std::uint64_t end = data_start_ + tensors_[next_].offset + tensors_[next_].size;
    TERNQ_ASSERT(end == written_);
    static constexpr std::array<char, 256> zeros{};
    std::uint64_t pad = gguf_align(end - data_start_, alignment()) - (end - data_start_);
    while (pad > 0) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(pad, zeros.size()));
      emit(reinterpret_cast<const std::uint8_t*>(zeros.data()), n);
      pad -= n;
    }
    ++next_;
  }

  void emit(const std::uint8_t* data, std::size_t n) {
    out_->write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
    if (!out_->good()) fail(errc::io, "gguf_writer: writing ", target(), " failed at byte ", written_);
    written_ += n;
  }

  gguf_metadata metadata_;
  std::vector<gguf_tensor_info> tensors_;
  state state_ = state::describing;
  std::unique_ptr<atomic_output> owned_;
  std::filesystem::path path_;
  std::ostream* out_ = nullptr;
  std::uint64_t written_ = 0;
  std::uint64_t data_start_ = 0;
  std::size_t next_ = 0;
  bool in_parts_ = false;           ///< between `begin_tensor` and `end_tensor`
  std::uint64_t part_written_ = 0;  ///< bytes of the current tensor given so far by `write_part`
};

}  // namespace ternq::io
