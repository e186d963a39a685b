// SPDX-License-Identifier: MIT
// The whole-model path: sequential calibration, GGUF output read back, fake-quantized checkpoints, quality ordering.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <vector>

#include <ternq/io/gguf_reader.hpp>
#include <ternq/io/llama2c_tokenizer.hpp>

#include "cli/methods.hpp"
#include "cli/text_slice.hpp"
#include "llama/forward.hpp"
#include "llama/gguf_io.hpp"
#include "llama/load.hpp"
#include "llama/save.hpp"
#include "llama/sequential.hpp"
#include "tokenize/llama2c.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::have_shared;
using tools_test::shared_dir;

llama::layer_quantizer quantizer_for(const std::string& method, group_size_option g) {
  const auto choice = cli::parse_method(method, g, 0);
  return [choice](const llama::matrix& w, const Eigen::MatrixXd& gram, std::size_t, llama::linear) {
    return cli::run_method(cpu_exec{}, choice, w, gram);
  };
}

/// Calibration and evaluation batches from disjoint slices of the TinyStories head.
struct slices {
  llama::batch calibration, evaluation;
};
slices tinystories(const tokenizers::tokenizer& tok, std::size_t len) {
  const auto path = shared_dir() / "text/tinystories_validation_head.txt";
  const bool collapse = tok.needs_whitespace_collapse();
  return {cli::windows(cli::tokenize(tok, cli::read_text(path, 0), 16 * len, collapse).tokens, len, 16),
          cli::windows(cli::tokenize(tok, cli::read_text(path, 400000), 16 * len, collapse).tokens, len, 16)};
}

}  // namespace

TEST_CASE("every --method name parses into the method it names") {
  for (const auto& name : cli::method_names()) {
    const auto c = cli::parse_method(name, 32, 7);
    CHECK(c.name == name);
    // Every method carries the group size it was given.
    const bool grouped = std::visit(
        [](const auto& m) {
          if constexpr (requires { m.group_size; }) {
            return m.group_size == group_size_option{32};
          } else {
            return std::visit([](const auto& grid) { return grid.group_size == group_size_option{32}; }, m.grid);
          }
        },
        c.method);
    CHECK_MESSAGE(grouped, name);
  }
  const auto catq_default = cli::parse_method("catq", per_row, 0);
  const auto catq_std = cli::parse_method("catq_std", per_row, 0);
  REQUIRE(std::holds_alternative<catq>(catq_default.method));
  REQUIRE(std::holds_alternative<catq>(catq_std.method));
  CHECK(std::get<catq>(catq_default.method).priors.scale == catq_scale_prior::absmean);
  CHECK(std::get<catq>(catq_std.method).priors.scale == catq_scale_prior::standard_deviation);
  CHECK((catq_std.needs_gram && !catq_std.asymmetric && !catq_std.permutes));
  // The _paper names keep ALGORITHMS.md §4's 1000-step setup; the plain names the 100-step defaults.
  for (const char* name : {"catq_paper", "catq_std_paper"}) {
    const auto c = cli::parse_method(name, 64, 0);
    REQUIRE(std::holds_alternative<catq>(c.method));
    const catq& m = std::get<catq>(c.method);
    const catq paper = catq::paper();
    CHECK((m.steps == paper.steps && m.lr == paper.lr && m.s0 == paper.s0 && m.patience == paper.patience));
    CHECK((m.refit_scales == paper.refit_scales && m.beta1 == paper.beta1 && m.beta2 == paper.beta2));
    CHECK(m.group_size == group_size_option{64});
    CHECK(m.priors.scale == (std::string_view(name) == "catq_paper" ? catq_scale_prior::absmean
                                                                   : catq_scale_prior::standard_deviation));
  }
  CHECK(std::get<catq>(catq_default.method).steps == catq{}.steps);
  CHECK(std::get<catq>(catq_default.method).steps != catq::paper().steps);

  const auto ssr_itf_aga = cli::parse_method("gptq_ssr_itf_aga", 64, 0);
  REQUIRE(std::holds_alternative<gptq>(ssr_itf_aga.method));
  CHECK(std::holds_alternative<ssr>(std::get<gptq>(ssr_itf_aga.method).order));
  CHECK(std::holds_alternative<itf_aga>(std::get<gptq>(ssr_itf_aga.method).grid));
  CHECK((ssr_itf_aga.needs_gram && ssr_itf_aga.asymmetric && ssr_itf_aga.permutes));
  const auto random_optimal = cli::parse_method("gptq_random_optimal", 64, 9);
  CHECK(std::get<random_order>(std::get<gptq>(random_optimal.method).order).seed == 9);
  CHECK((!random_optimal.asymmetric && random_optimal.permutes));
  const auto plain_itf = cli::parse_method("itf", 64, 0);
  CHECK((plain_itf.asymmetric && !plain_itf.needs_gram));
  CHECK(cli::parse_method("itf_aga", 64, 0).needs_gram);
  CHECK_THROWS_AS(cli::parse_method("gptq_ssr_round", 64, 0), ternq::error);
  CHECK_THROWS_AS(cli::parse_method("catq_var", 64, 0), ternq::error);
}

TEST_CASE("sequential calibration: each layer's Gram matrix comes from the already-quantized layers before it") {
  llama::model m = tools_test::random_model(21);
  const llama::batch calib = tools_test::random_batch(3, 24, m.cfg.vocab_size, 5);
  std::map<std::pair<std::size_t, llama::linear>, Eigen::MatrixXd> seen;
  const auto quantize = quantizer_for("optimal", 16);
  const auto results = llama::quantize_sequential(
      m, calib, [&](const llama::matrix& w, const Eigen::MatrixXd& gram, std::size_t l, llama::linear which) {
        seen[{l, which}] = gram;
        return quantize(w, gram, l, which);
      });
  REQUIRE(results.size() == 14);
  // Replay the finished (fully quantized) model: every layer must see exactly the inputs it was calibrated on.
  std::size_t checked = 0;
  (void)llama::final_hidden(m, calib, [&](std::size_t l, llama::activation_site site, const llama::matrix& x, auto&) {
    const Eigen::MatrixXd replay = x.cast<double>().transpose() * x.cast<double>();
    for (const auto which : llama::consumers(site)) {
      // the accumulator's float chunks stay near 1e-7 of ||C|| (gram_products::float_chunks); other inputs would not
      CHECK((seen.at({l, which}) - replay).norm() <= 1e-6 * replay.norm());
      ++checked;
    }
  });
  CHECK(checked == 14);
  // The weights left in the model are the dequantized ternary matrices.
  for (const auto& r : results) {
    const llama::matrix& w = m.layers[r.layer].weight(r.which);
    for (Eigen::Index i = 0; i < w.rows(); ++i) {
      for (Eigen::Index j = 0; j < w.cols(); ++j) {
        CHECK(w(i, j) == r.quantized.value(static_cast<std::size_t>(i), static_cast<std::size_t>(j)));
      }
    }
  }
}

TEST_CASE("stories260K: the GGUF has llama.cpp's structure and dequantizes to the fake-quantized model") {
  if (!have_shared("models/stories260K.bin")) return;
  const tokenizers::llama2c tok(shared_dir() / "models/tok512.bin");
  const io::llama_vocab vocab = tok.gguf_vocab();
  for (const std::string method : {"absmean", "gptq_optimal"}) {
    CAPTURE(method);
    llama::model m = llama::load_llama2c(shared_dir() / "models/stories260K.bin");
    const auto data = tinystories(tok, 128);
    // Scales rounded to fp16 as ternq-quantize does for a ternary GGUF, so packed blocks decode exactly.
    const auto base = quantizer_for(method, 64);
    const auto results = llama::quantize_sequential(
        m, data.calibration, [&](const llama::matrix& w, const Eigen::MatrixXd& c, std::size_t l, llama::linear which) {
          ternary_matrix q = base(w, c, l, which);
          for (float& s : q.scales()) s = fp16_bits_to_fp32(fp32_to_fp16_bits(s));
          return q;
        });
    std::map<std::pair<std::size_t, llama::linear>, ternary_matrix> ternary;
    for (const auto& r : results) ternary.emplace(std::pair{r.layer, r.which}, r.quantized);
    tools_test::temp_dir dir("tools-gguf-" + method);
    const auto path = dir.path() / "model.gguf";
    const auto stored = llama::save_gguf(m, ternary, {.format = pack::format::q2_0}, &vocab, path, "test");

    // Structure: exactly llama.cpp's tensors, in order, with their extents and valid offsets.
    const io::gguf_reader r = io::gguf_reader::open(path);
    io::llama_hparams hp;
    hp.vocab_size = 512;
    hp.embedding_length = 64;
    hp.block_count = 5;
    hp.feed_forward_length = 172;
    hp.head_count = 8;
    hp.head_count_kv = 4;
    const auto expected = io::llama_tensors(hp, /*tied_output=*/true);
    REQUIRE(r.tensors().size() == expected.size());
    std::uint64_t offset = 0;
    for (std::size_t k = 0; k < expected.size(); ++k) {
      const auto& t = r.tensors()[k];
      CHECK(t.name == expected[k].name);
      CHECK(t.ne == expected[k].ne);
      CHECK(t.offset == offset);
      offset = (t.offset + t.size + r.alignment() - 1) / r.alignment() * r.alignment();
      const bool linear = t.name.find("attn_") != std::string::npos && t.name.find("norm") == std::string::npos;
      const bool ffn = t.name.find("ffn_") != std::string::npos && t.name.find("norm") == std::string::npos;
      if ((linear || ffn) && t.ne[0] % 64 == 0) CHECK(t.type == pack::ggml_type::q2_0);
      if (t.name.find("ffn_down") != std::string::npos) CHECK(t.type == pack::ggml_type::f16);  // 172 columns: fallback
      if (t.name.find("norm") != std::string::npos || t.name == "token_embd.weight") {
        CHECK(t.type == pack::ggml_type::f32);
      }
    }
    CHECK(r.metadata().get<std::string>("general.architecture") == "llama");
    CHECK(r.metadata().get<std::string>("tokenizer.ggml.model") == "llama");
    CHECK(r.metadata().get<std::uint32_t>("llama.attention.head_count_kv") == 4);
    std::size_t fallbacks = 0;
    for (const auto& s : stored) fallbacks += s.reason.empty() ? 0 : 1;
    CHECK(fallbacks == 5);  // one ffn_down per layer

    // Content: the GGUF read back is the fake-quantized model, weight for weight.
    const llama::model back = llama::load_gguf(path);
    CHECK(back.embedding == m.embedding);
    for (std::size_t l = 0; l < m.layers.size(); ++l) {
      for (const auto which : llama::all_linears) CHECK(back.layers[l].weight(which) == m.layers[l].weight(which));
    }
    // And a llama2.c checkpoint of it loads back the same.
    llama::save_llama2c(m, dir.path() / "fake.bin");
    const llama::model fake = llama::load_llama2c(dir.path() / "fake.bin");
    CHECK(fake.layers[2].w1 == m.layers[2].w1);
    const auto nll_back = llama::next_token_nll(back, data.evaluation).mean();
    const auto nll_fake = llama::next_token_nll(fake, data.evaluation).mean();
    CHECK(nll_back == doctest::Approx(nll_fake).epsilon(1e-6));
  }
}

TEST_CASE("the GGUF vocabulary spells spaces as SentencePiece's U+2581, as llama.cpp's tokenizer looks them up") {
  const std::string mark = "\xE2\x96\x81";  // U+2581 in UTF-8
  CHECK(tokenizers::sentencepiece_spelling(" the") == mark + "the");
  CHECK(tokenizers::sentencepiece_spelling("a  b ") == "a" + mark + mark + "b" + mark);
  CHECK(tokenizers::sentencepiece_spelling("<0x20>") == "<0x20>");
  if (!have_shared("models/tok512.bin")) return;
  const io::llama2c_tokenizer tok(shared_dir() / "models/tok512.bin");
  const io::llama_vocab v = tokenizers::vocab_of(tok);
  REQUIRE(v.tokens.size() == tok.vocab_size());
  std::size_t marked = 0;
  for (std::size_t id = 3; id < v.tokens.size(); ++id) {  // 0..2: the special tokens' own texts
    const std::string_view piece = tok.piece(static_cast<int>(id));
    const std::string& token = v.tokens[id];
    CHECK(token.find(' ') == std::string::npos);
    // Replacing every mark by a space gives back the llama2.c piece.
    std::string back;
    for (std::size_t i = 0; i < token.size();) {
      if (token.compare(i, 3, mark) == 0) {
        back += ' ';
        i += 3;
      } else {
        back += token[i++];
      }
    }
    CHECK(back == piece);
    marked += token.starts_with(mark) ? 1 : 0;
  }
  CHECK(marked > 0);
  // The dummy prefix makes the first word a word-initial piece: its token carries the mark.
  const auto ids = tok.encode("Once upon a time", {.bos = false});
  REQUIRE(!ids.empty());
  CHECK(v.tokens[static_cast<std::size_t>(ids[0])] == mark + "Once");
}

TEST_CASE("stories260K: GPTQ with ITF+AGA beats absmean in perplexity on a held-out slice") {
  if (!have_shared("models/stories260K.bin")) return;
  const tokenizers::llama2c tok(shared_dir() / "models/tok512.bin");
  const auto data = tinystories(tok, 128);
  const llama::model fp = llama::load_llama2c(shared_dir() / "models/stories260K.bin");
  std::map<std::string, double> nll;
  nll["fp"] = llama::next_token_nll(fp, data.evaluation).mean();
  for (const std::string method : {"absmean", "gptq_itf_aga"}) {
    llama::model m = fp;
    (void)llama::quantize_sequential(m, data.calibration, quantizer_for(method, 64));
    nll[method] = llama::next_token_nll(m, data.evaluation).mean();
  }
  MESSAGE("held-out NLL: fp " << nll["fp"] << ", absmean " << nll["absmean"] << ", gptq_itf_aga "
                              << nll["gptq_itf_aga"]);
  CHECK(nll["fp"] < nll["gptq_itf_aga"]);
  CHECK(nll["gptq_itf_aga"] < nll["absmean"]);
}

TEST_CASE("sequential calibration gives bit-identical weights and codes for 1 and 2 forward threads") {
  const llama::batch calib = tools_test::random_batch(3, 24, 40, 6);
  std::vector<llama::model> models;
  std::vector<std::vector<llama::layer_result>> results;
  for (const unsigned threads : {1U, 2U}) {
    models.push_back(tools_test::random_model(31));
    results.push_back(
        llama::quantize_sequential(models.back(), calib, quantizer_for("gptq_itf_aga", 16), {}, {}, cpu_exec{.threads = threads}));
  }
  REQUIRE(results[0].size() == results[1].size());
  for (std::size_t k = 0; k < results[0].size(); ++k) {
    const auto& a = results[0][k].quantized;
    const auto& b = results[1][k].quantized;
    CHECK(std::equal(a.codes().begin(), a.codes().end(), b.codes().begin(), b.codes().end()));
    CHECK(std::equal(a.scales().begin(), a.scales().end(), b.scales().begin(), b.scales().end()));
  }
  for (std::size_t l = 0; l < models[0].layers.size(); ++l) {
    for (const auto which : llama::all_linears) CHECK(models[0].layers[l].weight(which) == models[1].layers[l].weight(which));
  }
}
