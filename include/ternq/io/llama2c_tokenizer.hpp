// SPDX-License-Identifier: MIT
// llama2c_tokenizer: the llama2.c tokenizer file, encoding exactly as run.c does, decoding, and text normalization.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ternq/core/error.hpp"
#include "ternq/io/detail/bytes.hpp"
#include "ternq/io/detail/pair_merge.hpp"
#include "ternq/io/mapped_file.hpp"

namespace ternq::io {

/// What `llama2c_tokenizer::encode` adds around the text.
struct encode_options {
  bool bos = true;           ///< prepend BOS (id 1)
  bool eos = false;          ///< append EOS (id 2)
  bool dummy_prefix = true;  ///< prepend the piece " " to a non-empty text (SentencePiece's dummy prefix)
};

/// Replaces every run of ASCII whitespace (space, tab, newline, CR, VT, FF)
/// by one space; nothing else changes (a leading or trailing run stays one
/// space). The character-level BabyLlama tokenizers have no newline piece
/// and no byte pieces, so their text must be normalized like this first;
/// `encode` never does it behind the caller's back.
inline std::string collapse_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_run = false;
  for (const char c : text) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
    if (space && in_run) continue;
    out += space ? ' ' : c;
    in_run = space;
  }
  return out;
}

/// A llama2.c tokenizer: pieces (byte strings) with merge scores. Id 0 is
/// `<unk>`, 1 BOS, 2 EOS; a vocabulary with byte fallback holds `<0x00>` ..
/// `<0xFF>` at ids 3 .. 258.
///
/// File format: int32 `max_token_length`, then per piece a float32 score, an
/// int32 byte length and the bytes, all little-endian, to the end of the file.
///
/// Encoding is run.c's algorithm, token for token: BOS; the dummy-prefix
/// piece " " when the text is non-empty; each UTF-8 code point (a lead byte
/// and up to three continuation bytes) looked up as a piece, or else split
/// into its bytes' `<0xNN>` pieces; then, while any adjacent pair
/// concatenates to a piece, merge the pair whose piece has the highest score
/// (the leftmost on ties; scores at or below -1e10 never merge); EOS last if
/// asked. run.c rescans all pairs after every merge (quadratic); here a
/// priority queue keyed on (score, position) makes the same choices in
/// O(n log n). Where run.c would emit nonsense — a code point without a
/// piece in a vocabulary without byte pieces — `encode` throws instead.
class llama2c_tokenizer {
 public:
  static constexpr int unk_id = 0;
  static constexpr int bos_id = 1;
  static constexpr int eos_id = 2;

  /// Reads a tokenizer file. With `expected_vocab_size` (the model's), a
  /// different number of pieces is `[ternq.shape_mismatch]`.
  explicit llama2c_tokenizer(const std::filesystem::path& path,
                             std::optional<std::size_t> expected_vocab_size = std::nullopt)
      : llama2c_tokenizer(mapped_file(path).bytes(), path.string(), expected_vocab_size) {}

  /// Parses the bytes of a tokenizer file held in memory; `name` stands for
  /// the path in messages. Validated exactly as a file is.
  llama2c_tokenizer(std::span<const std::byte> file, std::string_view name,
                    std::optional<std::size_t> expected_vocab_size = std::nullopt) {
    const std::string context = "llama2c tokenizer '" + std::string(name) + "'";
    parse(file, context);
    if (expected_vocab_size && *expected_vocab_size != pieces_.size()) {
      fail(errc::shape_mismatch, context, ": ", pieces_.size(), " pieces, the model's vocab_size is ",
           *expected_vocab_size);
    }
    index();
  }

  /// A tokenizer from pieces and their scores (at least <unk>, BOS and EOS).
  llama2c_tokenizer(std::vector<std::string> pieces, std::vector<float> scores)
      : pieces_(std::move(pieces)), scores_(std::move(scores)) {
    if (pieces_.size() != scores_.size()) {
      fail(errc::shape_mismatch, "llama2c_tokenizer: ", pieces_.size(), " pieces but ", scores_.size(), " scores");
    }
    if (pieces_.size() < 3) {
      fail(errc::invalid_argument, "llama2c_tokenizer: ", pieces_.size(),
           " pieces; a llama2.c vocabulary starts with <unk>, BOS and EOS");
    }
    for (const auto& p : pieces_) max_token_length_ = std::max(max_token_length_, p.size());
    index();
  }

  [[nodiscard]] std::size_t vocab_size() const noexcept { return pieces_.size(); }
  /// The longest piece the file declares room for.
  [[nodiscard]] std::size_t max_token_length() const noexcept { return max_token_length_; }
  [[nodiscard]] std::string_view piece(int id) const { return pieces_[checked(id, "piece")]; }
  [[nodiscard]] float score(int id) const { return scores_[checked(id, "score")]; }
  /// The id of a piece, or nothing.
  [[nodiscard]] std::optional<int> find(std::string_view piece) const {
    const auto it = ids_.find(piece);
    return it == ids_.end() ? std::nullopt : std::optional<int>(it->second);
  }
  /// True when ids 3 .. 258 are the byte pieces `<0x00>` .. `<0xFF>` (byte fallback works).
  [[nodiscard]] bool has_byte_pieces() const noexcept { return has_byte_pieces_; }

  /// Token ids of `text` (UTF-8), as run.c's `encode` gives them. A code
  /// point with no piece, in a vocabulary without byte pieces, is
  /// `[ternq.unsupported]` naming its bytes and offset.
  [[nodiscard]] std::vector<int> encode(std::string_view text, const encode_options& options = {}) const {
    std::vector<int> ids;
    if (options.bos) ids.push_back(bos_id);
    if (options.dummy_prefix && !text.empty()) push_code_point(" ", 0, ids);
    for (std::size_t i = 0; i < text.size();) {
      std::size_t j = i + 1;  // a lead byte and up to three continuation bytes, as run.c groups them
      while (j < text.size() && j - i < 4 && (static_cast<unsigned char>(text[j]) & 0xC0U) == 0x80U) ++j;
      push_code_point(text.substr(i, j - i), i, ids);
      i = j;
    }
    merge(ids);
    if (options.eos) ids.push_back(eos_id);
    return ids;
  }

  /// The text of `tokens`: BOS and EOS are markers and produce nothing, a
  /// piece right after BOS loses its leading space (the dummy prefix), and
  /// `<0xNN>` pieces become their byte — run.c's `decode` over a sequence.
  /// An id outside the vocabulary is `[ternq.out_of_bounds]`.
  [[nodiscard]] std::string decode(std::span<const int> tokens) const {
    std::string out;
    int prev = -1;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const int t = tokens[i];
      if (t < 0 || static_cast<std::size_t>(t) >= pieces_.size()) {
        fail(errc::out_of_bounds, "llama2c_tokenizer::decode: token ", t, " at position ", i,
             " is outside the vocabulary of ", pieces_.size(), " pieces");
      }
      if (t != bos_id && t != eos_id) out += decode_piece(prev, t);
      prev = t;
    }
    return out;
  }

  /// The text of token `token` following `prev` (run.c's `decode(prev, token)`).
  [[nodiscard]] std::string decode_piece(int prev, int token) const {
    std::string_view p = piece(token);
    if (prev == bos_id && !p.empty() && p.front() == ' ') p.remove_prefix(1);
    if (const auto byte = byte_of(p)) return std::string(1, static_cast<char>(*byte));
    return std::string(p);
  }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  [[nodiscard]] std::size_t checked(int id, const char* what) const {
    if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size()) {
      fail(errc::out_of_bounds, "llama2c_tokenizer::", what, ": id ", id, " is outside the vocabulary of ",
           pieces_.size(), " pieces");
    }
    return static_cast<std::size_t>(id);
  }

  /// The byte a piece `<0xNN>` stands for (either hex case), or nothing.
  static std::optional<unsigned> byte_of(std::string_view p) noexcept {
    if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return std::nullopt;
    const auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int hi = hex(p[3]);
    const int lo = hex(p[4]);
    if (hi < 0 || lo < 0) return std::nullopt;
    return static_cast<unsigned>(hi * 16 + lo);
  }

  void parse(std::span<const std::byte> file, const std::string& context) {
    if (file.size() < 4)
      fail(errc::corrupt_file, context, ": ", file.size(), " bytes are too few for max_token_length");
    const std::int32_t max_len = detail::load_i32_le(file.data());
    if (max_len <= 0) fail(errc::corrupt_file, context, ": max_token_length ", max_len, " is not positive");
    max_token_length_ = static_cast<std::size_t>(max_len);
    std::size_t at = 4;
    while (at < file.size()) {
      const std::size_t id = pieces_.size();
      if (file.size() - at < 8) {
        fail(errc::corrupt_file, context, ": piece ", id, " at byte ", at, ": ", file.size() - at,
             " bytes are too few for its score and length");
      }
      const float score = detail::load_f32_le(file.data() + at);
      const std::int32_t len = detail::load_i32_le(file.data() + at + 4);
      if (len < 0 || static_cast<std::size_t>(len) > max_token_length_) {
        fail(errc::corrupt_file, context, ": piece ", id, " at byte ", at, ": length ", len,
             " is outside [0, max_token_length ", max_token_length_, "]");
      }
      if (file.size() - at - 8 < static_cast<std::size_t>(len)) {
        fail(errc::corrupt_file, context, ": piece ", id, " at byte ", at, ": its ", len,
             " bytes run past the end of the file");
      }
      pieces_.emplace_back(reinterpret_cast<const char*>(file.data() + at + 8), static_cast<std::size_t>(len));
      scores_.push_back(score);
      at += 8 + static_cast<std::size_t>(len);
    }
    if (pieces_.size() < 3) {
      fail(errc::corrupt_file, context, ": ", pieces_.size(),
           " pieces; a llama2.c vocabulary starts with <unk>, BOS and EOS");
    }
  }

  /// Builds the piece -> id map (the lowest id wins for a repeated piece) and detects byte pieces.
  void index() {
    ids_.reserve(pieces_.size());
    for (std::size_t i = 0; i < pieces_.size(); ++i) ids_.emplace(pieces_[i], static_cast<int>(i));
    has_byte_pieces_ = pieces_.size() >= 259;
    for (unsigned b = 0; b < 256 && has_byte_pieces_; ++b) has_byte_pieces_ = byte_of(pieces_[b + 3]) == b;
  }

  void push_code_point(std::string_view cp, std::size_t offset, std::vector<int>& ids) const {
    if (const auto id = find(cp)) {
      ids.push_back(*id);
      return;
    }
    if (!has_byte_pieces_) {
      std::string hex;
      for (const char c : cp) {
        constexpr const char* digits = "0123456789abcdef";
        const auto u = static_cast<unsigned char>(c);
        if (!hex.empty()) hex += ' ';
        hex += digits[u >> 4U];
        hex += digits[u & 15U];
      }
      fail(errc::unsupported, "llama2c_tokenizer::encode: no piece for the bytes ", hex, " at byte ", offset,
           " of the text, and this vocabulary has no <0xNN> byte pieces to fall back on");
    }
    for (const char c : cp) ids.push_back(static_cast<int>(static_cast<unsigned char>(c)) + 3);
  }

  /// run.c's merge loop: repeatedly merge the adjacent pair whose
  /// concatenation is the best-scoring piece, leftmost on ties (`detail::merge_pairs`).
  void merge(std::vector<int>& ids) const {
    std::string pair;
    detail::merge_pairs(ids, [&](int left, int right) -> std::optional<detail::merge_offer<float, int>> {
      pair.assign(pieces_[static_cast<std::size_t>(left)]);
      pair.append(pieces_[static_cast<std::size_t>(right)]);
      const auto id = find(pair);
      if (!id) return std::nullopt;
      const float s = scores_[static_cast<std::size_t>(*id)];
      if (!(s > -1e10F)) return std::nullopt;  // run.c's floor; NaN never
      return detail::merge_offer<float, int>{s, *id};
    });
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::size_t max_token_length_ = 0;
  std::unordered_map<std::string, int, string_hash, std::equal_to<>> ids_;
  bool has_byte_pieces_ = false;
};

}  // namespace ternq::io
