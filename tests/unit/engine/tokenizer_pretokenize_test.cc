#include "engine/tokenizer_pretokenize.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/unicode.h"

namespace hangar::engine {
namespace {

using Words = std::vector<std::string>;

Words split(PreTokenizerType type, std::string_view text) {
  auto pre = PreTokenizer::create(type);
  EXPECT_TRUE(pre.ok()) << pre.status().to_string();
  return pre.ok() ? pre->split(text) : Words{};
}

TEST(PreTokenizerTest, Llama3GroupsDigitsInThrees) {
  EXPECT_EQ(split(PreTokenizerType::kLlama3, "1234567"), (Words{"123", "456", "7"}));
}

TEST(PreTokenizerTest, Qwen2SplitsEveryDigit) {
  EXPECT_EQ(split(PreTokenizerType::kQwen2, "2024"), (Words{"2", "0", "2", "4"}));
}

TEST(PreTokenizerTest, Gpt2KeepsDigitRunsWithTheirLeadingSpace) {
  EXPECT_EQ(split(PreTokenizerType::kGpt2, "a 1234567"), (Words{"a", " 1234567"}));
}

TEST(PreTokenizerTest, Gpt2SplitsContractionsCaseSensitively) {
  EXPECT_EQ(split(PreTokenizerType::kGpt2, "I'm he's"), (Words{"I", "'m", " he", "'s"}));
  // GPT-2's regex only knows lower case: "'S" is punctuation then a letter.
  EXPECT_EQ(split(PreTokenizerType::kGpt2, "HE'S"), (Words{"HE", "'", "S"}));
}

TEST(PreTokenizerTest, Llama3SplitsContractionsInEitherCase) {
  EXPECT_EQ(split(PreTokenizerType::kLlama3, "HE'S we'LL"), (Words{"HE", "'S", " we", "'LL"}));
}

TEST(PreTokenizerTest, WhitespaceBeforeAWordLeavesOneSpaceForTheWord) {
  // \s+(?!\S): of three spaces, two stand alone and the third joins the word.
  EXPECT_EQ(split(PreTokenizerType::kGpt2, "a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(split(PreTokenizerType::kLlama3, "a   b"), (Words{"a", "  ", " b"}));
  // Trailing whitespace stays together.
  EXPECT_EQ(split(PreTokenizerType::kGpt2, "a  "), (Words{"a", "  "}));
}

TEST(PreTokenizerTest, Llama3KeepsNewlinesWithPrecedingWhitespace) {
  EXPECT_EQ(split(PreTokenizerType::kLlama3, "a \n\nb"), (Words{"a", " \n\n", "b"}));
  EXPECT_EQ(split(PreTokenizerType::kLlama3, "x.\n"), (Words{"x", ".\n"}));
}

TEST(PreTokenizerTest, NextLineCharacterCountsAsWhitespaceAsInLlamaCpp) {
  // U+0085 is whitespace for llama.cpp (not for PCRE2's \s): it joins the whitespace run.
  EXPECT_EQ(split(PreTokenizerType::kGpt2, "a \xC2\x85 b"), (Words{"a", " \xC2\x85", " b"}));
}

TEST(PreTokenizerTest, LettersOfAnyScriptFormWords) {
  EXPECT_EQ(split(PreTokenizerType::kGpt2, "Привет мир"), (Words{"Привет", " мир"}));
  EXPECT_EQ(split(PreTokenizerType::kQwen2, "今天天气"), (Words{"今天天气"}));
}

TEST(PreTokenizerTest, DefaultFamilySplitsPunctuationRunsAndDigitTriples) {
  const Words words = split(PreTokenizerType::kDefault, "hi!! 123456");
  EXPECT_EQ(words, (Words{"hi", "!!", " ", "123", "456"}));
}

TEST(PreTokenizerTest, WordsConcatenateToTheLenientlyDecodedText) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  for (PreTokenizerType type : {PreTokenizerType::kDefault, PreTokenizerType::kLlama3,
                                PreTokenizerType::kQwen2, PreTokenizerType::kGpt2}) {
    auto pre = PreTokenizer::create(type);
    ASSERT_TRUE(pre.ok());
    for (int round = 0; round < 300; ++round) {
      std::string text;
      const int n = round % 40;
      for (int i = 0; i < n; ++i) text += static_cast<char>(byte(rng));
      std::string expected;
      for (uint32_t c : decode_utf8(text)) append_utf8(c, &expected);
      std::string joined;
      for (const std::string& w : pre->split(text)) {
        EXPECT_FALSE(w.empty());
        joined += w;
      }
      EXPECT_EQ(joined, expected);
    }
  }
}

TEST(PreTokenizerTest, InvalidUtf8IsReadAsReplacementCharacters) {
  EXPECT_EQ(split(PreTokenizerType::kGpt2,
                  "a\xFF"
                  "b"),
            (Words{"a", "\xEF\xBF\xBD", "b"}));
  // A lone surrogate survives decoding and is kept as it was.
  EXPECT_EQ(split(PreTokenizerType::kGpt2, "\xED\xA0\x80"), (Words{"\xED\xA0\x80"}));
}

}  // namespace
}  // namespace hangar::engine
