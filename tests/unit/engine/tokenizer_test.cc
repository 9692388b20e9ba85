// Tokenizer rules on small hand-built vocabularies: each test builds exactly the tokens,
// scores and merges that make one rule visible.
#include "engine/tokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/tokenizer_special.h"
#include "engine/unicode.h"

namespace hangar::engine {
namespace {

constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6;
const std::string kSp = "\xE2\x96\x81";  // "▁"

// An SPM vocabulary: <unk> <s> </s>, the 256 byte tokens, then `pieces` (text, score).
VocabSpec spm_spec(const std::vector<std::pair<std::string, float>>& pieces) {
  VocabSpec s;
  s.model = "llama";
  s.pre = "default";
  auto add = [&s](std::string text, float score, int32_t type) {
    s.tokens.push_back(std::move(text));
    s.scores.push_back(score);
    s.token_types.push_back(type);
  };
  add("<unk>", 0, kUnknown);
  add("<s>", 0, kControl);
  add("</s>", 0, kControl);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name, 0, kByte);
  }
  for (const auto& [text, score] : pieces) add(text, score, kNormal);
  s.bos = 1;
  s.eos = 2;
  s.unk = 0;
  return s;
}

// A byte-level BPE vocabulary: the 256 byte pieces (ids 0..255), then `extra` tokens, then
// `specials` as CONTROL tokens; merges as given.
VocabSpec bpe_spec(const std::string& pre, const std::vector<std::string>& extra,
                   const std::vector<std::string>& merges,
                   const std::vector<std::string>& specials = {"<|endoftext|>"}) {
  VocabSpec s;
  s.model = "gpt2";
  s.pre = pre;
  for (int b = 0; b < 256; ++b) {
    s.tokens.push_back(byte_to_gpt2_piece(static_cast<uint8_t>(b)));
    s.token_types.push_back(kNormal);
  }
  for (const std::string& t : extra) {
    s.tokens.push_back(t);
    s.token_types.push_back(kNormal);
  }
  for (const std::string& t : specials) {
    s.tokens.push_back(t);
    s.token_types.push_back(kControl);
  }
  s.merges = merges;
  s.bos = s.eos = static_cast<uint32_t>(s.tokens.size() - 1);
  return s;
}

std::unique_ptr<Tokenizer> make(VocabSpec spec) {
  auto t = Tokenizer::from_spec(std::move(spec));
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? std::move(*t) : nullptr;
}

using Ids = std::vector<TokenId>;

// ---- SPM -----------------------------------------------------------------------------------

TEST(SpmTokenizerTest, MergesTheHighestScoringPairFirst) {
  // "▁abc": "bc" outscores "▁a"/"ab", so b+c merge first and "ab" can no longer form.
  auto tok = make(spm_spec(
      {{kSp, -1}, {"a", -1}, {"b", -1}, {"c", -1}, {"ab", -5}, {"bc", -2}, {kSp + "a", -3}}));
  ASSERT_TRUE(tok);
  const Ids ids = tok->tokenize("abc", false, false);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(tok->token_text(ids[0]), kSp + "a");
  EXPECT_EQ(tok->token_text(ids[1]), "bc");
}

TEST(SpmTokenizerTest, EqualScoresMergeLeftmostFirst) {
  auto tok = make(spm_spec({{kSp, -1}, {"a", -1}, {"aa", -2}}));
  ASSERT_TRUE(tok);
  const Ids ids = tok->tokenize("aaa", false, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(tok->token_text(ids[0]), kSp);
  EXPECT_EQ(tok->token_text(ids[1]), "aa");
  EXPECT_EQ(tok->token_text(ids[2]), "a");
}

TEST(SpmTokenizerTest, CharactersWithoutATokenFallBackToByteTokens) {
  auto tok = make(spm_spec({{kSp, -1}}));
  ASSERT_TRUE(tok);
  // "é" is C3 A9; byte token <0xNN> has id 3 + NN.
  EXPECT_EQ(tok->tokenize("\xC3\xA9", false, false),
            (Ids{tok->find_token(kSp), 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->detokenize(tok->tokenize("\xC3\xA9", false, false)), "\xC3\xA9");
}

TEST(SpmTokenizerTest, InvalidUtf8FallsBackToBytesAndRoundTrips) {
  auto tok = make(spm_spec({{kSp, -1}, {"a", -1}}));
  ASSERT_TRUE(tok);
  const std::string text = "a\xFF\xC3";
  EXPECT_EQ(tok->tokenize(text, false, false),
            (Ids{tok->find_token(kSp), tok->find_token("a"), 3 + 0xFF, 3 + 0xC3}));
  EXPECT_EQ(tok->detokenize(tok->tokenize(text, false, false)), text);
}

TEST(SpmTokenizerTest, FirstFragmentAndFragmentsAfterSpecialTokensGetASpacePrefix) {
  auto tok = make(spm_spec({{kSp, -1}, {"a", -1}, {kSp + "a", -1}}));
  ASSERT_TRUE(tok);
  const TokenId sp_a = tok->find_token(kSp + "a");
  EXPECT_EQ(tok->tokenize("a", false, false), (Ids{sp_a}));
  EXPECT_EQ(tok->tokenize("a", true, false), (Ids{1, sp_a}));
  // "<s>" parsed as a token: the text after it is prefixed again.
  EXPECT_EQ(tok->tokenize("a<s>a", false, true), (Ids{sp_a, 1, sp_a}));
  // Without special parsing, "<s>" is text: "<", "s", ">" have no tokens -> bytes.
  EXPECT_EQ(tok->tokenize("<s>", false, false),
            (Ids{tok->find_token(kSp), 3 + '<', 3 + 's', 3 + '>'}));
}

TEST(SpmTokenizerTest, AddSpacePrefixFalseAddsNoSpace) {
  VocabSpec spec = spm_spec({{kSp, -1}, {"a", -1}, {kSp + "a", -1}});
  spec.add_space_prefix = false;
  auto tok = make(std::move(spec));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->tokenize("a", false, false), (Ids{tok->find_token("a")}));
}

TEST(SpmTokenizerTest, DetokenizeRemovesOnlyTheFirstTokensLeadingSpace) {
  auto tok = make(spm_spec({{kSp, -1}, {"a", -1}, {kSp + "a", -1}, {kSp + kSp, -1}}));
  ASSERT_TRUE(tok);
  const TokenId sp_a = tok->find_token(kSp + "a");
  EXPECT_EQ(tok->detokenize(Ids{sp_a, sp_a}), "a a");
  EXPECT_EQ(tok->detokenize(Ids{tok->find_token(kSp + kSp)}), " ");
  // A leading BOS renders as nothing but still uses up the removal.
  EXPECT_EQ(tok->detokenize(Ids{1, sp_a}), " a");
  // remove_special drops the BOS and, as in llama.cpp, also turns the space removal off.
  EXPECT_EQ(tok->detokenize(Ids{1, sp_a}, /*remove_special=*/true), " a");
  EXPECT_EQ(tok->detokenize(Ids{1, sp_a}, false, /*unparse_special=*/true), "<s> a");
}

TEST(SpmTokenizerTest, SpecialIdsDefaultsAndAddBos) {
  auto tok = make(spm_spec({{kSp, -1}}));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_FALSE(tok->is_eog(1));
  EXPECT_EQ(tok->tokenize("", true, false), (Ids{1}));
  EXPECT_EQ(tok->tokenize("", false, false), (Ids{}));
}

// ---- BPE -----------------------------------------------------------------------------------

TEST(BpeTokenizerTest, LowerMergeRankWinsRegardlessOfPosition) {
  // "abc": with "b c" ranked before "a b", b+c merge first.
  auto first = make(bpe_spec("gpt-2", {"ab", "bc"}, {"b c", "a b"}));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->tokenize("abc", false, false), (Ids{'a', first->find_token("bc")}));
  auto second = make(bpe_spec("gpt-2", {"ab", "bc"}, {"a b", "b c"}));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->tokenize("abc", false, false), (Ids{second->find_token("ab"), 'c'}));
}

TEST(BpeTokenizerTest, EqualRanksMergeLeftmostFirstAndMergesChain) {
  auto tok = make(bpe_spec("gpt-2", {"aa", "aaaa"}, {"a a", "aa aa"}));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->tokenize("aaa", false, false), (Ids{tok->find_token("aa"), 'a'}));
  EXPECT_EQ(tok->tokenize("aaaa", false, false), (Ids{tok->find_token("aaaa")}));
}

TEST(BpeTokenizerTest, Llama3TakesAWholeWordThatIsATokenWithoutMerging) {
  // "abc" is a token but no merge path builds it.
  auto llama3 = make(bpe_spec("llama-bpe", {"abc"}, {"x y"}));
  ASSERT_TRUE(llama3);
  EXPECT_EQ(llama3->tokenize("abc", false, false), (Ids{llama3->find_token("abc")}));
  auto gpt2 = make(bpe_spec("gpt-2", {"abc"}, {"x y"}));
  ASSERT_TRUE(gpt2);
  EXPECT_EQ(gpt2->tokenize("abc", false, false), (Ids{'a', 'b', 'c'}));
}

TEST(BpeTokenizerTest, Llama3AddsBosByDefaultOthersDoNot) {
  auto llama3 = make(bpe_spec("llama-bpe", {}, {"a b"}, {"<|begin_of_text|>"}));
  ASSERT_TRUE(llama3);
  EXPECT_TRUE(llama3->add_bos());
  EXPECT_EQ(llama3->tokenize("", true, false), (Ids{llama3->bos()}));
  auto gpt2 = make(bpe_spec("gpt-2", {}, {"a b"}));
  ASSERT_TRUE(gpt2);
  EXPECT_FALSE(gpt2->add_bos());
  EXPECT_EQ(gpt2->tokenize("a", true, false), (Ids{'a'}));
  // The add_bos_token key overrides the default either way.
  VocabSpec spec = bpe_spec("llama-bpe", {}, {"a b"});
  spec.add_bos = false;
  auto off = make(std::move(spec));
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->add_bos());
}

TEST(BpeTokenizerTest, SpecialTokensAreSingleIdsOnlyWithParseSpecialAndSplitMerges) {
  // The merge "a b" would join a and b, but a special token between them keeps them apart.
  auto tok = make(bpe_spec("qwen2", {"ab"}, {"a b"}, {"<|im_start|>"}));
  ASSERT_TRUE(tok);
  const TokenId im_start = tok->find_token("<|im_start|>");
  EXPECT_EQ(tok->tokenize("a<|im_start|>b", false, true), (Ids{'a', im_start, 'b'}));
  const Ids plain = tok->tokenize("<|im_start|>", false, false);
  EXPECT_EQ(plain.size(), 12u);  // one byte token per character
  EXPECT_EQ(std::count(plain.begin(), plain.end(), im_start), 0);
}

TEST(BpeTokenizerTest, UserDefinedTokensAreSplitEvenWithoutParseSpecial) {
  VocabSpec spec = bpe_spec("gpt-2", {}, {"a b"});
  spec.tokens.push_back("<tool>");
  spec.token_types.push_back(kUserDefined);
  auto tok = make(std::move(spec));
  ASSERT_TRUE(tok);
  const TokenId tool = tok->find_token("<tool>");
  EXPECT_EQ(tok->tokenize("a<tool>", false, false), (Ids{'a', tool}));
  // User-defined tokens render as their text even when special rendering is off.
  EXPECT_EQ(tok->detokenize(Ids{tool}), "<tool>");
}

TEST(BpeTokenizerTest, UnknownPreTokenizerFallsBackToDefault) {
  auto tok = make(bpe_spec("no-such-pre", {"ab"}, {"a b"}));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->tokenize("ab", false, false), (Ids{tok->find_token("ab")}));
}

TEST(BpeTokenizerTest, DetokenizeAppliesCleanUpSpacesExceptForQwen2) {
  auto gpt2 = make(bpe_spec("gpt-2", {}, {"a b"}));
  ASSERT_TRUE(gpt2);
  const std::string text = "a . b 's";
  EXPECT_EQ(gpt2->detokenize(gpt2->tokenize(text, false, false)), "a. b's");
  auto qwen2 = make(bpe_spec("qwen2", {}, {"a b"}));
  ASSERT_TRUE(qwen2);
  EXPECT_EQ(qwen2->detokenize(qwen2->tokenize(text, false, false)), text);
}

TEST(BpeTokenizerTest, ControlTokensRenderOnlyWithUnparseSpecial) {
  auto tok = make(bpe_spec("gpt-2", {}, {"a b"}));
  ASSERT_TRUE(tok);
  const TokenId eot = tok->find_token("<|endoftext|>");
  EXPECT_EQ(tok->detokenize(Ids{'a', eot}), "a");
  EXPECT_EQ(tok->detokenize(Ids{'a', eot}, false, true), "a<|endoftext|>");
  EXPECT_EQ(tok->token_to_piece(eot, false), "");
  EXPECT_EQ(tok->token_to_piece(eot, true), "<|endoftext|>");
  EXPECT_TRUE(tok->is_eog(eot));
  EXPECT_EQ(tok->eot(), eot);
  // Ids outside the vocabulary render as nothing.
  EXPECT_EQ(tok->detokenize(Ids{-5, 1 << 30}), "");
}

TEST(BpeTokenizerTest, InvalidUtf8BecomesReplacementCharacterBytes) {
  auto tok = make(bpe_spec("llama-bpe", {}, {"a b"}));
  ASSERT_TRUE(tok);
  // U+FFFD is EF BF BD: three byte tokens; decoding gives the replacement character back.
  const Ids ids = tok->tokenize("\xFF", false, false);
  EXPECT_EQ(tok->detokenize(ids), "\xEF\xBF\xBD");
}

// ---- both ----------------------------------------------------------------------------------

TEST(TokenizerTest, RandomBytesNeverCrashAnyTokenizer) {
  std::vector<std::unique_ptr<Tokenizer>> toks;
  toks.push_back(make(spm_spec({{kSp, -1}, {"a", -1}, {kSp + "a", -2}})));
  for (const char* pre : {"default", "llama-bpe", "qwen2", "gpt-2"}) {
    toks.push_back(make(bpe_spec(pre, {"ab", "Ġa"}, {"a b", "Ġ a"}, {"<|x|>", "<s>"})));
  }
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 200; ++round) {
    std::string text;
    for (int i = 0; i < round % 64; ++i) text += static_cast<char>(byte(rng));
    if (round % 5 == 0) text += "<|x|><s> a";
    for (const auto& tok : toks) {
      ASSERT_TRUE(tok);
      for (bool special : {false, true}) {
        const Ids ids = tok->tokenize(text, special, special);
        for (TokenId id : ids) ASSERT_TRUE(id >= 0 && id < tok->n_vocab());
        (void)tok->detokenize(ids, special, special);
      }
    }
  }
}

TEST(TokenizerTest, BadVocabulariesAreErrorsNamingTheProblem) {
  VocabSpec empty = spm_spec({});
  empty.tokens.clear();
  empty.scores.clear();
  empty.token_types.clear();
  auto a = Tokenizer::from_spec(empty);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("no tokens"), std::string::npos);

  VocabSpec short_scores = spm_spec({{"x", 0}});
  short_scores.scores.pop_back();
  auto b = Tokenizer::from_spec(short_scores);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("tokenizer.ggml.scores"), std::string::npos);

  VocabSpec unknown = spm_spec({});
  unknown.model = "bert";
  auto c = Tokenizer::from_spec(unknown);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'bert'"), std::string::npos);

  VocabSpec no_merges = bpe_spec("gpt-2", {}, {});
  auto d = Tokenizer::from_spec(no_merges);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("merges"), std::string::npos);
}

TEST(TokenizerTest, OutOfRangeSpecialIdKeepsTheDefault) {
  VocabSpec spec = spm_spec({{kSp, -1}});
  spec.bos = 1u << 30;
  auto tok = make(std::move(spec));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->bos(), 1);
}

// ---- special-token splitting ---------------------------------------------------------------

TEST(SpecialSplitTest, LongerSpecialTokensWinAndFragmentsKeepOffsets) {
  VocabSpec spec = bpe_spec("gpt-2", {}, {"a b"}, {"<|a|>", "<|a|><|a|>"});
  auto vocab = Vocab::build(std::move(spec));
  ASSERT_TRUE(vocab.ok());
  const TokenId one = vocab->text_to_token("<|a|>");
  const TokenId two = vocab->text_to_token("<|a|><|a|>");
  const auto frags = split_special_tokens(*vocab, "x<|a|><|a|><|a|>y", true);
  ASSERT_EQ(frags.size(), 4u);
  EXPECT_TRUE(frags[0].is_text());
  EXPECT_EQ(frags[0].offset, 0u);
  EXPECT_EQ(frags[0].length, 1u);
  EXPECT_EQ(frags[1].token, two);
  EXPECT_EQ(frags[2].token, one);
  EXPECT_TRUE(frags[3].is_text());
  EXPECT_EQ(frags[3].offset, 16u);
  EXPECT_TRUE(split_special_tokens(*vocab, "", true).empty());
  EXPECT_EQ(split_special_tokens(*vocab, "<|a|>", false).size(), 1u);
}

TEST(SpecialSplitTest, Phi3SpecialTokensSwallowFollowingWhitespace) {
  VocabSpec spec = spm_spec({{kSp, -1}, {"a", -1}, {kSp + "a", -1}});
  spec.general_name = "Phi3";
  spec.tokens.push_back("<|end|>");
  spec.scores.push_back(0);
  spec.token_types.push_back(kControl);
  auto tok = make(std::move(spec));
  ASSERT_TRUE(tok);
  const TokenId end = tok->find_token("<|end|>");
  const TokenId sp_a = tok->find_token(kSp + "a");
  // "<|end|> \n a": the whitespace after <|end|> is dropped, then "a" gets the space prefix.
  EXPECT_EQ(tok->tokenize("<|end|> \n a", false, true), (Ids{end, sp_a}));
  // <s> keeps the whitespace after it (rstrip is off for it).
  EXPECT_EQ(tok->tokenize("<s> a", false, true), (Ids{1, tok->find_token(kSp), sp_a}));
}

}  // namespace
}  // namespace hangar::engine
