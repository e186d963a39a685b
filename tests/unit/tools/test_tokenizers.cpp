// SPDX-License-Identifier: MIT
// Tokenizers against independent implementations: byte-level BPE tokenizer.json files of four families against
// @huggingface/tokenizers, a SentencePiece model against SentencePiece; their GGUF vocabularies, read back.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <ternq/io/gguf_reader.hpp>

#include "cli/text_slice.hpp"
#include "llama/gguf_io.hpp"
#include "tokenize/open.hpp"
#include "tokenize/sentencepiece_proto.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::tokenizer_data;

std::string multilingual() { return cli::read_text(tokenizer_data() / "multilingual.txt", 0); }

std::vector<std::int32_t> reference_ids(const std::string& family) {
  return cli::read_token_file(tokenizer_data() / family / "multilingual.ids");
}

/// A random model whose vocabulary is the tokenizer's and `padding` more rows, written with `vocab` as its GGUF.
std::filesystem::path gguf_with(const io::llama_vocab& vocab, std::size_t vocab_size, const tools_test::temp_dir& dir,
                                const std::string& name) {
  const llama::config cfg{.dim = 32,
                          .hidden_dim = 48,
                          .n_layers = 1,
                          .n_heads = 4,
                          .n_kv_heads = 2,
                          .vocab_size = vocab_size,
                          .seq_len = 64};
  const llama::model m = tools_test::random_model(5, cfg);
  const auto path = dir.path() / (name + ".gguf");
  (void)llama::save_gguf(m, {}, {}, &vocab, path, name);
  return path;
}

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct family {
  const char* dir;
  const char* pre;  // tokenizer.ggml.pre
  bool bos;         // the post-processor puts BOS first
};
constexpr family families[] = {
    {"llama3", "llama-bpe", true}, {"qwen2", "qwen2", false}, {"gpt2", "gpt-2", false}, {"smollm", "smollm", false}};

}  // namespace

TEST_CASE("byte-level BPE tokenizer.json: the ids @huggingface/tokenizers gives, for four pre-tokenizer families") {
  const std::string text = multilingual();
  for (const family& f : families) {
    CAPTURE(f.dir);
    const auto tok = tokenizers::open_tokenizer(tokenizer_data() / f.dir / "tokenizer.json");
    const std::vector<std::int32_t> ids = tok->encode(text);
    const std::vector<std::int32_t> expected = reference_ids(f.dir);
    CHECK(ids == expected);
    CHECK(tok->describe() == std::string("byte-level BPE (") + f.pre + " pre-tokenizer)");
    // 256 bytes, 400 merges, then the added tokens.
    CHECK(tok->vocab_size() >= 656 + 1);
    CHECK(tok->encodes_every_character());
    CHECK_FALSE(tok->needs_whitespace_collapse());
    REQUIRE(!ids.empty());
    CHECK((ids.front() == 656) == f.bos);
  }
}

TEST_CASE("the pre-tokenizer regexes cut text as their families do (PCRE2)") {
  const auto cut = [](std::string_view pattern, std::string_view text) {
    std::vector<std::string_view> out;
    tokenizers::split_regex(std::string(pattern)).split(text, out);
    return std::vector<std::string>(out.begin(), out.end());
  };
  using pieces = std::vector<std::string>;
  // Digits: Llama-3 groups by three, Qwen2 splits each, GPT-2 keeps a run with its leading space.
  CHECK(cut(tokenizers::llama3_pattern, "x 1234567") == pieces{"x", " ", "123", "456", "7"});
  CHECK(cut(tokenizers::qwen2_pattern, "1234567").size() == 7);
  CHECK(cut(tokenizers::gpt2_pattern, "x 1234567") == pieces{"x", " 1234567"});
  // Contractions: case-insensitive for Llama-3, lower case only for GPT-2.
  CHECK(cut(tokenizers::llama3_pattern, "DON'T") == pieces{"DON", "'T"});
  CHECK(cut(tokenizers::gpt2_pattern, "DON'T") == pieces{"DON", "'", "T"});
  // Letters of every script, a space before a word, whitespace runs leaving their last space to the next word.
  CHECK(cut(tokenizers::llama3_pattern, "caf\xC3\xA9  \xE6\x97\xA5\xE6\x9C\xAC\n\nok") ==
        pieces{"caf\xC3\xA9", " ", " \xE6\x97\xA5\xE6\x9C\xAC", "\n\n", "ok"});
  // SmolLM's first step isolates digits; what lies between them is kept as pieces too (Isolated).
  CHECK(cut(tokenizers::digit_pattern, "ab12c") == pieces{"ab", "1", "2", "c"});
  CHECK(tokenizers::pre_tokenizer_name(
            {std::string(tokenizers::digit_pattern), std::string(tokenizers::gpt2_pattern)}) == "smollm");
  CHECK_FALSE(tokenizers::pre_tokenizer_name({std::string(tokenizers::gpt2_pattern), "x"}).has_value());
  CHECK_THROWS_WITH_AS(tokenizers::split_regex("(unclosed"), doctest::Contains("pre-tokenizer regex '(unclosed'"),
                       ternq::error);
}

TEST_CASE("NFC for Qwen2 only, and added tokens matched before anything else") {
  const auto qwen2 = tokenizers::open_tokenizer(tokenizer_data() / "qwen2/tokenizer.json");
  const auto gpt2 = tokenizers::open_tokenizer(tokenizer_data() / "gpt2/tokenizer.json");
  // The decomposed "e" + U+0301 becomes "é" (U+00E9) for Qwen2, whose normalizer is NFC.
  CHECK(tokenizers::nfc("e\xCC\x81") == "\xC3\xA9");
  CHECK(tokenizers::nfc("plain") == "plain");
  CHECK(qwen2->encode("e\xCC\x81") == qwen2->encode("\xC3\xA9"));
  CHECK(gpt2->encode("e\xCC\x81") != gpt2->encode("\xC3\xA9"));
  // Text that is not UTF-8 is refused with the offset of the bad byte.
  CHECK_THROWS_WITH_AS(
      (void)qwen2->encode("ok <|im_end|> \xC3("),
      "[ternq.invalid_argument] the text is not valid UTF-8: byte 14 (0xc3) does not start a character", ternq::error);
  CHECK(tokenizers::utf8_error_offset("\xF0\x9F\xA6\x99 caf\xC3\xA9") == 10);  // all well-formed
  CHECK(tokenizers::utf8_error_offset("a\xC0\xAF") == 1);                      // overlong "/"
  CHECK(tokenizers::utf8_error_offset("a\xED\xA0\x80") == 1);                  // a surrogate
  CHECK(tokenizers::utf8_error_offset("ab\xF4\x90\x80\x80") == 2);             // above U+10FFFF
  CHECK(tokenizers::utf8_error_offset("ab\x80") == 2);                         // a lone continuation byte
  CHECK(tokenizers::utf8_error_offset("ab\xE6\x97") == 2);                     // truncated
  const auto ids = qwen2->encode("a<|im_end|>b");
  REQUIRE(ids.size() == 3);
  CHECK(ids[1] == 656 + 2);
}

TEST_CASE("SentencePiece tokenizer.model: the ids SentencePiece gives, BOS first") {
  const auto tok = tokenizers::open_tokenizer(tokenizer_data() / "sentencepiece/tokenizer.model");
  std::vector<std::int32_t> expected = {1};
  const std::vector<std::int32_t> ids = reference_ids("sentencepiece");
  expected.insert(expected.end(), ids.begin(), ids.end());
  CHECK(tok->encode(multilingual()) == expected);
  CHECK(tok->describe() == "SentencePiece");
  CHECK(tok->vocab_size() == 512);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  const io::llama_vocab v = tok->gguf_vocab();
  CHECK(v.model == "llama");
  REQUIRE(v.tokens.size() == 512);
  CHECK(v.tokens[0] == "<unk>");
  CHECK(v.token_types[0] == io::token_type::unknown);
  CHECK(v.token_types[1] == io::token_type::control);
  CHECK(v.tokens[3] == "<0x00>");
  CHECK(v.token_types[3] == io::token_type::byte);
  CHECK(v.token_types[258] == io::token_type::byte);
  CHECK(v.token_types[300] == io::token_type::normal);
  CHECK(v.unk_id == 0u);
  CHECK(v.bos_id == 1u);
  CHECK(v.eos_id == 2u);
  CHECK_FALSE(v.pad_id.has_value());
  CHECK(v.add_bos == true);
}

TEST_CASE(
    "SentencePiece model facts from the ModelProto: algorithm, piece types, dummy prefix; Unigram stays out "
    "of GGUF") {
  const auto bytes = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const auto bpe =
      tokenizers::read_sentencepiece_facts(bytes(tokenizer_data() / "sentencepiece/tokenizer.model"), "bpe");
  CHECK(bpe.model_type == 2);
  CHECK(bpe.add_dummy_prefix);
  REQUIRE(bpe.piece_types.size() == 512);
  CHECK(bpe.piece_types[0] == io::token_type::unknown);
  CHECK(bpe.piece_types[3] == io::token_type::byte);
  const auto uni =
      tokenizers::read_sentencepiece_facts(bytes(tokenizer_data() / "sentencepiece_unigram/tokenizer.model"), "uni");
  CHECK(uni.model_type == 1);
  CHECK_FALSE(uni.add_dummy_prefix);
  REQUIRE(uni.piece_types.size() == 400);
  CHECK(uni.piece_types[3] == io::token_type::user_defined);  // <|user|>
  CHECK(uni.piece_types[4] == io::token_type::byte);
  CHECK_THROWS_WITH_AS(tokenizers::read_sentencepiece_facts(std::string("\x0a\xff"), "cut"),
                       doctest::Contains("[ternq.corrupt_file] cut: a varint runs past the end"), ternq::error);

  // The Unigram model encodes (SentencePiece's ids, BOS first), but gives no "llama" GGUF vocabulary.
  const auto unigram = tokenizers::open_tokenizer(tokenizer_data() / "sentencepiece_unigram/tokenizer.model");
  std::vector<std::int32_t> expected = {1};
  const std::vector<std::int32_t> ids = reference_ids("sentencepiece_unigram");
  expected.insert(expected.end(), ids.begin(), ids.end());
  CHECK(unigram->encode(multilingual()) == expected);
  CHECK_THROWS_WITH_AS((void)unigram->gguf_vocab(), doctest::Contains("a Unigram model; llama.cpp's"), ternq::error);
  // The BPE model's vocabulary says it has the dummy prefix.
  CHECK(tokenizers::open_tokenizer(tokenizer_data() / "sentencepiece/tokenizer.model")->gguf_vocab().add_space_prefix ==
        true);
}

TEST_CASE("a GGUF \"llama\" vocabulary without the space prefix encodes without the dummy prefix") {
  if (!tools_test::have_shared("models/tok512.bin")) return;
  tools_test::temp_dir dir("tools-tokenizer-no-prefix");
  const io::llama2c_tokenizer tok512(tools_test::shared_dir() / "models/tok512.bin");
  io::llama_vocab v = tokenizers::vocab_of(tok512);
  v.add_space_prefix = false;
  const auto gguf = tokenizers::open_tokenizer(gguf_with(v, 512, dir, "no-prefix"));
  const std::string text = multilingual();
  const std::vector<int> expected = tok512.encode(text, {.bos = true, .eos = false, .dummy_prefix = false});
  CHECK(gguf->encode(text) == std::vector<std::int32_t>(expected.begin(), expected.end()));
  CHECK(gguf->encode(text) != tokenizers::llama2c(tok512).encode(text));
}

TEST_CASE("the GGUF vocabulary of a tokenizer.json: llama.cpp's gpt2 keys") {
  for (const family& f : families) {
    CAPTURE(f.dir);
    const auto tok = tokenizers::open_tokenizer(tokenizer_data() / f.dir / "tokenizer.json");
    const io::llama_vocab v = tok->gguf_vocab();
    CHECK(v.model == "gpt2");
    CHECK(v.pre == f.pre);
    REQUIRE(v.tokens.size() == tok->vocab_size());
    REQUIRE(v.merges.size() == 400);
    CHECK(v.merges[0].find(' ') != std::string::npos);
    CHECK(v.tokens[65] == "A");
    CHECK(v.tokens[32] == "\xC4\xA0");  // the space byte is U+0120 "Ġ" in the byte alphabet
    CHECK(v.token_types[0] == io::token_type::normal);
    CHECK(v.tokens[656].starts_with("<|"));
    CHECK(v.token_types[656] == io::token_type::control);
    CHECK(v.scores.empty());
    CHECK(v.add_bos == f.bos);
  }
  const io::llama_vocab llama3 = tokenizers::open_tokenizer(tokenizer_data() / "llama3/tokenizer.json")->gguf_vocab();
  CHECK(llama3.bos_id == 656u);
  CHECK(llama3.eos_id == 657u);
  const io::llama_vocab qwen2 = tokenizers::open_tokenizer(tokenizer_data() / "qwen2/tokenizer.json")->gguf_vocab();
  CHECK_FALSE(qwen2.bos_id.has_value());
  CHECK(qwen2.eos_id == 658u);
  CHECK(qwen2.pad_id == 656u);
}

TEST_CASE("GGUF round trip: each tokenizer's vocabulary, written and read back as a tokenizer, gives the same ids") {
  tools_test::temp_dir dir("tools-tokenizer-gguf");
  const std::string text = multilingual();
  std::vector<std::filesystem::path> sources;
  for (const family& f : families) sources.push_back(tokenizer_data() / f.dir / "tokenizer.json");
  sources.push_back(tokenizer_data() / "sentencepiece/tokenizer.model");
  if (tools_test::have_shared("models/tok512.bin")) sources.push_back(tools_test::shared_dir() / "models/tok512.bin");
  for (const auto& source : sources) {
    CAPTURE(source.string());
    const auto tok = tokenizers::open_tokenizer(source);
    const io::llama_vocab v = tok->gguf_vocab();
    // Three padding rows, as a model's embedding may have (llama.cpp's [PAD<id>] tokens).
    const auto path = gguf_with(v, tok->vocab_size() + 3, dir, source.parent_path().filename().string());
    const auto back = tokenizers::open_tokenizer(path);
    CHECK(back->vocab_size() >= tok->vocab_size());
    CHECK(back->encode(text) == tok->encode(text));
    CHECK(back->bos_id() == tok->bos_id());
    CHECK(back->eos_id() == tok->eos_id());
    // The vocabulary read back is the one written, padded.
    const io::llama_vocab again = back->gguf_vocab();
    const io::llama_vocab padded = io::padded_vocab(v, static_cast<std::uint32_t>(tok->vocab_size() + 3));
    CHECK(again.model == padded.model);
    CHECK(again.pre == padded.pre);
    CHECK(again.tokens == padded.tokens);
    CHECK(again.token_types == padded.token_types);
    CHECK(again.merges == padded.merges);
    CHECK(again.scores == padded.scores);
    CHECK(again.tokens.back() == "[PAD" + std::to_string(tok->vocab_size() + 2) + "]");
    // The model input's own tokenizer is its vocabulary.
    CHECK(tokenizers::model_tokenizer(path)->encode(text) == tok->encode(text));
  }
}

TEST_CASE("the GGUF \"llama\" vocabulary of a SentencePiece model encodes as SentencePiece does (run.c's merges)") {
  // The GGUF holds only pieces, scores and types; ternq encodes it with run.c's algorithm, as llama.cpp's SPM
  // tokenizer does. On the multilingual text (whitespace runs, byte fallback for what the vocabulary lacks) the
  // ids are SentencePiece's.
  tools_test::temp_dir dir("tools-tokenizer-spm-gguf");
  const auto spm = tokenizers::open_tokenizer(tokenizer_data() / "sentencepiece/tokenizer.model");
  const auto path = gguf_with(spm->gguf_vocab(), 512, dir, "spm");
  const auto gguf = tokenizers::open_tokenizer(path);
  CHECK(gguf->describe() == "GGUF \"llama\" vocabulary");
  std::vector<std::int32_t> expected = {1};
  const std::vector<std::int32_t> ids = reference_ids("sentencepiece");
  expected.insert(expected.end(), ids.begin(), ids.end());
  CHECK(gguf->encode(multilingual()) == expected);
}

TEST_CASE("unsupported tokenizers are refused naming what is not supported") {
  tools_test::temp_dir dir("tools-tokenizer-refusals");
  const auto refused = [&](const std::string& json, const std::string& expected) {
    CAPTURE(json);
    write(dir.path() / "tokenizer.json", json);
    try {
      (void)tokenizers::open_tokenizer(dir.path() / "tokenizer.json");
      FAIL("accepted");
    } catch (const ternq::error& e) {
      CHECK(std::string(e.what()).find(expected) != std::string::npos);
    }
  };
  refused(R"({"model": {"type": "WordPiece", "vocab": {}}, "pre_tokenizer": {"type": "BertPreTokenizer"}})",
          "the model type 'WordPiece' is not supported");
  refused(R"({"model": {"type": "Unigram", "vocab": []}, "pre_tokenizer": null})",
          "the model type 'Unigram' is not supported");
  refused(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
              "pre_tokenizer": {"type": "Metaspace", "replacement": "_"}})",
          "without a ByteLevel pre-tokenizer");
  refused(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "normalizer": {"type": "Lowercase"},
              "pre_tokenizer": {"type": "ByteLevel"}})",
          "normalizer 'Lowercase' is not supported");
  refused(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
              "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Punctuation"}, {"type": "ByteLevel"}]}})",
          "pre-tokenizer 'Punctuation' is not supported");
  // An id far beyond the tokens the file holds would size a vocabulary the file does not back.
  refused(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2000000000}, "merges": []},
              "pre_tokenizer": {"type": "ByteLevel"}})",
          "token 'b' has the id 2000000000, beyond the 2 tokens of the file");

  // A pre-tokenizer regex llama.cpp has no name for: the text is encoded, but no GGUF vocabulary is made.
  nlohmann::json j = nlohmann::json::parse(std::ifstream(tokenizer_data() / "gpt2/tokenizer.json"));
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"Regex", "\\s+|\\S+"}}}, {"behavior", "Isolated"}},
                          {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  write(dir.path() / "tokenizer.json", j.dump());
  const auto custom = tokenizers::open_tokenizer(dir.path() / "tokenizer.json");
  CHECK(custom->encode("a b").size() == 3);
  CHECK(custom->describe() == "byte-level BPE (unrecognized pre-tokenizer)");
  CHECK_THROWS_WITH_AS((void)custom->gguf_vocab(), doctest::Contains("is none that llama.cpp knows by name"),
                       ternq::error);

  // A GGUF whose pre-tokenizer name ternq does not know.
  io::llama_vocab v = tokenizers::open_tokenizer(tokenizer_data() / "gpt2/tokenizer.json")->gguf_vocab();
  v.pre = "deepseek-coder";
  const auto path = gguf_with(v, v.tokens.size(), dir, "unknown-pre");
  CHECK_THROWS_WITH_AS((void)tokenizers::open_tokenizer(path),
                       doctest::Contains("tokenizer.ggml.pre 'deepseek-coder' is not a pre-tokenizer ternq knows"),
                       ternq::error);
  // More tokens than the model has rows.
  const auto tok = tokenizers::open_tokenizer(tokenizer_data() / "gpt2/tokenizer.json");
  CHECK_THROWS_WITH_AS(tokenizers::require_fits(*tok, 100), doctest::Contains("tokens, the model a vocabulary of 100"),
                       ternq::error);
  CHECK_NOTHROW(tokenizers::require_fits(*tok, tok->vocab_size()));
}

TEST_CASE("a model brings its tokenizer: a Hugging Face directory's files, a GGUF's vocabulary, else none") {
  tools_test::temp_dir dir("tools-tokenizer-model");
  const auto json_dir = dir.path() / "json";
  const auto spm_dir = dir.path() / "spm";
  const auto both_dir = dir.path() / "both";
  const auto none_dir = dir.path() / "none";
  for (const auto& d : {json_dir, spm_dir, both_dir, none_dir}) std::filesystem::create_directories(d);
  std::filesystem::copy_file(tokenizer_data() / "llama3/tokenizer.json", json_dir / "tokenizer.json");
  std::filesystem::copy_file(tokenizer_data() / "llama3/tokenizer_config.json", json_dir / "tokenizer_config.json");
  std::filesystem::copy_file(tokenizer_data() / "sentencepiece/tokenizer.model", spm_dir / "tokenizer.model");
  // A SentencePiece model converted to tokenizer.json (not byte-level) beside its tokenizer.model: the original.
  std::filesystem::copy_file(tokenizer_data() / "sentencepiece/tokenizer.model", both_dir / "tokenizer.model");
  write(both_dir / "tokenizer.json",
        R"({"model": {"type": "BPE", "vocab": {}, "merges": [], "byte_fallback": true},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581"}})");
  write(spm_dir / "tokenizer_config.json", R"({"add_bos_token": false})");

  CHECK(tokenizers::model_tokenizer(json_dir)->encode(multilingual()) == reference_ids("llama3"));
  const auto spm = tokenizers::model_tokenizer(spm_dir);
  CHECK(spm->describe() == "SentencePiece");
  CHECK(spm->encode(multilingual()) == reference_ids("sentencepiece"));  // add_bos_token false: no BOS
  CHECK(spm->gguf_vocab().add_bos == false);
  CHECK(tokenizers::model_tokenizer(both_dir)->describe() == "SentencePiece");
  CHECK(tokenizers::model_tokenizer(none_dir) == nullptr);
  // --tokenizer may name the directory too.
  CHECK(tokenizers::open_tokenizer(json_dir)->encode(multilingual()) == reference_ids("llama3"));

  // A GGUF without a vocabulary (no_vocab) brings none; a llama2.c checkpoint never does.
  const auto bare = dir.path() / "bare.gguf";
  (void)llama::save_gguf(tools_test::random_model(1), {}, {}, nullptr, bare, "bare");
  CHECK(tokenizers::model_tokenizer(bare) == nullptr);
  const auto checkpoint = dir.path() / "model.bin";
  write(checkpoint, std::string(64, '\0'));
  CHECK(tokenizers::model_tokenizer(checkpoint) == nullptr);
}
