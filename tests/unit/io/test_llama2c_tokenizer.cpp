// SPDX-License-Identifier: MIT
// llama2.c tokenizer: run.c's encoding (checked against a plain transcription of its loop), decoding, hostile files.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "ternq/io/llama2c_tokenizer.hpp"

using ternq::io::encode_options;
using ternq::io::llama2c_tokenizer;
using ternq::testing::temp_dir;
using ids = std::vector<int>;

namespace {

/// run.c's encode transcribed literally: rescan every pair after each merge. The reference for `encode`.
ids rescanning_encode(const llama2c_tokenizer& t, std::string_view text) {
  ids out{llama2c_tokenizer::bos_id};
  std::vector<std::string> units;
  if (!text.empty()) units.emplace_back(" ");
  std::string cp;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0U) != 0x80U) cp.clear();
    cp += text[i];
    const bool more = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0U) == 0x80U;
    if (more && cp.size() < 4) continue;
    units.push_back(cp);
    cp.clear();
  }
  for (const auto& u : units) {
    if (const auto id = t.find(u)) {
      out.push_back(*id);
    } else {
      for (const char c : u) out.push_back(static_cast<unsigned char>(c) + 3);
    }
  }
  for (;;) {
    float best = -1e10F;
    int best_id = -1;
    std::size_t best_at = 0;
    for (std::size_t i = 0; i + 1 < out.size(); ++i) {
      const auto id = t.find(std::string(t.piece(out[i])) + std::string(t.piece(out[i + 1])));
      if (id && t.score(*id) > best) {
        best = t.score(*id);
        best_id = *id;
        best_at = i;
      }
    }
    if (best_id < 0) break;
    out[best_at] = best_id;
    out.erase(out.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
  }
  return out;
}

/// <unk>, BOS, EOS, then the given pieces.
llama2c_tokenizer tiny(std::vector<std::pair<std::string, float>> pieces) {
  std::vector<std::string> p{"<unk>", "\n<s>\n", "\n</s>\n"};
  std::vector<float> s{0, 0, 0};
  for (auto& [piece, score] : pieces) {
    p.push_back(piece);
    s.push_back(score);
  }
  return {p, s};
}

/// The first `n` bytes of `text`, cut back to a UTF-8 code point boundary.
std::string head(const std::string& text, std::size_t n) {
  n = std::min(n, text.size());
  while (n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0U) == 0x80U) --n;
  return text.substr(0, n);
}

std::string open_error(const temp_dir& dir, const std::string& bytes) {
  const auto path = dir / "tok.bin";
  ternq::testing::write_file(path, bytes);
  try {
    const llama2c_tokenizer t(path);
    return "(opened)";
  } catch (const ternq::error& e) {
    std::string what = e.what();
    const std::string prefix = "llama2c tokenizer '" + path.string() + "'";
    const auto at = what.find(prefix);
    return at == std::string::npos ? what : what.replace(at, prefix.size(), "FILE");
  }
}

std::string i32(std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  return {static_cast<char>(u & 0xFFU), static_cast<char>((u >> 8U) & 0xFFU), static_cast<char>((u >> 16U) & 0xFFU),
          static_cast<char>(u >> 24U)};
}
/// One file entry: score 0, a length (the piece's own unless given), the bytes.
std::string entry(std::string_view piece, std::optional<std::int32_t> len = std::nullopt) {
  return std::string(4, '\0') + i32(len.value_or(static_cast<std::int32_t>(piece.size()))) + std::string(piece);
}

}  // namespace

TEST_CASE("collapse_whitespace turns every whitespace run into one space and keeps the rest") {
  using ternq::io::collapse_whitespace;
  CHECK(collapse_whitespace("a \t\n b\n\nc") == "a b c");
  CHECK(collapse_whitespace("\n\nOnce upon\r\n") == " Once upon ");
  CHECK(collapse_whitespace("") == "");
  CHECK(collapse_whitespace("caf\xc3\xa9  \xe2\x80\x9cx\xe2\x80\x9d") == "caf\xc3\xa9 \xe2\x80\x9cx\xe2\x80\x9d");
}

TEST_CASE("encode merges the best-scoring pair first, leftmost on ties, and adds BOS, dummy prefix and EOS") {
  const auto t = tiny({{" ", 0}, {"a", 0}, {"b", 0}, {"c", 0}, {"ab", -2}, {"bc", -1}, {" a", -5}, {"aa", -1}});
  // ids: ' '=3 a=4 b=5 c=6 ab=7 bc=8 ' a'=9 aa=10
  // "abc": (a,b) -> ab scores -2, (b,c) -> bc scores -1: bc wins; then ' '+a -> ' a'; ' a'+bc is no piece.
  CHECK(t.encode("abc") == ids{1, 9, 8});
  CHECK(t.encode("abc", {.bos = false}) == ids{9, 8});
  CHECK(t.encode("abc", {.bos = false, .dummy_prefix = false}) == ids{4, 8});
  CHECK(t.encode("abc", {.eos = true}) == ids{1, 9, 8, 2});
  // Flip the two scores and the other pair wins.
  const auto u = tiny({{" ", 0}, {"a", 0}, {"b", 0}, {"c", 0}, {"ab", -1}, {"bc", -2}});
  CHECK(u.encode("abc", {.dummy_prefix = false}) == ids{1, 7, 6});
  // "aaa": two equal candidates; the left one merges, leaving (aa, a).
  CHECK(t.encode("aaa", {.bos = false, .dummy_prefix = false}) == ids{10, 4});
  // No dummy prefix for empty text; BOS alone.
  CHECK(t.encode("") == ids{1});
  CHECK(t.encode("", {.bos = false}).empty());
  // Scores at or below run.c's floor of -1e10 never merge.
  const auto floor = tiny({{"a", 0}, {"b", 0}, {"ab", -1e10F}});
  CHECK(floor.encode("ab", {.dummy_prefix = false}) == ids{1, 3, 4});
}

TEST_CASE("encode without byte pieces names the character it cannot encode; decode rejects unknown ids") {
  const auto t = tiny({{" ", 0}, {"a", 0}});
  CHECK_FALSE(t.has_byte_pieces());
  CHECK_THROWS_WITH_AS(static_cast<void>(t.encode("a\xe2\x9c\x93")),
                       "[ternq.unsupported] llama2c_tokenizer::encode: no piece for the bytes e2 9c 93 at byte 1 of "
                       "the text, and this vocabulary has no <0xNN> byte pieces to fall back on",
                       ternq::error);
  const ids bad{1, 3, 5};
  CHECK_THROWS_WITH_AS(static_cast<void>(t.decode(bad)),
                       "[ternq.out_of_bounds] llama2c_tokenizer::decode: token 5 at position 2 is outside the "
                       "vocabulary of 5 pieces",
                       ternq::error);
  CHECK_THROWS_WITH_AS(static_cast<void>(t.piece(-1)),
                       "[ternq.out_of_bounds] llama2c_tokenizer::piece: id -1 is outside the vocabulary of 5 pieces",
                       ternq::error);
  CHECK_THROWS_WITH_AS((llama2c_tokenizer{{"<unk>", "<s>"}, {0, 0}}),
                       "[ternq.invalid_argument] llama2c_tokenizer: 2 pieces; a llama2.c vocabulary starts with "
                       "<unk>, BOS and EOS",
                       ternq::error);
}

TEST_CASE("decode strips the dummy prefix after BOS only, turns byte pieces into bytes, and skips BOS/EOS") {
  std::vector<std::pair<std::string, float>> pieces;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.emplace_back(name, 0.0F);
  }
  pieces.emplace_back(" x", -1.0F);    // id 259
  pieces.emplace_back("<0x4", -2.0F);  // id 260: not a byte piece (run.c's sscanf would take it for one)
  const auto t = tiny(pieces);
  CHECK(t.has_byte_pieces());
  CHECK(t.decode(ids{1, 259, 259}) == "x x");
  CHECK(t.decode(ids{259, 1, 259, 2}) == " xx");
  CHECK(t.decode(ids{1, 3 + 0xE2, 3 + 0x9C, 3 + 0x93, 260}) == "\xe2\x9c\x93<0x4");
  CHECK(t.decode_piece(1, 3 + 0x20) == " ");  // a byte piece is not a leading-space piece
}

TEST_CASE("encode matches run.c's rescanning loop on random text") {
  // A vocabulary with overlapping merges and tied scores, byte pieces included.
  std::vector<std::pair<std::string, float>> pieces;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.emplace_back(name, 0.0F);
  }
  const char* extra[] = {" ",  "a",   "b",  "c",   "ab", "bc",  "ca",      "abc",
                         " a", " ab", "aa", "aaa", "cc", "bca", "\xc3\xa9"};
  float s = 0;
  for (const char* e : extra) pieces.emplace_back(e, -std::floor((s += 1) / 3));  // ties in threes
  const auto t = tiny(pieces);
  std::mt19937 rng(7);
  const std::vector<std::string> alphabet{"a", "b", "c", " ", "\n", "\xc3\xa9", "\xe2\x9c\x93", "d"};
  for (int trial = 0; trial < 400; ++trial) {
    std::string text;
    const auto len = rng() % 40;
    for (std::size_t k = 0; k < len; ++k) text += alphabet[rng() % alphabet.size()];
    CAPTURE(text);
    const ids got = t.encode(text);
    REQUIRE(got == rescanning_encode(t, text));
    CHECK(t.decode(got) == text);
  }
}

TEST_CASE("hostile tokenizer files fail as corrupt_file naming the piece") {
  const temp_dir dir("io-test");
  const std::string specials = entry("<unk>") + entry("\n<s>\n") + entry("\n</s>\n");
  CHECK(open_error(dir, "ab") == "[ternq.corrupt_file] FILE: 2 bytes are too few for max_token_length");
  CHECK(open_error(dir, i32(0) + specials) == "[ternq.corrupt_file] FILE: max_token_length 0 is not positive");
  CHECK(open_error(dir, i32(6) + specials + "abc") ==
        "[ternq.corrupt_file] FILE: piece 3 at byte 44: 3 bytes are too few for its score and length");
  CHECK(open_error(dir, i32(6) + specials + entry("x", -2)) ==
        "[ternq.corrupt_file] FILE: piece 3 at byte 44: length -2 is outside [0, max_token_length 6]");
  CHECK(open_error(dir, i32(6) + specials + entry("abcdefg")) ==
        "[ternq.corrupt_file] FILE: piece 3 at byte 44: length 7 is outside [0, max_token_length 6]");
  CHECK(open_error(dir, i32(6) + specials + entry("abc", 5)) ==
        "[ternq.corrupt_file] FILE: piece 3 at byte 44: its 5 bytes run past the end of the file");
  CHECK(open_error(dir, i32(6) + entry("<unk>")) ==
        "[ternq.corrupt_file] FILE: 1 pieces; a llama2.c vocabulary starts with <unk>, BOS and EOS");
  CHECK(open_error(dir, i32(6) + specials + entry("")) == "(opened)");
  const auto path = dir / "tok.bin";
  CHECK_THROWS_WITH_AS(
      llama2c_tokenizer(path, 5),
      ("[ternq.shape_mismatch] llama2c tokenizer '" + path.string() + "': 4 pieces, the model's vocab_size is 5")
          .c_str(),
      ternq::error);
}

TEST_CASE("the shared tokenizers: sizes, exact ids, byte fallback and decode(encode(text)) on 20 KB of TinyStories") {
  const auto shared = ternq::testing::shared_dir();
  if (shared.empty()) {
    MESSAGE("skipped: no shared models at " TERNQ_SHARED_DIR);
    return;
  }
  const llama2c_tokenizer tok512(shared / "models" / "tok512.bin", 512);
  const llama2c_tokenizer tok105(shared / "models" / "babyllama_tok105.bin", 105);
  const llama2c_tokenizer tok361(shared / "models" / "babyllama_tok361_reconstructed.bin", 361);
  CHECK(tok512.max_token_length() == 7);
  CHECK(tok105.max_token_length() == 6);
  CHECK(tok512.has_byte_pieces());
  CHECK_FALSE(tok105.has_byte_pieces());
  CHECK(tok361.has_byte_pieces());
  CHECK(tok512.piece(1) == "\n<s>\n");
  CHECK(tok512.find(" ") == 410);
  CHECK(tok105.find(" ") == 3);
  CHECK(tok361.find(" ") == 259);

  // By hand from tok512's scores: in "the", ' '+'t' -> ' t' (score 0) beats 'h'+'e' -> 'he' (-1); then 'he'
  // (-1) beats ' t'+'h' -> ' th' (-49); then ' t'+'he' -> ' the' (id 265).
  CHECK(tok512.encode("the") == ids{1, 265});
  // "Lily": 'il' (-31) first, then ' L' (-48), then 'ily' (-51), then ' Lily' (id 317, -58).
  CHECK(tok512.encode("Lily") == ids{1, 317});
  // A newline has no piece: byte fallback to <0x0A> (id 10 + 3); ' a' (261) merges, 'b' (430) stays.
  CHECK(tok512.encode("a\nb") == ids{1, 261, 13, 430});
  // é has its own piece (485); the check mark falls back to its three UTF-8 bytes + 3.
  CHECK(tok512.encode("\xc3\xa9") == ids{1, 410, 485});
  CHECK(tok512.encode("\xe2\x9c\x93") == ids{1, 410, 0xE2 + 3, 0x9C + 3, 0x93 + 3});
  CHECK(tok361.encode("\xe2\x9c\x93 \xc3\xa9")[2] == 0xE2 + 3);
  // Character-level, ids 3 + rank by frequency: ' ' 3, T 27, h 8, e 4, c 22, a 5, t 6, '.' 19.
  CHECK(tok105.encode("The cat.") == ids{1, 3, 27, 8, 4, 3, 22, 5, 6, 19});

  const std::string non_ascii =
      "Caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82!\n\tend";
  for (const auto* t : {&tok512, &tok361}) CHECK(t->decode(t->encode(non_ascii)) == non_ascii);
  CHECK_THROWS_WITH_AS(static_cast<void>(tok105.encode("a\nb")),
                       "[ternq.unsupported] llama2c_tokenizer::encode: no piece for the bytes 0a at byte 1 of the "
                       "text, and this vocabulary has no <0xNN> byte pieces to fall back on",
                       ternq::error);

  const std::string text =
      head(ternq::testing::read_file(shared / "text" / "tinystories_validation_head.txt"), 20 * 1024);
  REQUIRE(text.size() > 20000);
  const ids raw = tok512.encode(text);
  CHECK(tok512.decode(raw) == text);
  CHECK(raw.size() < text.size() / 2);  // merges happened: a few characters per token
  const std::string collapsed = ternq::io::collapse_whitespace(text);
  for (const auto* t : {&tok105, &tok361}) {
    const ids c = t->encode(collapsed);
    // Character-level: BOS, the dummy prefix, then one id per code point (no piece spans two characters).
    std::size_t code_points = 0;
    for (const char ch : collapsed) code_points += (static_cast<unsigned char>(ch) & 0xC0U) != 0x80U ? 1 : 0;
    CHECK(c.size() == 2 + code_points);
    CHECK(t->decode(c) == collapsed);
  }
  // The priority-queue merge agrees with run.c's rescanning loop on real text.
  const std::string start = head(text, 2000);
  CHECK(tok512.encode(start) == rescanning_encode(tok512, start));
}

TEST_CASE("every truncation of a tokenizer file opens with fewer pieces or fails as corrupt_file") {
  const temp_dir dir("io-test");
  const std::string full = i32(6) + entry("<unk>") + entry("\n<s>\n") + entry("\n</s>\n") + entry(" ") + entry("ab");
  const auto path = dir / "cut.bin";
  for (std::size_t n = 0; n < full.size(); ++n) {
    CAPTURE(n);
    ternq::testing::write_file(path, full.substr(0, n));
    try {
      const llama2c_tokenizer t(path);
      CHECK(t.vocab_size() < 5);
      CHECK(t.vocab_size() >= 3);
    } catch (const ternq::error& e) {
      CHECK(e.code() == ternq::errc::corrupt_file);
    }
  }
}
