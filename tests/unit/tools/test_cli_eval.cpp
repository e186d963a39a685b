// SPDX-License-Identifier: MIT
// ternq-eval as a person runs it: what it did to the text, short slices, the reference's own figures, and the
// llama-perplexity protocol against a computation of its own from a whole-model forward pass.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include <ternq/io/llama2c_tokenizer.hpp>

#include "cli/json_text.hpp"
#include "cli/text_slice.hpp"
#include "llama/forward.hpp"
#include "llama/load.hpp"
#include "llama/save.hpp"
#include "tokenize/llama2c.hpp"
#include "tools_test_support.hpp"

namespace {

using namespace ternq;
using tools_test::have_shared;
using tools_test::quote;
using tools_test::run;
using tools_test::shared_dir;

const std::string eval_exe = TERNQ_EVAL_EXE;
const std::string generate_exe = TERNQ_GENERATE_EXE;

/// Runs ternq-eval with `args`: the JSON it prints on stdout, and its stderr in `errors`.
nlohmann::json eval_json(const std::string& args, const std::filesystem::path& stderr_file, std::string& errors) {
  const auto o = run("( " + eval_exe + " " + args + " --json 2>" + quote(stderr_file) + " )");
  REQUIRE_MESSAGE(o.status == 0, o.output);
  std::ifstream in(stderr_file);
  errors.assign(std::istreambuf_iterator<char>(in), {});
  return nlohmann::json::parse(o.output);
}

}  // namespace

TEST_CASE("ternq-eval --protocol llama scores as llama-perplexity: windows led by BOS, their second halves") {
  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("tools-eval-llama");
  const auto model = shared_dir() / "models/stories260K.bin";
  const auto tok = shared_dir() / "models/tok512.bin";
  const auto text = shared_dir() / "text/tinystories_validation_head.txt";
  const std::string args = "--model " + quote(model) + " --tokenizer " + quote(tok) + " --text " + quote(text) +
                           " --offset 400000 --tokens 1024 --threads 1";
  const std::string common = args + " --window 64";
  std::string errors;
  const nlohmann::json llama_run = eval_json(common + " --protocol llama", dir.path() / "err", errors);
  CHECK(errors.empty());
  const nlohmann::json all_run = eval_json(common, dir.path() / "err", errors);

  // The same slice, each window's first token replaced by BOS, log-probabilities from a whole-model forward pass
  // of that window alone, and the predictions of positions 32..62 (tokens 33..63) scored.
  const tokenizers::llama2c tokenizer(tok);
  const auto slice = cli::tokenize(tokenizer, cli::read_text(text, 400000), 1024, false);
  REQUIRE(slice.tokens.size() == 1024);
  const llama::model m = llama::load_llama2c(model);
  double llama_nll = 0.0, all_nll = 0.0;
  std::size_t llama_count = 0, all_count = 0;
  for (std::size_t w = 0; w < 16; ++w) {
    llama::batch b;
    b.sequences = 1;
    b.length = 64;
    b.tokens.assign(slice.tokens.begin() + static_cast<std::ptrdiff_t>(64 * w),
                    slice.tokens.begin() + static_cast<std::ptrdiff_t>(64 * w + 64));
    // The default protocol: the window as the slice has it, every next token.
    const Eigen::MatrixXd as_is = llama::log_softmax(llama::logits(m, b));
    for (std::size_t t = 0; t + 1 < 64; ++t, ++all_count)
      all_nll -= as_is(static_cast<Eigen::Index>(t), b.tokens[t + 1]);
    b.tokens[0] = io::llama2c_tokenizer::bos_id;
    const Eigen::MatrixXd lp = llama::log_softmax(llama::logits(m, b));
    for (std::size_t t = 32; t + 1 < 64; ++t, ++llama_count)
      llama_nll -= lp(static_cast<Eigen::Index>(t), b.tokens[t + 1]);
  }
  CHECK(llama_count == 16 * 31);
  CHECK(llama_run["protocol"] == "llama");
  CHECK(llama_run["tokens"] == llama_count);
  CHECK(llama_run["windows"] == 16);
  CHECK(llama_run["nll"].get<double>() == doctest::Approx(llama_nll / static_cast<double>(llama_count)).epsilon(1e-6));
  CHECK(llama_run["ppl"].get<double>() ==
        doctest::Approx(std::exp(llama_nll / static_cast<double>(llama_count))).epsilon(1e-6));
  // The default is unchanged: every next token of the windows as cut.
  CHECK(all_run["protocol"] == "all");
  CHECK(all_run["tokens"] == all_count);
  CHECK(all_run["nll"].get<double>() == doctest::Approx(all_nll / static_cast<double>(all_count)).epsilon(1e-6));
  // Half a window of context at least: the second halves are predicted better than whole windows.
  CHECK(llama_run["nll"].get<double>() < all_run["nll"].get<double>());

  const auto too_short = run(eval_exe + " " + args + " --protocol llama --window 2");
  CHECK(too_short.status != 0);
  CHECK(too_short.output.find("windows of 2 tokens leave no prediction to score in their second half") !=
        std::string::npos);
}

TEST_CASE("ternq-eval says what it did to the text, warns of a short slice, and gives the reference's perplexity") {
  if (!have_shared("models/stories260K.bin") || !have_shared("models/babyllama_tok105_model5000.bin")) return;
  tools_test::temp_dir dir("tools-eval-report");
  const auto stories = shared_dir() / "models/stories260K.bin";
  const auto tok512 = shared_dir() / "models/tok512.bin";
  const auto text = shared_dir() / "text/tinystories_validation_head.txt";

  // A character-level vocabulary on WikiText: whitespace collapsed and characters dropped, said without --json.
  const auto baby = run(eval_exe + " --model " + quote(shared_dir() / "models/babyllama_tok105_model5000.bin") +
                        " --tokenizer " + quote(shared_dir() / "models/babyllama_tok105.bin") + " --text " +
                        quote(shared_dir() / "text/wikitext2_raw_test.txt") + " --tokens 512 --window 128");
  REQUIRE_MESSAGE(baby.status == 0, baby.output);
  CHECK(baby.output.find("whitespace runs collapsed to one space; ") != std::string::npos);
  const auto dropped_at = baby.output.find(" characters the vocabulary lacks dropped");
  REQUIRE(dropped_at != std::string::npos);
  const auto number_at = baby.output.rfind(' ', dropped_at - 1) + 1;
  CHECK(std::stoul(baby.output.substr(number_at, dropped_at - number_at)) > 0);

  // The end of the text: fewer tokens than asked for, and a tail that fills no window, both said with numbers.
  const auto size = std::filesystem::file_size(text);
  std::string errors;
  const nlohmann::json end =
      eval_json("--model " + quote(stories) + " --tokenizer " + quote(tok512) + " --text " + quote(text) +
                    " --offset " + std::to_string(size - 600) + " --tokens 4096 --window 64",
                dir.path() / "err", errors);
  const std::size_t got = end["slice_tokens"].get<std::size_t>();
  CHECK(got < 4096);
  CHECK(errors.find("from byte " + std::to_string(size - 600) + " gives " + std::to_string(got) +
                    " tokens, fewer than the 4096 asked for (--tokens): the text ends there") != std::string::npos);
  CHECK(errors.find("warning: the last " + std::to_string(got % 64) + " of the " + std::to_string(got) +
                    " tokens fill no whole window of 64 and are not scored") != std::string::npos);
  CHECK(end["tokens"] == got / 64 * 63);

  // Against a reference: the reference's own perplexity on the same tokens is the one it gets evaluated alone.
  const llama::config cfg{
      .dim = 32, .hidden_dim = 48, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 512, .seq_len = 128};
  const auto random = dir.path() / "random.bin";
  llama::save_llama2c(tools_test::random_model(5, cfg), random);
  const std::string slice = " --tokenizer " + quote(tok512) + " --text " + quote(text) + " --tokens 512 --window 64";
  const nlohmann::json against =
      eval_json("--model " + quote(stories) + " --reference " + quote(random) + slice, dir.path() / "err", errors);
  const nlohmann::json alone = eval_json("--model " + quote(random) + slice, dir.path() / "err", errors);
  CHECK(against["reference_ppl"].get<double>() == doctest::Approx(alone["ppl"].get<double>()).epsilon(1e-9));
  CHECK(against["reference_nll"].get<double>() == doctest::Approx(alone["nll"].get<double>()).epsilon(1e-9));
  CHECK(against["ppl"].get<double>() < against["reference_ppl"].get<double>());
  const auto printed = run(eval_exe + " --model " + quote(stories) + " --reference " + quote(random) + slice);
  REQUIRE_MESSAGE(printed.status == 0, printed.output);
  std::ostringstream line;
  line.precision(4);
  line << std::fixed << "reference  perplexity " << against["reference_ppl"].get<double>();
  CHECK(printed.output.find(line.str()) != std::string::npos);
}

TEST_CASE("--json output survives strings that are not UTF-8: a model path in another encoding gets U+FFFD") {
  // The helper itself: a character cut after two of its three bytes, and a lone 0xFF.
  const nlohmann::json cut = {{"text", std::string("ab\xE2\x96")}, {"path", std::string("m\xFF.bin")}};
  CHECK_THROWS(cut.dump());  // what the tools did before: type_error, and no output
  const auto back = nlohmann::json::parse(cli::json_text(cut));
  CHECK(back["text"] == "ab\xEF\xBF\xBD");
  CHECK(back["path"] == "m\xEF\xBF\xBD.bin");

  if (!have_shared("models/stories260K.bin")) return;
  tools_test::temp_dir dir("cli-json-utf8");
  const auto link = dir.path() / "stories\xFF.bin";  // a Latin-1 file name: not UTF-8
  std::filesystem::create_symlink(shared_dir() / "models/stories260K.bin", link);
  const std::string tok = " --tokenizer " + quote(shared_dir() / "models/tok512.bin");
  std::string errors;
  const auto e = eval_json("--model " + quote(link) + tok + " --text " +
                               quote(shared_dir() / "text/tinystories_validation_head.txt") + " --tokens 256",
                           dir.path() / "err.txt", errors);
  CHECK(e["model"].get<std::string>().find("\xEF\xBF\xBD") != std::string::npos);
  CHECK(e["ppl"].get<double>() > 1.0);
  const auto g = run(generate_exe + " --model " + quote(link) + tok + " --prompt Once --tokens 4 --json");
  REQUIRE_MESSAGE(g.status == 0, g.output);
  const auto gj = nlohmann::json::parse(g.output.substr(g.output.find('{')));
  CHECK(gj["generated_tokens"] == 4);
  CHECK(gj["model"].get<std::string>().find("\xEF\xBF\xBD") != std::string::npos);
}
