// `hangar run` over real HTTP (design §7, worker part; issue 4): every endpoint, streamed and
// not, on a fixture model with a chat template (qwen2, chatml). Greedy requests
// (temperature 0) are deterministic, so a streamed answer must equal the non-streamed one, and
// with -np 4 eight concurrent streams must each equal the answer the prompt gets alone (the
// engine is batch-invariant and continuous batching must not change an answer).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "e2e/worker_harness.h"

namespace hangar::e2e {
namespace {

json chat_body(const std::string& user, int max_tokens) {
  return {{"model", "qwen"},
          {"messages", json::array({{{"role", "user"}, {"content", user}}})},
          {"max_tokens", max_tokens},
          {"temperature", 0}};
}

// The text of a streamed chat: the concatenated delta.content of every chunk.
std::string chat_stream_text(const SseReply& r) {
  std::string text;
  for (const json& ev : r.events) {
    if (!ev.contains("choices") || ev["choices"].empty()) continue;
    const json& d = ev["choices"][0]["delta"];
    if (d.contains("content") && d["content"].is_string()) text += d["content"].get<std::string>();
  }
  return text;
}

// Cuts `s` to whole UTF-8 characters at or after `pos`.
size_t char_boundary(const std::string& s, size_t pos) {
  while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
  return pos;
}

class WorkerApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto fixtures = testing::fixtures_dir();
    if (!fixtures) return;
    worker_ = new WorkerProcess({"-m", *fixtures + "/models/qwen2-f16.gguf", "-c", "512", "-np",
                                 "2", "-t", "1", "-a", "qwen"});
    base_ = worker_->wait_ready();
  }
  static void TearDownTestSuite() {
    if (worker_ != nullptr) {
      EXPECT_EQ(worker_->stop(), 0);
    }
    delete worker_;
    worker_ = nullptr;
  }
  void SetUp() override {
    if (!testing::fixtures_dir()) {
      if (std::getenv("CI") && std::string(std::getenv("CI")) == "true") {
        FAIL() << "the shared fixtures are missing under CI";
      }
      GTEST_SKIP() << "shared fixtures not found";
    }
    ASSERT_FALSE(base_.empty()) << "the worker did not become ready";
  }

  static inline WorkerProcess* worker_ = nullptr;
  static inline std::string base_;
};

TEST_F(WorkerApiTest, HealthIsOkAndModelsListsTheAlias) {
  JsonReply h = get_json(base_ + "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["status"], "ok");
  JsonReply m = get_json(base_ + "/v1/models");
  ASSERT_EQ(m.status, 200) << m.text;
  EXPECT_EQ(m.body["object"], "list");
  ASSERT_EQ(m.body["data"].size(), 1u);
  EXPECT_EQ(m.body["data"][0]["id"], "qwen");
  EXPECT_EQ(m.body["data"][0]["object"], "model");
  EXPECT_TRUE(m.body["data"][0]["created"].is_number_integer());
  EXPECT_TRUE(m.body["data"][0]["owned_by"].is_string());
}

TEST_F(WorkerApiTest, PropsReportSlotsTemplateAndTheMemoryPlanAndMeasurement) {
  JsonReply p = get_json(base_ + "/props");
  ASSERT_EQ(p.status, 200) << p.text;
  EXPECT_EQ(p.body["total_slots"], 2);
  EXPECT_EQ(p.body["n_ctx"], 512);
  EXPECT_EQ(p.body["n_ctx_slot"], 256);
  EXPECT_EQ(p.body["chat_template"], "chatml");
  const json& mem = p.body["memory"];
  const json& plan = mem["plan"]["CPU"];
  EXPECT_GT(plan["weights"].get<uint64_t>(), 0u);
  EXPECT_EQ(plan["total"].get<uint64_t>(),
            plan["weights"].get<uint64_t>() + plan["kv_cache"].get<uint64_t>() +
                plan["compute"].get<uint64_t>() + plan["overhead"].get<uint64_t>());
  EXPECT_GT(mem["measured"]["CPU"].get<uint64_t>(), plan["weights"].get<uint64_t>());
  EXPECT_GT(mem["rss_growth"]["CPU"].get<uint64_t>(), 0u);
  EXPECT_LE(mem["rss_growth"]["CPU"].get<uint64_t>(), mem["rss"]["CPU"].get<uint64_t>());
}

TEST_F(WorkerApiTest, ChatCompletionHasTheOpenAiShapeAndUsage) {
  JsonReply r = post_json(base_ + "/v1/chat/completions", chat_body("Hello there", 8));
  ASSERT_EQ(r.status, 200) << r.text;
  const json& b = r.body;
  EXPECT_EQ(b["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(b["object"], "chat.completion");
  EXPECT_TRUE(b["created"].is_number_integer());
  EXPECT_EQ(b["model"], "qwen");
  ASSERT_EQ(b["choices"].size(), 1u);
  EXPECT_EQ(b["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(b["choices"][0]["message"]["content"].is_string());
  const int completion = b["usage"]["completion_tokens"].get<int>();
  EXPECT_LE(completion, 8);
  EXPECT_GT(b["usage"]["prompt_tokens"].get<int>(), 3);
  EXPECT_EQ(b["usage"]["total_tokens"].get<int>(),
            b["usage"]["prompt_tokens"].get<int>() + completion);
  EXPECT_EQ(b["choices"][0]["finish_reason"], completion == 8 ? "length" : "stop");
}

TEST_F(WorkerApiTest, StreamedChatEqualsTheWholeAnswerAndEndsWithUsageAndDone) {
  JsonReply whole = post_json(base_ + "/v1/chat/completions", chat_body("Tell me a story", 12));
  ASSERT_EQ(whole.status, 200) << whole.text;
  json body = chat_body("Tell me a story", 12);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  SseReply s = post_sse(base_ + "/v1/chat/completions", body);
  ASSERT_EQ(s.status, 200);
  EXPECT_NE(s.content_type.find("text/event-stream"), std::string::npos);
  EXPECT_TRUE(s.done);
  EXPECT_FALSE(s.data_after_done);
  ASSERT_GE(s.events.size(), 2u);
  EXPECT_EQ(s.events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string finish;
  for (size_t i = 0; i + 1 < s.events.size(); ++i) {
    const json& ev = s.events[i];
    EXPECT_EQ(ev["object"], "chat.completion.chunk");
    EXPECT_EQ(ev["id"], s.events[0]["id"]);
    ASSERT_EQ(ev["choices"].size(), 1u);
    if (ev["choices"][0]["finish_reason"].is_string()) {
      EXPECT_TRUE(finish.empty()) << "two chunks carry a finish_reason";
      finish = ev["choices"][0]["finish_reason"];
    }
  }
  EXPECT_EQ(finish, whole.body["choices"][0]["finish_reason"]);
  // include_usage: one last chunk with no choices and the usage.
  json last = s.events.back();
  EXPECT_TRUE(last["choices"].empty());
  // The same prompt a second time: all but its last token come from the slot's cache.
  EXPECT_EQ(last["usage"]["prompt_tokens_details"]["cached_tokens"],
            last["usage"]["prompt_tokens"].get<int>() - 1);
  last["usage"].erase("prompt_tokens_details");
  whole.body["usage"].erase("prompt_tokens_details");
  EXPECT_EQ(last["usage"], whole.body["usage"]);
  EXPECT_EQ(chat_stream_text(s), whole.body["choices"][0]["message"]["content"]);
}

TEST_F(WorkerApiTest, CompletionsStreamedEqualsWholeAndCountsTokens) {
  json body = {{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"temperature", 0}};
  JsonReply whole = post_json(base_ + "/v1/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.text;
  EXPECT_EQ(whole.body["object"], "text_completion");
  EXPECT_EQ(whole.body["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(whole.body["model"], "qwen");
  ASSERT_EQ(whole.body["choices"].size(), 1u);
  EXPECT_LE(whole.body["usage"]["completion_tokens"].get<int>(), 10);
  body["stream"] = true;
  SseReply s = post_sse(base_ + "/v1/completions", body);
  ASSERT_EQ(s.status, 200);
  EXPECT_TRUE(s.done);
  std::string text, finish;
  for (const json& ev : s.events) {
    EXPECT_EQ(ev["object"], "text_completion");
    text += ev["choices"][0]["text"].get<std::string>();
    if (ev["choices"][0]["finish_reason"].is_string()) finish = ev["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, whole.body["choices"][0]["text"]);
  EXPECT_EQ(finish, whole.body["choices"][0]["finish_reason"]);
}

TEST_F(WorkerApiTest, CompletionsWithSeveralPromptsAnswerEachInOrder) {
  JsonReply one = post_json(base_ + "/v1/completions",
                            {{"prompt", "The sky is"}, {"max_tokens", 6}, {"temperature", 0}});
  JsonReply two = post_json(base_ + "/v1/completions",
                            {{"prompt", "Water is"}, {"max_tokens", 6}, {"temperature", 0}});
  JsonReply both = post_json(
      base_ + "/v1/completions",
      {{"prompt", json::array({"The sky is", "Water is"})}, {"max_tokens", 6}, {"temperature", 0}});
  ASSERT_EQ(both.status, 200) << both.text;
  ASSERT_EQ(both.body["choices"].size(), 2u);
  EXPECT_EQ(both.body["choices"][0]["index"], 0);
  EXPECT_EQ(both.body["choices"][0]["text"], one.body["choices"][0]["text"]);
  EXPECT_EQ(both.body["choices"][1]["text"], two.body["choices"][0]["text"]);
  EXPECT_EQ(both.body["usage"]["completion_tokens"].get<int>(),
            one.body["usage"]["completion_tokens"].get<int>() +
                two.body["usage"]["completion_tokens"].get<int>());
}

TEST_F(WorkerApiTest, NativeCompletionStreamsStopFalseFramesThenTheResultWithoutDone) {
  json body = {{"prompt", "Hello"}, {"n_predict", 8}, {"temperature", 0}};
  JsonReply whole = post_json(base_ + "/completion", body);
  ASSERT_EQ(whole.status, 200) << whole.text;
  EXPECT_EQ(whole.body["stop"], true);
  EXPECT_TRUE(whole.body["content"].is_string());
  const std::string stop_type = whole.body["stop_type"];
  EXPECT_TRUE(stop_type == "eos" || stop_type == "limit") << stop_type;
  body["stream"] = true;
  SseReply s = post_sse(base_ + "/completion", body);
  ASSERT_EQ(s.status, 200);
  EXPECT_FALSE(s.done);  // llama-server's /completion stream has no [DONE]
  ASSERT_GE(s.events.size(), 1u);
  std::string text;
  for (size_t i = 0; i < s.events.size(); ++i) {
    EXPECT_EQ(s.events[i]["stop"], i + 1 == s.events.size()) << s.events[i].dump();
    text += s.events[i]["content"].get<std::string>();
  }
  EXPECT_EQ(text, whole.body["content"]);
  EXPECT_EQ(s.events.back()["stop_type"], stop_type);
}

TEST_F(WorkerApiTest, MaxTokensAndNPredictBoundTheAnswer) {
  JsonReply a = post_json(base_ + "/v1/completions",
                          {{"prompt", "Numbers:"}, {"max_tokens", 2}, {"temperature", 0}});
  ASSERT_EQ(a.status, 200) << a.text;
  const int n = a.body["usage"]["completion_tokens"];
  EXPECT_LE(n, 2);
  if (n == 2) {
    EXPECT_EQ(a.body["choices"][0]["finish_reason"], "length");
  }
  JsonReply b = post_json(base_ + "/completion",
                          {{"prompt", "Numbers:"}, {"n_predict", 2}, {"temperature", 0}});
  ASSERT_EQ(b.status, 200) << b.text;
  EXPECT_EQ(b.body["content"], a.body["choices"][0]["text"]);
}

TEST_F(WorkerApiTest, StopStringEndsTheAnswerBeforeIt) {
  json body = {{"prompt", "Once upon a time"}, {"max_tokens", 16}, {"temperature", 0}};
  JsonReply whole = post_json(base_ + "/v1/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.text;
  const std::string text = whole.body["choices"][0]["text"];
  if (text.size() < 4) GTEST_SKIP() << "the greedy answer is too short to cut: '" << text << "'";
  // A stop string from the middle of the greedy answer: the answer ends just before it.
  const size_t from = char_boundary(text, text.size() / 2);
  const size_t to = char_boundary(text, from + 1);
  ASSERT_LT(from, to);
  const std::string stop = text.substr(from, to - from);
  const std::string expected = text.substr(0, text.find(stop));
  body["stop"] = json::array({stop});
  JsonReply cut = post_json(base_ + "/v1/completions", body);
  ASSERT_EQ(cut.status, 200) << cut.text;
  EXPECT_EQ(cut.body["choices"][0]["text"], expected) << "stop string '" << stop << "'";
  EXPECT_EQ(cut.body["choices"][0]["finish_reason"], "stop");
  body["stream"] = true;
  SseReply s = post_sse(base_ + "/v1/completions", body);
  std::string streamed;
  for (const json& ev : s.events) streamed += ev["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(streamed, expected);
}

TEST_F(WorkerApiTest, TheSameSeedGivesTheSameSampledAnswer) {
  json body = {{"prompt", "Random words:"},
               {"max_tokens", 12},
               {"temperature", 1.5},
               {"top_k", 0},
               {"top_p", 1.0},
               {"min_p", 0.0},
               {"seed", 1234}};
  JsonReply a = post_json(base_ + "/v1/completions", body);
  JsonReply b = post_json(base_ + "/v1/completions", body);
  ASSERT_EQ(a.status, 200) << a.text;
  ASSERT_EQ(b.status, 200) << b.text;
  EXPECT_EQ(a.body["choices"][0]["text"], b.body["choices"][0]["text"]);
}

TEST_F(WorkerApiTest, ChatLogprobsListEveryTokenWithSortedAlternatives) {
  json body = chat_body("Hi", 6);
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  JsonReply r = post_json(base_ + "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.text;
  const json& content = r.body["choices"][0]["logprobs"]["content"];
  ASSERT_TRUE(content.is_array()) << r.text;
  EXPECT_EQ(static_cast<int>(content.size()), r.body["usage"]["completion_tokens"].get<int>());
  std::string joined;
  for (const json& t : content) {
    joined += t["token"].get<std::string>();
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(),
              t["top_logprobs"][1]["logprob"].get<double>());
    EXPECT_GE(t["top_logprobs"][1]["logprob"].get<double>(),
              t["top_logprobs"][2]["logprob"].get<double>());
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(t["token"], t["top_logprobs"][0]["token"]);
    EXPECT_FLOAT_EQ(t["logprob"].get<float>(), t["top_logprobs"][0]["logprob"].get<float>());
  }
  EXPECT_EQ(joined, r.body["choices"][0]["message"]["content"]);

  // Streamed: the same tokens spread over the chunks.
  body["stream"] = true;
  SseReply s = post_sse(base_ + "/v1/chat/completions", body);
  size_t streamed_tokens = 0;
  for (const json& ev : s.events) {
    if (ev["choices"].empty()) continue;
    const json& lp = ev["choices"][0]["logprobs"];
    if (lp.is_object()) streamed_tokens += lp["content"].size();
  }
  EXPECT_EQ(streamed_tokens, content.size());
}

TEST_F(WorkerApiTest, CompletionLogprobsUseTheLegacyShape) {
  JsonReply r =
      post_json(base_ + "/v1/completions",
                {{"prompt", "Hello"}, {"max_tokens", 4}, {"temperature", 0}, {"logprobs", 2}});
  ASSERT_EQ(r.status, 200) << r.text;
  const json& lp = r.body["choices"][0]["logprobs"];
  const size_t n = r.body["usage"]["completion_tokens"].get<size_t>();
  ASSERT_EQ(lp["tokens"].size(), n) << r.text;
  ASSERT_EQ(lp["token_logprobs"].size(), n);
  ASSERT_EQ(lp["top_logprobs"].size(), n);
  ASSERT_EQ(lp["text_offset"].size(), n);
  if (n > 0) {
    EXPECT_EQ(lp["text_offset"][0], 0);
    EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  }
}

TEST_F(WorkerApiTest, StreamedCompletionLogprobsCoverEveryTokenWithRunningOffsets) {
  json body = {{"prompt", "Hello"}, {"max_tokens", 6}, {"temperature", 0}, {"logprobs", 1}};
  JsonReply whole = post_json(base_ + "/v1/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.text;
  body["stream"] = true;
  SseReply s = post_sse(base_ + "/v1/completions", body);
  ASSERT_TRUE(s.done);
  json offsets = json::array(), tokens = json::array();
  for (const json& ev : s.events) {
    const json& lp = ev["choices"][0]["logprobs"];
    if (!lp.is_object()) continue;
    for (const json& o : lp["text_offset"]) offsets.push_back(o);
    for (const json& t : lp["tokens"]) tokens.push_back(t);
  }
  EXPECT_EQ(tokens, whole.body["choices"][0]["logprobs"]["tokens"]);
  EXPECT_EQ(offsets, whole.body["choices"][0]["logprobs"]["text_offset"]);
}

TEST_F(WorkerApiTest, NativeCompletionNProbsGivesCompletionProbabilities) {
  json body = {{"prompt", "Hello"}, {"n_predict", 4}, {"temperature", 0}, {"n_probs", 2}};
  JsonReply r = post_json(base_ + "/completion", body);
  ASSERT_EQ(r.status, 200) << r.text;
  const json& probs = r.body["completion_probabilities"];
  ASSERT_TRUE(probs.is_array()) << r.text;
  EXPECT_EQ(static_cast<int>(probs.size()), r.body["tokens_predicted"].get<int>());
  std::string joined;
  for (const json& p : probs) {
    joined += p["token"].get<std::string>();
    EXPECT_EQ(p["top_logprobs"].size(), 2u);
  }
  EXPECT_EQ(joined, r.body["content"]);
  body["stream"] = true;
  SseReply s = post_sse(base_ + "/completion", body);
  size_t streamed = 0;
  for (const json& ev : s.events) {
    if (ev.contains("completion_probabilities")) streamed += ev["completion_probabilities"].size();
  }
  EXPECT_EQ(streamed, probs.size());
}

TEST_F(WorkerApiTest, TokenizeAndDetokenizeRoundTrip) {
  JsonReply t = post_json(base_ + "/tokenize", {{"content", "Hello world"}});
  ASSERT_EQ(t.status, 200) << t.text;
  ASSERT_TRUE(t.body["tokens"].is_array());
  ASSERT_GE(t.body["tokens"].size(), 2u);
  JsonReply d = post_json(base_ + "/detokenize", {{"tokens", t.body["tokens"]}});
  ASSERT_EQ(d.status, 200) << d.text;
  EXPECT_EQ(d.body["content"], "Hello world");
  JsonReply p = post_json(base_ + "/tokenize", {{"content", "Hello world"}, {"with_pieces", true}});
  ASSERT_EQ(p.status, 200);
  std::string joined;
  for (const json& e : p.body["tokens"]) joined += e["piece"].get<std::string>();
  EXPECT_EQ(joined, "Hello world");
  JsonReply bad = post_json(base_ + "/detokenize", {{"tokens", json::array({1, 99999999})}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body["error"]["message"].get<std::string>().find("tokens[1]"), std::string::npos);
}

TEST_F(WorkerApiTest, ApplyTemplateRendersChatml) {
  JsonReply r = post_json(base_ + "/apply-template",
                          {{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}});
  ASSERT_EQ(r.status, 200) << r.text;
  const std::string prompt = r.body["prompt"];
  EXPECT_NE(prompt.find("<|im_start|>user\nHi<|im_end|>\n"), std::string::npos) << prompt;
  EXPECT_TRUE(prompt.ends_with("<|im_start|>assistant\n")) << prompt;
}

TEST_F(WorkerApiTest, EmbeddingsAreNormalisedVectorsPerInput) {
  JsonReply r = post_json(base_ + "/v1/embeddings",
                          {{"model", "qwen"}, {"input", json::array({"a cat", "a dog"})}});
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["object"], "list");
  ASSERT_EQ(r.body["data"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const json& e = r.body["data"][i];
    EXPECT_EQ(e["object"], "embedding");
    EXPECT_EQ(e["index"], i);
    ASSERT_EQ(e["embedding"].size(), 32u);  // qwen2 fixture: n_embd 32
    double norm = 0;
    for (const json& v : e["embedding"]) norm += v.get<double>() * v.get<double>();
    EXPECT_NEAR(std::sqrt(norm), 1.0, 1e-3);
  }
  EXPECT_NE(r.body["data"][0]["embedding"], r.body["data"][1]["embedding"]);
  EXPECT_GT(r.body["usage"]["prompt_tokens"].get<int>(), 0);
  JsonReply n = post_json(base_ + "/embedding", {{"content", "a cat"}});
  ASSERT_EQ(n.status, 200) << n.text;
  ASSERT_TRUE(n.body.is_array());
  EXPECT_EQ(n.body[0]["embedding"][0], r.body["data"][0]["embedding"]);
}

TEST_F(WorkerApiTest, MetricsCountFinishedRequests) {
  ASSERT_EQ(post_json(base_ + "/completion", {{"prompt", "Hi"}, {"n_predict", 2}}).status, 200);
  auto m = http::fetch(base_ + "/metrics");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->headers.get_or("Content-Type", "").find("text/plain"), std::string::npos);
  const std::string key = "\nhangar_worker_requests_total ";
  const size_t at = m->body.find(key);
  ASSERT_NE(at, std::string::npos) << m->body;
  EXPECT_GE(std::strtoll(m->body.c_str() + at + key.size(), nullptr, 10), 1);
  EXPECT_NE(m->body.find("# TYPE hangar_worker_tokens_predicted_total counter"), std::string::npos);
}

TEST_F(WorkerApiTest, BadRequestsAre400NamingTheField) {
  struct Case {
    const char* path;
    std::string body;
    const char* names;
  };
  const Case cases[] = {
      {"/v1/chat/completions", R"({"messages":"hi"})", "messages"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":"8"})",
       "max_tokens"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"temperature":[]})",
       "temperature"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})",
       "stream"},
      {"/v1/completions", R"({"max_tokens":4})", "prompt"},
      {"/v1/completions", R"({"prompt":"x","stop":5})", "stop"},
      {"/completion", R"({"prompt":"x","n_predict":"many"})", "n_predict"},
      {"/tokenize", R"({"content":7})", "content"},
      {"/v1/embeddings", R"({"input":{}})", "input"},
      {"/v1/chat/completions", R"({"messages":[)", "JSON"},
  };
  for (const Case& c : cases) {
    JsonReply r = http_call("POST", base_ + c.path, c.body);
    EXPECT_EQ(r.status, 400) << c.path << " " << c.body << " -> " << r.text;
    EXPECT_EQ(r.body["error"]["code"], 400) << r.text;
    EXPECT_EQ(r.body["error"]["type"], "invalid_request_error") << r.text;
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find(c.names), std::string::npos)
        << c.body << " -> " << r.text;
  }
}

TEST_F(WorkerApiTest, UnknownFieldsAreIgnoredAndInfillIsNotImplemented) {
  json body = chat_body("Hi", 2);
  body["tools"] = json::array();
  body["user"] = "someone";
  body["response_format"] = {{"type", "text"}};
  EXPECT_EQ(post_json(base_ + "/v1/chat/completions", body).status, 200);
  JsonReply infill = post_json(base_ + "/infill", {{"input_prefix", "a"}});
  EXPECT_EQ(infill.status, 501);
}

// hangar_worker_decode_steps_total from /metrics (-1 when missing).
int64_t decode_steps(const std::string& base) {
  auto m = http::fetch(base + "/metrics");
  if (!m.ok()) return -1;
  const std::string key = "\nhangar_worker_decode_steps_total ";
  const size_t at = m->body.find(key);
  if (at == std::string::npos) return -1;
  return std::strtoll(m->body.c_str() + at + key.size(), nullptr, 10);
}

// -np 4 and eight concurrent greedy streams: each answer equals the one its prompt gets alone,
// and the engine really batched them (more than one row in some decode step).
TEST(WorkerConcurrencyTest, EightConcurrentStreamsEqualTheirAnswersAlone) {
  HANGAR_REQUIRE_FIXTURES();
  WorkerProcess w({"-m", fixtures + "/models/qwen2-f16.gguf", "-c", "1024", "-np", "4", "-t", "1",
                   "-a", "qwen"});
  const std::string base = w.wait_ready();
  ASSERT_FALSE(base.empty());
  const char* kPrompts[8] = {"Tell me about cats",   "What is the capital of France?",
                             "Count to ten",         "Write a haiku",
                             "Why is the sky blue?", "Name three colours",
                             "Say something nice",   "How do magnets work?"};
  auto body = [&](int i) {
    json b = chat_body(kPrompts[i], 12);
    b["stream"] = true;
    return b;
  };
  std::vector<std::string> alone(8);
  const int64_t steps_before = decode_steps(base);
  for (int i = 0; i < 8; ++i) {
    SseReply r = post_sse(base + "/v1/chat/completions", body(i));
    ASSERT_EQ(r.status, 200);
    ASSERT_TRUE(r.done);
    alone[i] = chat_stream_text(r);
  }
  const int64_t steps_alone = decode_steps(base) - steps_before;
  std::vector<SseReply> together(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back(
        [&, i] { together[i] = post_sse(base + "/v1/chat/completions", body(i)); });
  }
  for (auto& t : threads) t.join();
  const int64_t steps_together = decode_steps(base) - steps_before - steps_alone;
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(together[i].status, 200);
    EXPECT_TRUE(together[i].done) << "stream " << i << " did not end with [DONE]";
    EXPECT_EQ(chat_stream_text(together[i]), alone[i]) << "prompt '" << kPrompts[i] << "'";
  }
  // The same tokens in fewer forward batches: slots decoded together, not one after another.
  EXPECT_LT(steps_together, steps_alone);
  std::printf("decode steps: %lld one at a time, %lld with 8 concurrent streams on 4 slots\n",
              static_cast<long long>(steps_alone), static_cast<long long>(steps_together));
  EXPECT_EQ(w.stop(), 0);
}

}  // namespace
}  // namespace hangar::e2e
