// SPDX-License-Identifier: MIT
// A pre-tokenizer's splitting regex, compiled by PCRE2 with Unicode properties, and the pieces it cuts text into.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <ternq/core/error.hpp>

namespace ternq::tokenizers {

/// The offset of the first byte of `text` that does not start a well-formed UTF-8 character (an unexpected
/// continuation byte, a truncated sequence, an overlong form, a surrogate, a code point above U+10FFFF), or
/// `text.size()` when it is all well-formed: what PCRE2's UTF mode requires.
inline std::size_t utf8_error_offset(std::string_view text) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  for (std::size_t i = 0; i < text.size();) {
    const unsigned b = byte(i);
    std::size_t n = 0;
    unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      n = 2;
      if (b == 0xE0) lo = 0xA0;  // no overlong forms
      if (b == 0xED) hi = 0x9F;  // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      n = 3;
      if (b == 0xF0) lo = 0x90;  // no overlong forms
      if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (text.size() - i <= n) return i;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return i;
    for (std::size_t k = 2; k <= n; ++k) {
      if ((byte(i + k) & 0xC0U) != 0x80U) return i;
    }
    i += n + 1;
  }
  return text.size();
}

/// Throws `[ternq.invalid_argument]` naming the offset when `text` is not well-formed UTF-8.
inline void require_utf8(std::string_view text) {
  const std::size_t bad = utf8_error_offset(text);
  if (bad < text.size()) {
    fail(errc::invalid_argument, "the text is not valid UTF-8: byte ", bad, " (0x", std::hex,
         static_cast<unsigned>(static_cast<unsigned char>(text[bad])), std::dec, ") does not start a character");
  }
}

/// A compiled pattern (UTF-8, Unicode properties: `\p{L}`, and `\s` and `\d` over all of Unicode, as the
/// Oniguruma engine of Hugging Face's tokenizers reads them). Splitting is the "Isolated" behaviour of a
/// `Split` pre-tokenizer: every match is a piece, and so is every stretch of text between matches.
class split_regex {
 public:
  /// Compiles `pattern`; `literal`: the pattern is a plain string to split on. A pattern PCRE2 rejects is
  /// `[ternq.invalid_argument]` with PCRE2's message and the offset.
  explicit split_regex(std::string pattern, bool literal = false) : pattern_(std::move(pattern)) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    const std::uint32_t flags = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0U);
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(), flags, &error, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail(errc::invalid_argument, "pre-tokenizer regex '", pattern_, "': ", reinterpret_cast<const char*>(message),
           " at offset ", offset);
    }
    code_.reset(code, pcre2_code_free);
    // The JIT only makes matching faster; where it is unavailable the interpreter gives the same matches.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }

  [[nodiscard]] const std::string& pattern() const noexcept { return pattern_; }

  /// Appends the pieces of `text` to `out`, in order: they concatenate to `text`. Text that is not UTF-8 is
  /// `[ternq.invalid_argument]` (checked once here, so that PCRE2 need not check it on every search).
  void split(std::string_view text, std::vector<std::string_view>& out) const {
    require_utf8(text);
    const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), pcre2_match_data_free);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t at = 0;    // where the next search starts
    std::size_t kept = 0;  // the end of the last piece
    const std::uint32_t options = PCRE2_NO_UTF_CHECK;
    while (at <= text.size()) {
      const int rc = pcre2_match(code_.get(), subject, text.size(), at, options, match.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        fail(errc::invalid_argument, "pre-tokenizer regex '", pattern_,
             "' on the text: ", reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* v = pcre2_get_ovector_pointer(match.get());
      const std::size_t start = v[0];
      const std::size_t end = v[1];
      if (end == start) {
        // An empty match cuts nothing; search again one character further on.
        if (start >= text.size()) break;
        at = start + 1;
        while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0U) == 0x80U) ++at;
        continue;
      }
      if (start > kept) out.push_back(text.substr(kept, start - kept));
      out.push_back(text.substr(start, end - start));
      kept = at = end;
    }
    if (kept < text.size()) out.push_back(text.substr(kept));
  }

 private:
  std::string pattern_;
  std::shared_ptr<pcre2_code> code_;
};

}  // namespace ternq::tokenizers
