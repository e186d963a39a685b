// SPDX-License-Identifier: MIT
// A pre-tokenizer's splitting regex, compiled by PCRE2 with Unicode properties, and the pieces it cuts text into.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <ternq/core/error.hpp>

namespace ternq::tokenizers {

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

  /// Appends the pieces of `text` to `out`, in order: they concatenate to `text`. `text` must be valid UTF-8
  /// (PCRE2 checks it; invalid input is `[ternq.invalid_argument]`).
  void split(std::string_view text, std::vector<std::string_view>& out) const {
    const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), pcre2_match_data_free);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t at = 0;    // where the next search starts
    std::size_t kept = 0;  // the end of the last piece
    std::uint32_t options = 0;
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
        options = PCRE2_NO_UTF_CHECK;
        continue;
      }
      if (start > kept) out.push_back(text.substr(kept, start - kept));
      out.push_back(text.substr(start, end - start));
      kept = at = end;
      options = PCRE2_NO_UTF_CHECK;  // checked once, on the first search
    }
    if (kept < text.size()) out.push_back(text.substr(kept));
  }

 private:
  std::string pattern_;
  std::shared_ptr<pcre2_code> code_;
};

}  // namespace ternq::tokenizers
