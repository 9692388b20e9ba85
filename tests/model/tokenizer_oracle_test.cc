// Tokenizer oracle (fixtures README section 2, rule 1): for every vocabulary in the fixtures,
// every line of <name>.tokenize.jsonl must give llama.cpp's ids in the three modes, every line
// of <name>.detokenize.jsonl must give llama.cpp's text byte for byte, and llama.cpp's own
// .inp/.out pairs must match. Each vocabulary is loaded once per test binary; strings run
// in-process.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tokenizer.h"
#include "gguf/gguf.h"
#include "support/test_support.h"

namespace hangar::engine {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string show_ids(const std::vector<TokenId>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  s += ']';
  return s;
}

std::string quoted(const std::string& text) {
  std::string q =
      nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return q.size() > 160 ? q.substr(0, 160) + "..." : q;
}

// One load per vocabulary per process.
const Tokenizer* load_vocab(const std::string& fixtures, const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  const std::string path = fixtures + "/vocab/ggml-vocab-" + name + ".gguf";
  const auto start = std::chrono::steady_clock::now();
  auto file = gguf::GgufFile::open(path);
  if (!file.ok()) {
    ADD_FAILURE() << file.status().to_string();
    return nullptr;
  }
  auto tokenizer = Tokenizer::from_gguf(**file);
  if (!tokenizer.ok()) {
    ADD_FAILURE() << tokenizer.status().to_string();
    return nullptr;
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ info ] " << name << ": " << (*tokenizer)->n_vocab()
            << " tokens, GGUF open + tokenizer build " << ms << " ms\n";
  return cache.emplace(name, std::move(*tokenizer)).first->second.get();
}

class TokenizerOracleTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerOracleTest, TokenizeEqualsLlamaCppInPlainSpecialAndBosModes) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string name = GetParam();
  const Tokenizer* tok = load_vocab(fixtures, name);
  ASSERT_NE(tok, nullptr);
  const std::vector<std::string> lines =
      read_lines(fixtures + "/vocab/" + name + ".tokenize.jsonl");
  ASSERT_FALSE(lines.empty());
  struct Mode {
    const char* field;
    bool add_special;
    bool parse_special;
    int passed = 0;
  };
  Mode modes[] = {{"plain", false, false}, {"special", false, true}, {"bos", true, false}};
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(lines[i]);
    const std::string text = j.at("text").get<std::string>();
    for (Mode& m : modes) {
      const std::vector<TokenId> want = j.at(m.field).get<std::vector<TokenId>>();
      const std::vector<TokenId> got = tok->tokenize(text, m.add_special, m.parse_special);
      if (got == want) {
        ++m.passed;
      } else {
        ADD_FAILURE() << name << " line " << i + 1 << " (" << m.field << ") " << quoted(text)
                      << "\n  got  " << show_ids(got) << "\n  want " << show_ids(want);
      }
    }
  }
  std::cout << "[ info ] " << name << ": plain " << modes[0].passed << "/" << lines.size()
            << ", special " << modes[1].passed << "/" << lines.size() << ", bos " << modes[2].passed
            << "/" << lines.size() << "\n";
}

TEST_P(TokenizerOracleTest, DetokenizeEqualsLlamaCppByteForByte) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string name = GetParam();
  const Tokenizer* tok = load_vocab(fixtures, name);
  ASSERT_NE(tok, nullptr);
  const std::vector<std::string> lines =
      read_lines(fixtures + "/vocab/" + name + ".detokenize.jsonl");
  ASSERT_FALSE(lines.empty());
  int passed = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(lines[i]);
    const std::vector<TokenId> ids = j.at("ids").get<std::vector<TokenId>>();
    const std::string want = j.at("text").get<std::string>();
    const std::string got = tok->detokenize(ids, /*remove_special=*/false,
                                            /*unparse_special=*/false);
    if (got == want) {
      ++passed;
    } else {
      ADD_FAILURE() << name << " line " << i + 1 << "\n  got  " << quoted(got) << "\n  want "
                    << quoted(want);
    }
  }
  std::cout << "[ info ] " << name << ": detokenize " << passed << "/" << lines.size() << "\n";
}

TEST_P(TokenizerOracleTest, LlamaCppVocabTestInpOutPairsMatch) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string name = GetParam();
  const Tokenizer* tok = load_vocab(fixtures, name);
  ASSERT_NE(tok, nullptr);
  const std::string base = fixtures + "/vocab/ggml-vocab-" + name + ".gguf";
  // Split the way llama.cpp's test-tokenizer-0 does; the text after the last separator is
  // not a test.
  const std::string inp = read_file(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  for (size_t next; (next = inp.find(sep, pos)) != std::string::npos; pos = next + sep.size()) {
    texts.push_back(inp.substr(pos, next - pos));
  }
  const std::vector<std::string> outs = read_lines(base + ".out");
  ASSERT_EQ(texts.size(), outs.size());
  int passed = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<TokenId> want;
    std::istringstream ss(outs[i]);
    for (TokenId id; ss >> id;) want.push_back(id);
    const std::vector<TokenId> got = tok->tokenize(texts[i], false, false);
    if (got == want) {
      ++passed;
    } else {
      ADD_FAILURE() << name << " .inp #" << i + 1 << " " << quoted(texts[i]) << "\n  got  "
                    << show_ids(got) << "\n  want " << show_ids(want);
    }
  }
  std::cout << "[ info ] " << name << ": .inp/.out " << passed << "/" << texts.size() << "\n";
}

// Not a speed assertion: prints what the 2,000-character paragraph costs, for the report.
TEST_P(TokenizerOracleTest, LongParagraphTokenizesAndRoundTripsThroughDetokenize) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string name = GetParam();
  const Tokenizer* tok = load_vocab(fixtures, name);
  ASSERT_NE(tok, nullptr);
  std::string paragraph;
  for (const std::string& line : read_lines(fixtures + "/vocab/" + name + ".tokenize.jsonl")) {
    const std::string text = nlohmann::json::parse(line).at("text").get<std::string>();
    if (text.size() > paragraph.size()) paragraph = text;
  }
  ASSERT_GE(paragraph.size(), 2000u);
  const int kRounds = 20;
  std::vector<TokenId> ids;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < kRounds; ++r) ids = tok->tokenize(paragraph, false, false);
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kRounds;
  std::cout << "[ info ] " << name << ": " << paragraph.size() << "-byte paragraph -> "
            << ids.size() << " tokens in " << us << " us\n";
  ASSERT_FALSE(ids.empty());
  // SPM and Qwen2 round-trip exactly; GPT-2 style clean-up may drop spaces before punctuation.
  const std::string back = tok->detokenize(ids);
  if (name == "llama-spm" || name == "phi-3" || name == "qwen2") {
    EXPECT_EQ(back, paragraph);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, TokenizerOracleTest,
                         ::testing::Values("llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace hangar::engine
