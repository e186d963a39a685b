// SPDX-License-Identifier: MIT
// llama2.c checkpoints: layout, reader and writer round trips, hostile headers, and the shared real models.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "ternq/io/llama2c_checkpoint.hpp"
#include "ternq/io/llama2c_model.hpp"

using ternq::io::llama2c_checkpoint;
using ternq::io::llama2c_config;
using ternq::io::llama2c_model;
using ternq::testing::temp_dir;

namespace {

/// A small grouped-query config: head_size 2, kv_dim 4, legacy RoPE 2 x 6 floats.
llama2c_config small_config(bool shared = true) {
  return {.dim = 8,
          .hidden_dim = 12,
          .n_layers = 2,
          .n_heads = 4,
          .n_kv_heads = 2,
          .vocab_size = 10,
          .seq_len = 6,
          .shared_classifier = shared};
}

/// A model whose every float is its own index in the file: views can be checked against offsets.
llama2c_model indexed_model(const llama2c_config& c) {
  llama2c_model m(c);
  auto p = m.payload();
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<float>(i);
  return m;
}

std::string header_bytes(std::initializer_list<std::int32_t> fields) {
  std::string s;
  for (const std::int32_t v : fields) {
    const auto u = static_cast<std::uint32_t>(v);
    for (int b = 0; b < 4; ++b) s += static_cast<char>((u >> (8 * b)) & 0xFFU);
  }
  return s;
}

std::string open_error(const temp_dir& dir, const std::string& bytes) {
  const auto path = dir / "bad.bin";
  ternq::testing::write_file(path, bytes);
  try {
    const llama2c_checkpoint c(path);
    return "(opened)";
  } catch (const ternq::error& e) {
    std::string what = e.what();
    const std::string prefix = "llama2c '" + path.string() + "'";
    const auto at = what.find(prefix);
    return at == std::string::npos ? what : what.replace(at, prefix.size(), "FILE");
  }
}

}  // namespace

TEST_CASE("llama2c: the layout follows run.c's order and sizes") {
  const auto l = ternq::io::make_llama2c_layout(small_config(), ternq::errc::invalid_argument, "test");
  CHECK(l.token_embedding == 0);
  CHECK(l.rms_att == 80);   // vocab x dim
  CHECK(l.wq == 80 + 16);   // + layers x dim
  CHECK(l.wk == 96 + 128);  // + layers x dim x dim
  CHECK(l.wv == 224 + 64);  // + layers x kv_dim x dim
  CHECK(l.wo == 288 + 64);
  CHECK(l.rms_ffn == 352 + 128);
  CHECK(l.w1 == 480 + 16);
  CHECK(l.w2 == 496 + 192);  // + layers x hidden x dim
  CHECK(l.w3 == 688 + 192);
  CHECK(l.rms_final == 880 + 192);
  CHECK(l.legacy_rope == 1072 + 8);
  CHECK(l.legacy_rope_count == 12);
  CHECK(l.classifier == 0);
  CHECK(l.float_count == 1092);
  CHECK(l.file_size() == 28 + 4 * 1092);
  const auto u = ternq::io::make_llama2c_layout(small_config(false), ternq::errc::invalid_argument, "test");
  CHECK(u.classifier == 1092);
  CHECK(u.float_count == 1092 + 80);
}

TEST_CASE("llama2c: a written checkpoint reads back with every tensor where the layout puts it") {
  const temp_dir dir("io-test");
  for (const bool shared : {true, false}) {
    CAPTURE(shared);
    const llama2c_config cfg = small_config(shared);
    const llama2c_model m = indexed_model(cfg);
    const auto path = dir / "m.bin";
    m.write(path);
    const std::string bytes = ternq::testing::read_file(path);
    // The header: seven int32, vocab_size negative for an unshared classifier.
    CHECK(bytes.substr(0, 28) == header_bytes({8, 12, 2, 4, 2, shared ? 10 : -10, 6}));
    CHECK(bytes.size() == m.layout().file_size());

    const llama2c_checkpoint ck(path);
    CHECK(ck.config() == cfg);
    const auto& w = ck.weights();
    const auto& l = ck.layout();
    CHECK(ck.payload().size() == l.float_count);
    CHECK(w.token_embedding(3, 5) == static_cast<float>(3 * 8 + 5));
    REQUIRE(w.layers.size() == 2);
    CHECK(w.layers[1].rms_att[7] == static_cast<float>(l.rms_att + 8 + 7));
    CHECK(w.layers[1].wq(2, 3) == static_cast<float>(l.wq + 64 + 2 * 8 + 3));
    CHECK(w.layers[1].wk.rows() == 4);
    CHECK(w.layers[1].wk(3, 7) == static_cast<float>(l.wk + 32 + 3 * 8 + 7));
    CHECK(w.layers[0].wv(1, 0) == static_cast<float>(l.wv + 8));
    CHECK(w.layers[1].wo(7, 7) == static_cast<float>(l.wo + 64 + 63));
    CHECK(w.layers[0].rms_ffn[0] == static_cast<float>(l.rms_ffn));
    CHECK(w.layers[1].w1(11, 7) == static_cast<float>(l.w1 + 96 + 11 * 8 + 7));
    CHECK(w.layers[1].w2.rows() == 8);
    CHECK(w.layers[1].w2.cols() == 12);
    CHECK(w.layers[1].w2(7, 11) == static_cast<float>(l.w2 + 96 + 7 * 12 + 11));
    CHECK(w.layers[0].w3(0, 1) == static_cast<float>(l.w3 + 1));
    CHECK(w.rms_final[7] == static_cast<float>(l.rms_final + 7));
    CHECK(w.legacy_rope.size() == 12);
    CHECK(w.classifier(9, 7) == static_cast<float>(l.classifier + 79));
    CHECK((w.classifier.data() == w.token_embedding.data()) == shared);

    // Loaded into memory and written unchanged: the same bytes.
    const llama2c_model back = llama2c_model::load(path);
    CHECK(back.config() == cfg);
    back.write(dir / "again.bin");
    CHECK(ternq::testing::read_file(dir / "again.bin") == bytes);
  }
}

TEST_CASE("llama2c: the linear matrices are listed by name in file order") {
  llama2c_model m = indexed_model(small_config());
  const auto w = m.weights();
  const auto linears = ternq::io::llama2c_linears(w);
  REQUIRE(linears.size() == 14);
  CHECK(linears[0].first == "layers.0.wq");
  CHECK(linears[1].first == "layers.1.wq");
  CHECK(linears[2].first == "layers.0.wk");
  CHECK(linears[13].first == "layers.1.w3");
  CHECK(linears[13].second.data() == w.layers[1].w3.data());
  // Views of an owned model write through.
  linears[4].second(0, 0) = -1.0F;
  CHECK(m.weights().layers[0].wv(0, 0) == -1.0F);
}

TEST_CASE("llama2c: unsharing the classifier copies the embedding and writes both") {
  const temp_dir dir("io-test");
  llama2c_model m = indexed_model(small_config());
  m.unshare_classifier();
  CHECK_FALSE(m.config().shared_classifier);
  auto w = m.weights();
  CHECK(w.classifier.data() != w.token_embedding.data());
  CHECK(w.classifier(9, 7) == w.token_embedding(9, 7));
  w.classifier(0, 0) = 42.0F;
  m.write(dir / "u.bin");
  const llama2c_checkpoint ck(dir / "u.bin");
  CHECK_FALSE(ck.config().shared_classifier);
  CHECK(ck.weights().classifier(0, 0) == 42.0F);
  CHECK(ck.weights().token_embedding(0, 0) == 0.0F);
}

TEST_CASE("llama2c: hostile headers and sizes fail as corrupt_file naming the problem") {
  const temp_dir dir("io-test");
  CHECK(open_error(dir, "abc") == "[ternq.corrupt_file] FILE: 3 bytes are too few for the 28-byte header");
  // Text read as a header would give "dim 1699880995 is not a multiple of n_heads ...": named as text instead.
  CHECK(open_error(dir, "Once upon a time, there was\na little girl named Lily.\n") ==
        "[ternq.corrupt_file] FILE: not a llama2.c checkpoint: the file begins with text (\"Once upon a time, there "
        "was ...\"), where a checkpoint has seven int32 header fields");
  CHECK(open_error(dir, header_bytes({8, 12, 2, 4, 2, 10, 0})) ==
        "[ternq.corrupt_file] FILE: header field seq_len is 0 (must be positive)");
  CHECK(open_error(dir, header_bytes({8, -12, 2, 4, 2, 10, 6})) ==
        "[ternq.corrupt_file] FILE: header field hidden_dim is -12 (must be positive)");
  CHECK(open_error(dir, header_bytes({8, 12, 2, 4, 2, 0, 6})) ==
        "[ternq.corrupt_file] FILE: header field vocab_size is 0 (must be nonzero)");
  CHECK(open_error(dir, header_bytes({8, 12, 2, 3, 3, 10, 6})) ==
        "[ternq.corrupt_file] FILE: dim 8 is not a multiple of n_heads 3");
  CHECK(open_error(dir, header_bytes({8, 12, 2, 4, 3, 10, 6})) ==
        "[ternq.corrupt_file] FILE: n_heads 4 is not a multiple of n_kv_heads 3");
  constexpr std::int32_t big = 2147483647;
  CHECK(open_error(dir, header_bytes({big, big, big, 1, 1, 10, 6})) ==
        "[ternq.corrupt_file] FILE: the sizes (dim 2147483647, hidden_dim 2147483647, n_layers 2147483647, n_heads 1, "
        "n_kv_heads 1, vocab_size 10 shared, seq_len 6) overflow 64 bits");
  // The exact size: one float short, one byte long.
  const std::string header = header_bytes({8, 12, 2, 4, 2, -10, 6});
  CHECK(open_error(dir, header + std::string(4 * (1092 + 80) - 4, '\0')) ==
        "[ternq.corrupt_file] FILE: the header (dim 8, hidden_dim 12, n_layers 2, n_heads 4, n_kv_heads 2, "
        "vocab_size 10 unshared, seq_len 6) implies 4716 bytes, the file has 4712");
  CHECK(open_error(dir, header + std::string(4 * (1092 + 80) + 1, '\0')) ==
        "[ternq.corrupt_file] FILE: the header (dim 8, hidden_dim 12, n_layers 2, n_heads 4, n_kv_heads 2, "
        "vocab_size 10 unshared, seq_len 6) implies 4716 bytes, the file has 4717");
  CHECK(open_error(dir, header + std::string(4 * (1092 + 80), '\0')) == "(opened)");
  const auto missing = dir / "missing.bin";
  CHECK_THROWS_WITH_AS(
      static_cast<void>(llama2c_model::load(missing)),
      ("[ternq.io] mapped_file: cannot open '" + missing.string() + "': No such file or directory").c_str(),
      ternq::error);
}

TEST_CASE("llama2c: the writer checks every tensor against the config") {
  const temp_dir dir("io-test");
  llama2c_model m = indexed_model(small_config());
  auto w = m.weights();
  const auto path = dir / "w.bin";
  auto bad = w;
  bad.layers[1].wk = w.layers[1].wq;
  CHECK_THROWS_WITH_AS(ternq::io::write_llama2c_checkpoint(path, m.config(), bad),
                       "[ternq.shape_mismatch] write_llama2c_checkpoint: layers[1].wk is 8x8, expected 4x8",
                       ternq::error);
  bad = w;
  bad.layers.pop_back();
  CHECK_THROWS_WITH_AS(ternq::io::write_llama2c_checkpoint(path, m.config(), bad),
                       "[ternq.shape_mismatch] write_llama2c_checkpoint: 1 layers, the config has 2", ternq::error);
  bad = w;
  bad.rms_final = bad.rms_final.first(7);
  CHECK_THROWS_WITH_AS(ternq::io::write_llama2c_checkpoint(path, m.config(), bad),
                       "[ternq.shape_mismatch] write_llama2c_checkpoint: rms_final has 7 values, expected 8",
                       ternq::error);
  bad = w;
  bad.classifier = w.layers[0].w1.block(0, 0, 10, 8);
  CHECK_THROWS_WITH_AS(ternq::io::write_llama2c_checkpoint(path, m.config(), bad),
                       "[ternq.invalid_argument] write_llama2c_checkpoint: the config shares the classifier with the "
                       "embedding, but weights.classifier is another matrix",
                       ternq::error);
  llama2c_config odd = small_config();
  odd.n_kv_heads = 3;
  CHECK_THROWS_WITH_AS(ternq::io::write_llama2c_checkpoint(path, odd, w),
                       "[ternq.invalid_argument] write_llama2c_checkpoint: n_heads 4 is not a multiple of n_kv_heads 3",
                       ternq::error);
  CHECK_THROWS_WITH_AS(llama2c_model{odd},
                       "[ternq.invalid_argument] llama2c_model: n_heads 4 is not a multiple of n_kv_heads 3",
                       ternq::error);
  CHECK_FALSE(std::filesystem::exists(path));
  // Empty legacy RoPE tables are written as zeros; the rest is unchanged.
  auto no_rope = w;
  no_rope.legacy_rope = {};
  ternq::io::write_llama2c_checkpoint(path, m.config(), no_rope);
  const llama2c_checkpoint ck(path);
  for (const float x : ck.weights().legacy_rope) CHECK(x == 0.0F);
  CHECK(ck.weights().rms_final[0] == w.rms_final[0]);
}

namespace {

struct shared_model {
  const char* file;
  llama2c_config config;
  std::size_t params;  // the README's figure: every float in the file
};

}  // namespace

TEST_CASE("llama2c: the shared real models load with the README's header values, shapes and sizes") {
  const auto shared = ternq::testing::shared_dir();
  if (shared.empty()) {
    MESSAGE("skipped: no shared models at " TERNQ_SHARED_DIR);
    return;
  }
  const shared_model models[] = {
      {"stories260K.bin", {64, 172, 5, 8, 4, 512, 512, true}, 264'128},
      {"babyllama_tok105_model5000.bin", {128, 352, 5, 8, 4, 105, 256, true}, 940'544},
      {"babyllama_tok361_model5000.bin", {128, 352, 5, 8, 4, 361, 256, true}, 973'312},
  };
  const temp_dir dir("io-test");
  for (const auto& expected : models) {
    CAPTURE(expected.file);
    const auto path = shared / "models" / expected.file;
    const llama2c_checkpoint ck(path);
    const llama2c_config& c = ck.config();
    CHECK(c == expected.config);
    CHECK(ck.layout().float_count == expected.params);
    CHECK(std::filesystem::file_size(path) == 28 + 4 * expected.params);
    const auto& w = ck.weights();
    const std::size_t dim = c.dim;
    const std::size_t kv_dim = dim * c.n_kv_heads / c.n_heads;
    CHECK(w.token_embedding.rows() == c.vocab_size);
    CHECK(w.token_embedding.cols() == dim);
    REQUIRE(w.layers.size() == c.n_layers);
    for (const auto& l : w.layers) {
      CHECK(l.rms_att.size() == dim);
      CHECK((l.wq.rows() == dim && l.wq.cols() == dim));
      CHECK((l.wk.rows() == kv_dim && l.wk.cols() == dim));
      CHECK((l.wv.rows() == kv_dim && l.wv.cols() == dim));
      CHECK((l.wo.rows() == dim && l.wo.cols() == dim));
      CHECK(l.rms_ffn.size() == dim);
      CHECK((l.w1.rows() == c.hidden_dim && l.w1.cols() == dim));
      CHECK((l.w2.rows() == dim && l.w2.cols() == c.hidden_dim));
      CHECK((l.w3.rows() == c.hidden_dim && l.w3.cols() == dim));
    }
    CHECK(w.rms_final.size() == dim);
    CHECK(w.classifier.data() == w.token_embedding.data());
    // Trained weights: finite, RMSNorm gains positive on average, matrices not constant.
    double norm_sum = 0;
    for (const float x : w.layers[0].rms_att) norm_sum += x;
    CHECK(norm_sum > 0);
    bool finite = true;
    for (const float x : ck.payload()) finite = finite && std::isfinite(x);
    CHECK(finite);
    CHECK(w.layers[c.n_layers - 1].w2(0, 0) != w.layers[c.n_layers - 1].w2(0, 1));
    // Loaded and written back unchanged: the same bytes as the original.
    llama2c_model::load(path).write(dir / "copy.bin");
    CHECK(ternq::testing::read_file(dir / "copy.bin") == ternq::testing::read_file(path));
  }
}
