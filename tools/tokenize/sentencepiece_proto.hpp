// SPDX-License-Identifier: MIT
// What the SentencePiece library does not tell: a model's algorithm, piece types and dummy prefix, read from the
// serialized ModelProto (protobuf wire format) that the library hands out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <ternq/core/error.hpp>

namespace ternq::tokenizers {

/// The facts of a SentencePiece ModelProto ternq needs beyond the library's API: `model_type` (TrainerSpec field
/// 3: 1 Unigram, 2 BPE, 3 word, 4 char), every piece's type (SentencePiece field 3: 1 normal, 2 unknown,
/// 3 control, 4 user-defined, 5 unused, 6 byte; GGUF's token types use the same numbers) and
/// `add_dummy_prefix` (NormalizerSpec field 3).
struct sentencepiece_facts {
  std::uint64_t model_type = 1;  ///< protobuf's default: Unigram
  std::vector<std::int32_t> piece_types;
  bool add_dummy_prefix = true;
};

namespace detail {

/// A protobuf message read field by field; every read is checked against the end of the bytes.
class proto_reader {
 public:
  proto_reader(std::string_view bytes, std::string_view what) : b_(bytes), what_(what) {}
  [[nodiscard]] bool done() const noexcept { return at_ >= b_.size(); }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (at_ >= b_.size()) bad("a varint runs past the end");
      const auto byte = static_cast<unsigned char>(b_[at_++]);
      v |= static_cast<std::uint64_t>(byte & 0x7FU) << shift;
      if ((byte & 0x80U) == 0) return v;
    }
    bad("a varint is longer than 10 bytes");
  }
  /// The next field's number and wire type.
  std::pair<std::uint64_t, unsigned> key() {
    const std::uint64_t k = varint();
    return {k >> 3U, static_cast<unsigned>(k & 7U)};
  }
  std::string_view bytes() {
    const std::uint64_t n = varint();
    if (n > b_.size() - at_) bad("a field of ", n, " bytes runs past the end");
    const std::string_view out = b_.substr(at_, static_cast<std::size_t>(n));
    at_ += static_cast<std::size_t>(n);
    return out;
  }
  void skip(unsigned wire) {
    switch (wire) {
      case 0:
        (void)varint();
        return;
      case 1:
        advance(8);
        return;
      case 2:
        (void)bytes();
        return;
      case 5:
        advance(4);
        return;
      default:
        bad("wire type ", wire, " is not one SentencePiece uses");
    }
  }

 private:
  void advance(std::size_t n) {
    if (n > b_.size() - at_) bad("a fixed-size field runs past the end");
    at_ += n;
  }
  template <class... Args>
  [[noreturn]] void bad(const Args&... why) const {
    fail(errc::corrupt_file, what_, ": ", why..., " (at byte ", at_, ")");
  }

  std::string_view b_;
  std::string_view what_;
  std::size_t at_ = 0;
};

}  // namespace detail

/// Reads the facts from a serialized ModelProto; malformed bytes are `[ternq.corrupt_file]`.
inline sentencepiece_facts read_sentencepiece_facts(std::string_view proto, std::string_view what) {
  sentencepiece_facts f;
  detail::proto_reader top(proto, what);
  while (!top.done()) {
    const auto [field, wire] = top.key();
    if (wire != 2 || field < 1 || field > 3) {
      top.skip(wire);
      continue;
    }
    detail::proto_reader inner(top.bytes(), what);
    if (field == 1) f.piece_types.push_back(1);  // a piece: NORMAL unless its type says otherwise
    while (!inner.done()) {
      const auto [f2, w2] = inner.key();
      if (f2 == 3 && w2 == 0) {
        const std::uint64_t v = inner.varint();
        if (field == 1) f.piece_types.back() = static_cast<std::int32_t>(v);
        if (field == 2) f.model_type = v;
        if (field == 3) f.add_dummy_prefix = v != 0;
      } else {
        inner.skip(w2);
      }
    }
  }
  return f;
}

}  // namespace ternq::tokenizers
