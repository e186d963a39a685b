// SPDX-License-Identifier: MIT
// Unicode NFC normalization (ICU), the normalizer of Qwen2's and Qwen3's tokenizer.json.
#pragma once

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <string>
#include <string_view>
#include <vector>

#include <ternq/core/error.hpp>

namespace ternq::tokenizers {

/// `text` (UTF-8) in Unicode Normalization Form C. Text already in NFC, as almost all text is, comes back
/// unchanged without a conversion.
inline std::string nfc(std::string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* n = unorm2_getNFCInstance(&status);
  if (U_FAILURE(status)) fail(errc::unsupported, "ICU's NFC normalizer is unavailable: ", u_errorName(status));
  // UTF-8 to UTF-16, ICU's working form.
  int32_t length = 0;
  status = U_ZERO_ERROR;
  u_strFromUTF8(nullptr, 0, &length, text.data(), static_cast<int32_t>(text.size()), &status);
  if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status)) {
    fail(errc::invalid_argument, "NFC normalization: the text is not valid UTF-8 (", u_errorName(status), ")");
  }
  std::vector<UChar> utf16(static_cast<std::size_t>(length) + 1);
  status = U_ZERO_ERROR;
  u_strFromUTF8(utf16.data(), length + 1, nullptr, text.data(), static_cast<int32_t>(text.size()), &status);
  if (U_FAILURE(status)) {
    fail(errc::invalid_argument, "NFC normalization: the text is not valid UTF-8 (", u_errorName(status), ")");
  }
  status = U_ZERO_ERROR;
  if (unorm2_isNormalized(n, utf16.data(), length, &status) && U_SUCCESS(status)) return std::string(text);
  // The normalized form may be longer (a decomposition that does not recompose): ask for its length first.
  status = U_ZERO_ERROR;
  const int32_t out_length = unorm2_normalize(n, utf16.data(), length, nullptr, 0, &status);
  std::vector<UChar> normalized(static_cast<std::size_t>(out_length) + 1);
  status = U_ZERO_ERROR;
  unorm2_normalize(n, utf16.data(), length, normalized.data(), out_length + 1, &status);
  if (U_FAILURE(status)) fail(errc::invalid_argument, "NFC normalization failed: ", u_errorName(status));
  int32_t bytes = 0;
  status = U_ZERO_ERROR;
  u_strToUTF8(nullptr, 0, &bytes, normalized.data(), out_length, &status);
  std::string out(static_cast<std::size_t>(bytes), '\0');
  status = U_ZERO_ERROR;
  u_strToUTF8(out.data(), bytes, nullptr, normalized.data(), out_length, &status);  // no terminator: a warning
  if (U_FAILURE(status)) fail(errc::invalid_argument, "NFC normalization: ", u_errorName(status));
  return out;
}

}  // namespace ternq::tokenizers
