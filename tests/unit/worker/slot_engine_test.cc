// SlotEngine on a fixture model: continuous batching puts a new prompt into the same forward
// batch as another slot's decode step, without changing either answer; a cancelled task frees
// its slot; requests beyond the slots wait their turn.
#include "worker/slot_engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <thread>

#include "support/test_support.h"

namespace hangar::worker {
namespace {

struct Loaded {
  std::unique_ptr<engine::Model> model;
  std::unique_ptr<engine::Context> context;
};

Loaded load(const std::string& fixtures, int n_slots) {
  Loaded l;
  auto m = engine::Model::load(fixtures + "/models/llama-spm-q4_0.gguf");
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  if (!m.ok()) return l;
  l.model = std::move(*m);
  engine::ContextParams p;
  p.n_ctx = 128 * n_slots;
  p.n_seq_max = n_slots;
  p.n_threads = 1;
  auto c = engine::Context::create(*l.model, p);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  if (c.ok()) l.context = std::move(*c);
  return l;
}

struct Outcome {
  std::vector<engine::TokenId> tokens;
  TaskResult result;
};

// A greedy task of `n` tokens whose outcome arrives through the returned future.
std::shared_ptr<Task> greedy_task(std::vector<engine::TokenId> prompt, int n,
                                  std::shared_ptr<Outcome> out, std::promise<void>* done) {
  auto t = std::make_shared<Task>();
  t->prompt = std::move(prompt);
  t->sampling.temperature = 0.0f;
  t->sampling.max_tokens = n;
  t->on_token = [out](engine::TokenId id, std::string_view, const TokenLogprob*) {
    out->tokens.push_back(id);
    return true;
  };
  t->on_done = [out, done](const TaskResult& r) {
    out->result = r;
    done->set_value();
  };
  return t;
}

constexpr auto kHang = std::chrono::seconds(120);  // a hang detector, not a speed limit

TEST(SlotEngineTest, NewPromptJoinsTheRunningBatchWithoutChangingAnswers) {
  HANGAR_REQUIRE_FIXTURES();
  const std::vector<engine::TokenId> prompt_a = {1, 450, 4996, 17354, 1701};
  const std::vector<engine::TokenId> prompt_b = {1, 3118, 2501, 263, 931, 727, 471};

  // Alone, one after the other.
  std::vector<engine::TokenId> alone_a, alone_b;
  {
    Loaded l = load(fixtures, 2);
    ASSERT_TRUE(l.context);
    SlotEngine eng(*l.model, *l.context, 2);
    for (auto* p : {&prompt_a, &prompt_b}) {
      auto out = std::make_shared<Outcome>();
      std::promise<void> done;
      ASSERT_TRUE(eng.submit(greedy_task(*p, 12, out, &done)).ok());
      ASSERT_EQ(done.get_future().wait_for(kHang), std::future_status::ready);
      ASSERT_TRUE(out->result.status.ok()) << out->result.status.to_string();
      (p == &prompt_a ? alone_a : alone_b) = out->tokens;
    }
    EXPECT_EQ(eng.stats().max_batch_rows, prompt_b.size());  // never more than one prompt
  }

  // Together: B is submitted from A's first token, so B's prompt is read while A decodes.
  Loaded l = load(fixtures, 2);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 2);
  auto out_a = std::make_shared<Outcome>();
  auto out_b = std::make_shared<Outcome>();
  std::promise<void> done_a, done_b;
  auto task_b = greedy_task(prompt_b, 12, out_b, &done_b);
  auto task_a = greedy_task(prompt_a, 12, out_a, &done_a);
  Status submit_b;
  task_a->on_token = [&, out_a](engine::TokenId id, std::string_view, const TokenLogprob*) {
    if (out_a->tokens.empty()) submit_b = eng.submit(task_b);
    out_a->tokens.push_back(id);
    return true;
  };
  ASSERT_TRUE(eng.submit(task_a).ok());
  ASSERT_EQ(done_a.get_future().wait_for(kHang), std::future_status::ready);
  ASSERT_TRUE(submit_b.ok()) << submit_b.to_string();
  ASSERT_EQ(done_b.get_future().wait_for(kHang), std::future_status::ready);
  EXPECT_EQ(out_a->tokens, alone_a);
  EXPECT_EQ(out_b->tokens, alone_b);
  // A's decode row and B's whole prompt went through one forward batch.
  EXPECT_GE(eng.stats().max_batch_rows, prompt_b.size() + 1);
  EXPECT_EQ(out_a->result.prompt_tokens, static_cast<int64_t>(prompt_a.size()));
  EXPECT_LE(out_b->result.completion_tokens, 12);
}

TEST(SlotEngineTest, CancelledTaskLeavesItsSlotAndTheNextRuns) {
  HANGAR_REQUIRE_FIXTURES();
  Loaded l = load(fixtures, 1);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 1);
  auto first = std::make_shared<Task>();
  first->prompt = {1, 450, 4996};
  first->sampling.temperature = 0.0f;
  first->sampling.max_tokens = 100;
  int seen = 0;
  Task* raw = first.get();
  first->on_token = [&, raw](engine::TokenId, std::string_view, const TokenLogprob*) {
    if (++seen == 3) raw->cancelled.store(true);  // the client went away
    return true;
  };
  std::promise<TaskResult> first_done;
  first->on_done = [&](const TaskResult& r) { first_done.set_value(r); };

  auto out = std::make_shared<Outcome>();
  std::promise<void> second_done;
  ASSERT_TRUE(eng.submit(first).ok());
  ASSERT_TRUE(eng.submit(greedy_task({1, 3118}, 2, out, &second_done)).ok());
  auto f = first_done.get_future();
  ASSERT_EQ(f.wait_for(kHang), std::future_status::ready);
  TaskResult r = f.get();
  EXPECT_EQ(r.status.code(), StatusCode::kCancelled);
  EXPECT_EQ(r.completion_tokens, 3);
  ASSERT_EQ(second_done.get_future().wait_for(kHang), std::future_status::ready);
  EXPECT_TRUE(out->result.status.ok());
}

TEST(SlotEngineTest, QueuedTasksWhoseClientsLeftHoldNoPlaceInTheQueue) {
  HANGAR_REQUIRE_FIXTURES();
  Loaded l = load(fixtures, 1);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 1, /*max_queue=*/2);
  // The one slot is held: its first token blocks the engine until the test lets it go.
  std::promise<void> running, release;
  auto release_future = release.get_future().share();
  auto hold = std::make_shared<Task>();
  hold->prompt = {1, 450};
  hold->sampling.temperature = 0.0f;
  hold->sampling.max_tokens = 2;
  bool first = true;
  hold->on_token = [&, release_future](engine::TokenId, std::string_view, const TokenLogprob*) {
    if (first) {
      first = false;
      running.set_value();
      release_future.wait();
    }
    return true;
  };
  std::promise<void> hold_done;
  hold->on_done = [&](const TaskResult&) { hold_done.set_value(); };
  ASSERT_TRUE(eng.submit(hold).ok());
  ASSERT_EQ(running.get_future().wait_for(kHang), std::future_status::ready);
  // Two queued requests whose clients leave.
  std::vector<std::shared_ptr<Outcome>> gone_out(2, nullptr);
  std::vector<std::promise<void>> gone_done(2);
  for (int i = 0; i < 2; ++i) {
    gone_out[i] = std::make_shared<Outcome>();
    auto t = greedy_task({1, 3118}, 2, gone_out[i], &gone_done[i]);
    ASSERT_TRUE(eng.submit(t).ok());
    t->cancelled.store(true);
  }
  // A live client still gets in, and the two who left are told so.
  auto live_out = std::make_shared<Outcome>();
  std::promise<void> live_done;
  Status live = eng.submit(greedy_task({1, 3118}, 2, live_out, &live_done));
  EXPECT_TRUE(live.ok()) << live.to_string();
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(gone_done[i].get_future().wait_for(kHang), std::future_status::ready);
    EXPECT_EQ(gone_out[i]->result.status.code(), StatusCode::kCancelled);
  }
  release.set_value();
  ASSERT_EQ(hold_done.get_future().wait_for(kHang), std::future_status::ready);
  if (live.ok()) {
    ASSERT_EQ(live_done.get_future().wait_for(kHang), std::future_status::ready);
    EXPECT_TRUE(live_out->result.status.ok());
  }
}

TEST(SlotEngineTest, BusySlotsGaugeReturnsToZeroWhenIdle) {
  HANGAR_REQUIRE_FIXTURES();
  Loaded l = load(fixtures, 1);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 1);
  auto out = std::make_shared<Outcome>();
  std::promise<void> done;
  ASSERT_TRUE(eng.submit(greedy_task({1, 3118}, 2, out, &done)).ok());
  ASSERT_EQ(done.get_future().wait_for(kHang), std::future_status::ready);
  // Hang detector: the engine goes idle right after the last task finished.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (eng.stats().slots_busy != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(eng.stats().slots_busy, 0);
  EXPECT_EQ(eng.stats().queued, 0);
}

TEST(SlotEngineTest, PromptLongerThanASlotIsRejected) {
  HANGAR_REQUIRE_FIXTURES();
  Loaded l = load(fixtures, 2);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 2);
  auto t = std::make_shared<Task>();
  t->prompt.assign(200, 100);
  Status s = eng.submit(t);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("200 tokens"), std::string::npos) << s.message();
  t->prompt = {1, 99999999};
  EXPECT_FALSE(eng.submit(t).ok());
}

TEST(SlotEngineTest, EmbeddingIsUnitLength) {
  HANGAR_REQUIRE_FIXTURES();
  Loaded l = load(fixtures, 1);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 1);
  auto t = std::make_shared<Task>();
  t->prompt = {1, 450, 4996, 17354};
  t->embedding = true;
  std::promise<TaskResult> done;
  t->on_done = [&](const TaskResult& r) { done.set_value(r); };
  ASSERT_TRUE(eng.submit(t).ok());
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(kHang), std::future_status::ready);
  TaskResult r = f.get();
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  ASSERT_EQ(r.embedding.size(), static_cast<size_t>(l.model->hparams().n_embd));
  double norm = 0;
  for (float v : r.embedding) norm += double(v) * v;
  EXPECT_NEAR(norm, 1.0, 1e-4);
}

}  // namespace
}  // namespace hangar::worker

namespace hangar::worker {
namespace {

TEST(SlotEngineLogprobsTest, GreedyTokenIsTheMostLikelyAlternativeAndProbabilitiesSumBelowOne) {
  HANGAR_REQUIRE_FIXTURES();
  Loaded l = load(fixtures, 1);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 1);
  auto lps = std::make_shared<std::vector<TokenLogprob>>();
  auto out = std::make_shared<Outcome>();
  std::promise<void> done;
  auto t = greedy_task({1, 450, 4996, 17354, 1701}, 5, out, &done);
  t->sampling.logprobs = true;
  t->sampling.top_logprobs = 4;
  t->on_token = [out, lps](engine::TokenId id, std::string_view piece, const TokenLogprob* lp) {
    out->tokens.push_back(id);
    EXPECT_NE(lp, nullptr);
    if (lp != nullptr) {
      EXPECT_EQ(lp->token, piece);
      lps->push_back(*lp);
    }
    return true;
  };
  ASSERT_TRUE(eng.submit(t).ok());
  ASSERT_EQ(done.get_future().wait_for(kHang), std::future_status::ready);
  ASSERT_EQ(lps->size(), out->tokens.size());
  ASSERT_FALSE(lps->empty());
  for (const TokenLogprob& lp : *lps) {
    ASSERT_EQ(lp.top.size(), 4u);
    EXPECT_EQ(lp.top[0].first, lp.token);
    EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);
    double p = 0;
    for (size_t k = 0; k < lp.top.size(); ++k) {
      if (k > 0) {
        EXPECT_GE(lp.top[k - 1].second, lp.top[k].second);
      }
      EXPECT_LE(lp.top[k].second, 0.0f);
      p += std::exp(static_cast<double>(lp.top[k].second));
    }
    EXPECT_LE(p, 1.0 + 1e-5);
    EXPECT_GT(p, 0.0);
  }
}

}  // namespace
}  // namespace hangar::worker

namespace hangar::worker {
namespace {

// A greedy task's tokens and each token's log-probability, run to the end on `eng`.
struct Answer {
  std::vector<engine::TokenId> tokens;
  std::vector<float> logprobs;
  TaskResult result;
};

Answer answer(SlotEngine& eng, std::vector<engine::TokenId> prompt, int n,
              bool cache_prompt = true) {
  Answer a;
  auto t = std::make_shared<Task>();
  t->prompt = std::move(prompt);
  t->sampling.temperature = 0.0f;
  t->sampling.max_tokens = n;
  t->sampling.logprobs = true;
  t->sampling.cache_prompt = cache_prompt;
  t->on_token = [&a](engine::TokenId id, std::string_view, const TokenLogprob* lp) {
    a.tokens.push_back(id);
    a.logprobs.push_back(lp != nullptr ? lp->logprob : 1.0f);
    return true;
  };
  std::promise<void> done;
  t->on_done = [&a, &done](const TaskResult& r) {
    a.result = r;
    done.set_value();
  };
  Status s = eng.submit(t);
  EXPECT_TRUE(s.ok()) << s.to_string();
  if (s.ok()) {
    EXPECT_EQ(done.get_future().wait_for(kHang), std::future_status::ready);
  }
  EXPECT_TRUE(a.result.status.ok()) << a.result.status.to_string();
  return a;
}

std::vector<engine::TokenId> concat(std::vector<engine::TokenId> a,
                                    const std::vector<engine::TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(SlotEnginePromptCacheTest, ANextTurnReadsOnlyItsNewTokensAndAnswersTheSameBits) {
  HANGAR_REQUIRE_FIXTURES();
  const std::vector<engine::TokenId> turn1 = {1, 450, 4996, 17354, 1701, 29889};
  const std::vector<engine::TokenId> more = {13, 3118, 2501, 263};

  // The reference: every prompt computed from an empty slot.
  Loaded ref_l = load(fixtures, 1);
  ASSERT_TRUE(ref_l.context);
  SlotEngine ref(*ref_l.model, *ref_l.context, 1);
  const Answer ref1 = answer(ref, turn1, 6, false);
  ASSERT_EQ(ref1.tokens.size(), 6u);
  const std::vector<engine::TokenId> turn2 = concat(concat(turn1, ref1.tokens), more);
  const Answer ref2 = answer(ref, turn2, 6, false);
  const Answer ref_again = answer(ref, turn2, 6, false);
  EXPECT_EQ(ref1.result.cached_tokens, 0);
  EXPECT_EQ(ref2.result.cached_tokens, 0);
  EXPECT_EQ(ref_again.result.cached_tokens, 0);

  Loaded l = load(fixtures, 1);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 1);
  const Answer a1 = answer(eng, turn1, 6);
  EXPECT_EQ(a1.result.cached_tokens, 0);
  // The slot holds turn 1 and the answer's tokens but its last (never fed back).
  const Answer a2 = answer(eng, turn2, 6);
  EXPECT_EQ(a2.result.cached_tokens, static_cast<int64_t>(turn1.size() + ref1.tokens.size() - 1));
  EXPECT_EQ(a2.result.prompt_tokens, static_cast<int64_t>(turn2.size()));
  // The very same prompt again: everything but its last token.
  const Answer again = answer(eng, turn2, 6);
  EXPECT_EQ(again.result.cached_tokens, static_cast<int64_t>(turn2.size() - 1));
  // A prompt that leaves the cached path early keeps only the shared part.
  std::vector<engine::TokenId> fork = turn2;
  fork[turn1.size() + 1] = 3118;
  const Answer forked = answer(eng, fork, 3);
  EXPECT_EQ(forked.result.cached_tokens, static_cast<int64_t>(turn1.size() + 1));

  EXPECT_EQ(a1.tokens, ref1.tokens);
  EXPECT_EQ(a1.logprobs, ref1.logprobs);
  EXPECT_EQ(a2.tokens, ref2.tokens);
  EXPECT_EQ(a2.logprobs, ref2.logprobs);  // bit for bit
  EXPECT_EQ(again.tokens, ref2.tokens);
  EXPECT_EQ(again.logprobs, ref2.logprobs);
  EXPECT_EQ(eng.stats().prompt_tokens_cached,
            static_cast<uint64_t>(a2.result.cached_tokens + again.result.cached_tokens +
                                  forked.result.cached_tokens));
}

TEST(SlotEnginePromptCacheTest, ATaskGoesToTheSlotHoldingItsPrefixAndOthersToTheIdlestSlot) {
  HANGAR_REQUIRE_FIXTURES();
  Loaded l = load(fixtures, 2);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 2);
  const std::vector<engine::TokenId> a = {1, 450, 4996, 17354, 1701};
  const std::vector<engine::TokenId> b = {1, 3118, 2501, 263, 931, 727};
  const std::vector<engine::TokenId> c = {1, 1724, 338, 278, 7483};
  EXPECT_EQ(answer(eng, a, 3).result.cached_tokens, 0);  // slot 0
  // b shares only the first token with slot 0 (less than half of b): the idle slot 1 takes it.
  EXPECT_EQ(answer(eng, b, 3).result.cached_tokens, 0);
  // a again finds its prefix in slot 0, though slot 1 has been idle longer.
  EXPECT_EQ(answer(eng, a, 3).result.cached_tokens, static_cast<int64_t>(a.size() - 1));
  // c matches neither: the least recently used slot (1, b's) takes it, keeping the one token
  // c shares with b.
  EXPECT_EQ(answer(eng, c, 3).result.cached_tokens, 1);
  EXPECT_EQ(answer(eng, a, 3).result.cached_tokens, static_cast<int64_t>(a.size() - 1));
  EXPECT_EQ(answer(eng, b, 3).result.cached_tokens, 1);  // c replaced it
}

TEST(SlotEnginePromptCacheTest, AnEmbeddingIsComputedWholeAfterAGenerationOfTheSamePrompt) {
  HANGAR_REQUIRE_FIXTURES();
  const std::vector<engine::TokenId> p = {1, 450, 4996, 17354};
  auto embed = [&](SlotEngine& eng) {
    auto t = std::make_shared<Task>();
    t->prompt = p;
    t->embedding = true;
    std::promise<TaskResult> done;
    t->on_done = [&](const TaskResult& r) { done.set_value(r); };
    EXPECT_TRUE(eng.submit(t).ok());
    auto f = done.get_future();
    EXPECT_EQ(f.wait_for(kHang), std::future_status::ready);
    return f.get();
  };
  Loaded fresh_l = load(fixtures, 1);
  ASSERT_TRUE(fresh_l.context);
  SlotEngine fresh(*fresh_l.model, *fresh_l.context, 1);
  const TaskResult ref = embed(fresh);
  ASSERT_TRUE(ref.status.ok());

  Loaded l = load(fixtures, 1);
  ASSERT_TRUE(l.context);
  SlotEngine eng(*l.model, *l.context, 1);
  answer(eng, p, 4);
  const TaskResult r = embed(eng);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.cached_tokens, 0);
  EXPECT_EQ(r.embedding, ref.embedding);
  // And a generation after the embedding starts from an empty slot.
  EXPECT_EQ(answer(eng, p, 2).result.cached_tokens, 0);
}

}  // namespace
}  // namespace hangar::worker
