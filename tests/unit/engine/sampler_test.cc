#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace hangar::engine {
namespace {

Candidates make(const std::vector<float>& logits) {
  Candidates c;
  for (size_t i = 0; i < logits.size(); ++i) c.items.push_back({static_cast<TokenId>(i), logits[i], 0.0f});
  return c;
}

std::vector<TokenId> ids(const Candidates& c) {
  std::vector<TokenId> out;
  for (const auto& x : c.items) out.push_back(x.id);
  return out;
}

TEST(SamplerTest, GreedyPicksHighestLogitAndLowestIdOnTie) {
  EXPECT_EQ(pick_greedy(make({0.1f, 3.0f, -1.0f, 2.0f})), 1);
  EXPECT_EQ(pick_greedy(make({1.0f, 5.0f, 5.0f})), 1);
}

TEST(SamplerTest, TopKKeepsTheKHighestInOrder) {
  Candidates c = make({0.5f, 4.0f, 1.0f, 3.0f, 2.0f});
  apply_top_k(c, 3);
  EXPECT_EQ(ids(c), (std::vector<TokenId>{1, 3, 4}));
  apply_top_k(c, 0);  // off
  EXPECT_EQ(c.items.size(), 3u);
}

TEST(SamplerTest, TopPKeepsSmallestPrefixReachingP) {
  // Probabilities 0.5, 0.25, 0.125, 0.125 (logits are their logs).
  Candidates c = make({std::log(0.125f), std::log(0.5f), std::log(0.25f), std::log(0.125f)});
  apply_top_p(c, 0.7f);
  EXPECT_EQ(ids(c), (std::vector<TokenId>{1, 2}));
  Candidates d = make({std::log(0.125f), std::log(0.5f), std::log(0.25f), std::log(0.125f)});
  apply_top_p(d, 0.5f);
  EXPECT_EQ(ids(d), (std::vector<TokenId>{1}));
}

TEST(SamplerTest, MinPDropsTokensBelowFractionOfTheBest) {
  Candidates c = make({std::log(0.5f), std::log(0.2f), std::log(0.04f), std::log(0.26f)});
  apply_min_p(c, 0.1f);  // threshold 0.05
  EXPECT_EQ(ids(c), (std::vector<TokenId>{0, 3, 1}));
}

TEST(SamplerTest, TemperatureDividesLogits) {
  Candidates c = make({2.0f, -4.0f});
  apply_temperature(c, 0.5f);
  EXPECT_FLOAT_EQ(c.items[0].logit, 4.0f);
  EXPECT_FLOAT_EQ(c.items[1].logit, -8.0f);
}

TEST(SamplerTest, PenaltiesLowerSeenTokensOnly) {
  Candidates c = make({2.0f, -2.0f, 1.0f});
  std::deque<TokenId> hist = {0, 1, 1};
  apply_penalties(c, hist, 2.0f, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(c.items[0].logit, 2.0f / 2 - 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(c.items[1].logit, -2.0f * 2 - 2 * 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(c.items[2].logit, 1.0f);
}

TEST(SamplerTest, SameSeedGivesSameTokensAndDrawsFollowProbabilities) {
  std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 1234;
  Sampler a(p, 3), b(p, 3);
  std::map<TokenId, int> counts;
  std::vector<TokenId> seq_a, seq_b;
  for (int i = 0; i < 3000; ++i) {
    seq_a.push_back(a.sample(logits.data()));
    seq_b.push_back(b.sample(logits.data()));
    ++counts[seq_a.back()];
  }
  EXPECT_EQ(seq_a, seq_b);
  EXPECT_NEAR(counts[0] / 3000.0, 0.6, 0.05);
  EXPECT_NEAR(counts[2] / 3000.0, 0.1, 0.03);
  a.reset();
  EXPECT_EQ(a.sample(logits.data()), seq_a[0]);
}

TEST(SamplerTest, ZeroTemperatureIsGreedyAfterPenalties) {
  SamplerParams p;
  p.temperature = 0.0f;
  p.repeat_penalty = 10.0f;
  Sampler s(p, 3);
  std::vector<float> logits = {1.0f, 3.0f, 2.0f};
  EXPECT_EQ(s.sample(logits.data()), 1);
  s.accept(1);
  EXPECT_EQ(s.sample(logits.data()), 2);  // 3 / 10 < 2
}

}  // namespace
}  // namespace hangar::engine
