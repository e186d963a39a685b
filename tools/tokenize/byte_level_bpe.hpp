// SPDX-License-Identifier: MIT
// Byte-level BPE (GPT-2, Llama-3, Qwen2/3, SmolLM): added tokens, pre-tokenizer regexes, bytes as characters, merges.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ternq/core/error.hpp>
#include <ternq/io/detail/pair_merge.hpp>
#include <ternq/io/gguf_llama.hpp>

#include "tokenize/nfc.hpp"
#include "tokenize/pre_tokenizers.hpp"
#include "tokenize/regex.hpp"
#include "tokenize/tokenizer.hpp"

namespace ternq::tokenizers {

/// The character GPT-2's byte-level alphabet writes for each byte, as UTF-8: the printable bytes `!`..`~`,
/// `¡`..`¬` and `®`..`ÿ` stand for themselves, the other 68 for U+0100 onwards in byte order (so a space is
/// `Ġ`, U+0120, and a newline `Ċ`, U+010A). Vocabulary and merges spell tokens in this alphabet.
inline const std::array<std::string, 256>& byte_characters() {
  static const std::array<std::string, 256> chars = [] {
    std::array<std::string, 256> out;
    unsigned next = 256;
    for (unsigned b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const unsigned cp = printable ? b : next++;
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {  // every code point here is below U+0800: two UTF-8 bytes
        s += static_cast<char>(0xC0U | (cp >> 6U));
        s += static_cast<char>(0x80U | (cp & 0x3FU));
      }
      out[b] = std::move(s);
    }
    return out;
  }();
  return chars;
}

/// A token matched in the raw text before anything else (`<|begin_of_text|>`, `<|im_start|>`, ...).
struct added_token {
  std::string content;  ///< the text it matches, as written (not in the byte alphabet)
  std::int32_t id = 0;
  bool special = false;  ///< a control token (GGUF type 3); otherwise user-defined (type 4)
  bool lstrip = false;   ///< whitespace before it is dropped
  bool rstrip = false;   ///< whitespace after it is dropped
};

/// Everything a byte-level BPE tokenizer is made of, however it was stored.
struct bpe_definition {
  std::string source;               ///< what it was read from, for messages
  std::vector<std::string> tokens;  ///< the model's tokens by id, in the byte alphabet; "" where an id has none
  std::vector<std::pair<std::string, std::string>> merges;  ///< best first
  std::vector<added_token> added;
  std::vector<std::string> patterns;  ///< the pre-tokenizer's regexes, applied in turn
  bool nfc = false;                   ///< the text is put in Unicode NFC first
  bool ignore_merges = false;         ///< a piece that is a token is taken whole, unmerged (Llama-3)
  std::vector<std::int32_t> prefix;   ///< ids put before every text (BOS)
  std::vector<std::int32_t> suffix;   ///< ids put after every text
  std::optional<std::int32_t> bos, eos, unk, pad;
};

/// A byte-level BPE tokenizer, encoding as Hugging Face's tokenizers do: the text is cut at added tokens
/// (leftmost, then longest), the rest normalized (NFC when asked) and cut by each pre-tokenizer regex in turn;
/// each piece's bytes become characters of the byte alphabet, and the adjacent pair with the best-ranked merge
/// is merged (the leftmost among equals) until no pair has a merge. The prefix and suffix ids go around it all.
class byte_level_bpe final : public tokenizer {
 public:
  explicit byte_level_bpe(bpe_definition d) : d_(std::move(d)) {
    const auto bad = [&](const auto&... what) { fail(errc::corrupt_file, d_.source, ": ", what...); };
    vocab_size_ = d_.tokens.size();
    for (std::size_t id = 0; id < d_.tokens.size(); ++id) {
      if (!d_.tokens[id].empty()) ids_.emplace(d_.tokens[id], static_cast<std::int32_t>(id));
    }
    for (const added_token& a : d_.added) {
      if (a.id < 0) bad("added token '", a.content, "' has the negative id ", a.id);
      if (a.content.empty()) bad("added token ", a.id, " is empty");
      vocab_size_ = std::max(vocab_size_, static_cast<std::size_t>(a.id) + 1);
    }
    for (std::size_t i = 0; i < d_.added.size(); ++i) {
      by_first_byte_[static_cast<unsigned char>(d_.added[i].content[0])].push_back(i);
    }
    for (auto& candidates : by_first_byte_) {  // the longest first, so the first that matches is the longest
      std::stable_sort(candidates.begin(), candidates.end(), [&](std::size_t a, std::size_t b) {
        return d_.added[a].content.size() > d_.added[b].content.size();
      });
    }
    for (std::size_t rank = 0; rank < d_.merges.size(); ++rank) {
      const auto& [left, right] = d_.merges[rank];
      const auto l = ids_.find(left);
      const auto r = ids_.find(right);
      const auto m = ids_.find(left + right);
      if (l == ids_.end() || r == ids_.end() || m == ids_.end()) {
        bad("merge ", rank, " ('", left, "' '", right, "') names a token the vocabulary lacks");
      }
      // A repeated pair keeps its first (best) rank.
      merges_.emplace(pair_key(l->second, r->second), merge{static_cast<std::int32_t>(rank), m->second});
    }
    for (unsigned b = 0; b < 256; ++b) {
      const auto it = ids_.find(byte_characters()[b]);
      byte_ids_[b] = it == ids_.end() ? -1 : it->second;
    }
    for (const std::string& p : d_.patterns) regexes_.emplace_back(p);
    for (const auto& id : {d_.bos, d_.eos, d_.unk, d_.pad}) {
      if (id && (*id < 0 || static_cast<std::size_t>(*id) >= vocab_size_)) {
        bad("special token id ", *id, " is outside the vocabulary of ", vocab_size_);
      }
    }
    for (const std::int32_t id : d_.prefix) {
      if (id < 0 || static_cast<std::size_t>(id) >= vocab_size_) bad("the post-processor adds the unknown id ", id);
    }
    for (const std::int32_t id : d_.suffix) {
      if (id < 0 || static_cast<std::size_t>(id) >= vocab_size_) bad("the post-processor adds the unknown id ", id);
    }
  }

  [[nodiscard]] std::string describe() const override {
    const auto name = pre_tokenizer_name(d_.patterns);
    return "byte-level BPE (" + std::string(name ? *name : "unrecognized") + " pre-tokenizer)";
  }
  [[nodiscard]] std::size_t vocab_size() const override { return vocab_size_; }
  [[nodiscard]] std::optional<std::int32_t> bos_id() const override { return d_.bos; }
  [[nodiscard]] std::optional<std::int32_t> eos_id() const override { return d_.eos; }
  [[nodiscard]] bool encodes_every_character() const override {
    return d_.unk.has_value() || std::find(byte_ids_.begin(), byte_ids_.end(), -1) == byte_ids_.end();
  }
  [[nodiscard]] const bpe_definition& definition() const noexcept { return d_; }

  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text) const override {
    require_utf8(text);
    std::vector<std::int32_t> ids(d_.prefix.begin(), d_.prefix.end());
    for (const section& s : sections(text)) {
      if (s.added != none) {
        ids.push_back(d_.added[s.added].id);
        continue;
      }
      if (s.text.empty()) continue;
      const std::string normalized = d_.nfc ? nfc(s.text) : std::string(s.text);
      std::vector<std::string_view> pieces{normalized};
      std::vector<std::string_view> next;
      for (const split_regex& r : regexes_) {
        next.clear();
        for (const std::string_view p : pieces) r.split(p, next);
        pieces.swap(next);
      }
      for (const std::string_view p : pieces) encode_piece(p, ids);
    }
    ids.insert(ids.end(), d_.suffix.begin(), d_.suffix.end());
    return ids;
  }

  /// The "gpt2" vocabulary llama.cpp reads: the model's tokens (type normal), the added tokens' texts (control
  /// when special, else user-defined), `[PAD<id>]` (unused) for ids without a token, the merges, and the
  /// pre-tokenizer by name. A pre-tokenizer llama.cpp has no name for is `[ternq.unsupported]`: llama.cpp would
  /// split the text with other regexes than the model was trained with.
  [[nodiscard]] io::llama_vocab gguf_vocab() const override {
    const auto pre = pre_tokenizer_name(d_.patterns);
    if (!pre) {
      std::string patterns;
      for (const auto& p : d_.patterns) patterns += (patterns.empty() ? "'" : ", '") + p + "'";
      fail(errc::unsupported, d_.source, ": the pre-tokenizer (", patterns.empty() ? "none" : patterns,
           ") is none that llama.cpp knows by name (", known_pre_tokenizer_names(),
           "), so its GGUF vocabulary would be split differently");
    }
    io::llama_vocab v;
    v.model = "gpt2";
    v.pre = std::string(*pre);
    v.tokens.resize(vocab_size_);
    v.token_types.assign(vocab_size_, io::token_type::unused);
    for (std::size_t id = 0; id < d_.tokens.size(); ++id) {
      if (d_.tokens[id].empty()) continue;
      v.tokens[id] = d_.tokens[id];
      v.token_types[id] = io::token_type::normal;
    }
    for (const added_token& a : d_.added) {
      const auto id = static_cast<std::size_t>(a.id);
      v.tokens[id] = a.content;
      v.token_types[id] = a.special ? io::token_type::control : io::token_type::user_defined;
    }
    for (std::size_t id = 0; id < vocab_size_; ++id) {
      if (v.tokens[id].empty()) v.tokens[id] = ternq::detail::concat("[PAD", id, "]");
    }
    v.merges.reserve(d_.merges.size());
    for (const auto& [left, right] : d_.merges) v.merges.push_back(left + " " + right);
    const auto u32 = [](std::optional<std::int32_t> id) {
      return id ? std::optional<std::uint32_t>(static_cast<std::uint32_t>(*id)) : std::nullopt;
    };
    v.bos_id = u32(d_.bos);
    v.eos_id = u32(d_.eos);
    v.unk_id = u32(d_.unk);
    v.pad_id = u32(d_.pad);
    v.add_bos = d_.bos && !d_.prefix.empty() && d_.prefix.front() == *d_.bos;
    return v;
  }

 private:
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  struct merge {
    std::int32_t rank;
    std::int32_t id;
  };
  /// A stretch of the text: an added token (its index) or text to be tokenized (`added == none`).
  struct section {
    std::string_view text;
    std::size_t added;
  };

  static std::uint64_t pair_key(std::int32_t left, std::int32_t right) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32U) | static_cast<std::uint32_t>(right);
  }
  static bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }

  /// `text` cut at its added tokens, leftmost first and then longest; whitespace next to a token that strips it
  /// is removed from the neighbouring text.
  [[nodiscard]] std::vector<section> sections(std::string_view text) const {
    std::vector<section> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size();) {
      std::size_t found = none;
      for (const std::size_t a : by_first_byte_[static_cast<unsigned char>(text[i])]) {
        if (text.substr(i).starts_with(d_.added[a].content)) {
          found = a;
          break;
        }
      }
      if (found == none) {
        ++i;
        continue;
      }
      if (i > start) out.push_back({text.substr(start, i - start), none});
      out.push_back({d_.added[found].content, found});
      i += d_.added[found].content.size();
      start = i;
    }
    if (start < text.size()) out.push_back({text.substr(start), none});
    for (std::size_t k = 0; k < out.size(); ++k) {
      if (out[k].added == none) continue;
      const added_token& a = d_.added[out[k].added];
      if (a.lstrip && k > 0 && out[k - 1].added == none) {
        std::string_view& t = out[k - 1].text;
        while (!t.empty() && is_space(t.back())) t.remove_suffix(1);
      }
      if (a.rstrip && k + 1 < out.size() && out[k + 1].added == none) {
        std::string_view& t = out[k + 1].text;
        while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
      }
    }
    return out;
  }

  /// Appends the ids of one pre-tokenized piece.
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& ids) const {
    if (d_.ignore_merges) {
      std::string spelled;
      for (const char c : piece) spelled += byte_characters()[static_cast<unsigned char>(c)];
      if (const auto it = ids_.find(spelled); it != ids_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    std::vector<std::int32_t> symbols(piece.size());
    for (std::size_t i = 0; i < piece.size(); ++i) {
      const auto b = static_cast<unsigned char>(piece[i]);
      std::int32_t id = byte_ids_[b];
      if (id < 0) {
        if (!d_.unk) {
          fail(errc::unsupported, d_.source, ": the byte ", static_cast<unsigned>(b),
               " has no token and there is no unknown token");
        }
        id = *d_.unk;
      }
      symbols[i] = id;
    }
    // The best (lowest) rank first, then the leftmost.
    io::detail::merge_pairs(
        symbols,
        [&](std::int32_t left,
            std::int32_t right) -> std::optional<io::detail::merge_offer<std::int64_t, std::int32_t>> {
          const auto it = merges_.find(pair_key(left, right));
          if (it == merges_.end()) return std::nullopt;
          return io::detail::merge_offer<std::int64_t, std::int32_t>{-static_cast<std::int64_t>(it->second.rank),
                                                                     it->second.id};
        });
    ids.insert(ids.end(), symbols.begin(), symbols.end());
  }

  bpe_definition d_;
  std::size_t vocab_size_ = 0;
  std::unordered_map<std::string, std::int32_t> ids_;
  std::unordered_map<std::uint64_t, merge> merges_;
  std::array<std::int32_t, 256> byte_ids_{};
  std::array<std::vector<std::size_t>, 256> by_first_byte_{};
  std::vector<split_regex> regexes_;
};

}  // namespace ternq::tokenizers
