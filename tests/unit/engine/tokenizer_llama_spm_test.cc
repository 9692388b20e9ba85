// SPM rules on the real Llama 2 vocabulary in tests/data (a copy of the fixtures' llama-spm
// vocab), so that they run without the shared fixtures. Expected ids are llama.cpp's, from
// the fixtures' llama-spm.tokenize.jsonl.
#include <gtest/gtest.h>

#include <memory>

#include "engine/tokenizer.h"
#include "gguf/gguf.h"
#include "support/test_support.h"

namespace hangar::engine {
namespace {

using Ids = std::vector<TokenId>;

class LlamaSpmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto file = gguf::GgufFile::open(testing::test_data_dir() + "/ggml-vocab-llama-spm.gguf");
    ASSERT_TRUE(file.ok()) << file.status().to_string();
    auto tok = Tokenizer::from_gguf(**file);
    ASSERT_TRUE(tok.ok()) << tok.status().to_string();
    tok_ = std::move(*tok).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(tok_, nullptr); }
  static Tokenizer* tok_;
};
Tokenizer* LlamaSpmTest::tok_ = nullptr;

TEST_F(LlamaSpmTest, ReadsSpecialIdsAndFlagsFromTheFile) {
  EXPECT_EQ(tok_->n_vocab(), 32000);
  EXPECT_EQ(tok_->bos(), 1);
  EXPECT_EQ(tok_->eos(), 2);
  EXPECT_TRUE(tok_->add_bos());
  EXPECT_TRUE(tok_->is_eog(2));
  EXPECT_EQ(tok_->find_token("<s>"), 1);
}

TEST_F(LlamaSpmTest, SpacePrefixRules) {
  EXPECT_EQ(tok_->tokenize("Hello", false, false), (Ids{15043}));
  EXPECT_EQ(tok_->tokenize(" Hello", false, false), (Ids{29871, 15043}));
  EXPECT_EQ(tok_->tokenize(" ", false, false), (Ids{259}));
  EXPECT_EQ(tok_->tokenize("\n", false, false), (Ids{29871, 13}));
  EXPECT_EQ(tok_->tokenize("Hello", true, false), (Ids{1, 15043}));
  EXPECT_EQ(tok_->tokenize("", true, false), (Ids{1}));
}

TEST_F(LlamaSpmTest, SpecialTokensResetTheSpacePrefix) {
  EXPECT_EQ(tok_->tokenize("<s>Hello<s>", false, true), (Ids{1, 15043, 1}));
  EXPECT_EQ(tok_->tokenize("<s>\n", false, true), (Ids{1, 29871, 13}));
  EXPECT_EQ(tok_->tokenize(" <s> ", false, true), (Ids{259, 1, 259}));
}

TEST_F(LlamaSpmTest, DigitsAreOneTokenEach) {
  EXPECT_EQ(tok_->tokenize("1234567", false, false),
            (Ids{29871, 29896, 29906, 29941, 29946, 29945, 29953, 29955}));
}

TEST_F(LlamaSpmTest, DetokenizeRemovesTheSpacePrefixAgain) {
  EXPECT_EQ(tok_->detokenize(Ids{15043}), "Hello");
  EXPECT_EQ(tok_->detokenize(Ids{259}), " ");
  for (const char* text :
       {"Hello world", " leading", "tab\there", "\xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x81", "x\xFFy"}) {
    EXPECT_EQ(tok_->detokenize(tok_->tokenize(text, false, false)), text) << text;
  }
}

}  // namespace
}  // namespace hangar::engine
