// WorkerServer over HTTP on 127.0.0.1 (port 0), in process, with a fixture model.
#include "worker/worker_server.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "http/client.h"
#include "http/sse.h"
#include "support/test_support.h"

namespace hangar::worker {
namespace {

using nlohmann::json;

class WorkerServerTest : public ::testing::Test {
 protected:
  void start(const std::string& fixtures, std::string api_key = "") {
    WorkerOptions o;
    o.model_path = fixtures + "/models/llama-spm-q4_0.gguf";
    o.alias = "tiny";
    o.n_ctx = 256;
    o.n_parallel = 2;
    o.api_key = std::move(api_key);
    worker_ = std::make_unique<WorkerServer>(o);
    server_ = std::make_unique<http::Server>(http::ServerOptions{});
    worker_->register_routes(*server_);
    auto port = server_->listen();
    ASSERT_TRUE(port.ok()) << port.status().to_string();
    base_ = "http://127.0.0.1:" + std::to_string(*port);
  }
  void load() {
    ASSERT_TRUE(worker_->load([](float) {}).ok());
  }
  void TearDown() override {
    if (server_) server_->drain(std::chrono::seconds(5));
    if (worker_) worker_->shutdown_engine();
  }

  http::Response post(const std::string& path, const std::string& body,
                      http::Headers headers = {}) {
    auto r = http::fetch("POST", base_ + path, body, std::move(headers), std::chrono::seconds(120));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : http::Response{};
  }
  http::Response get(const std::string& path, http::Headers headers = {}) {
    auto r = http::fetch("GET", base_ + path, "", std::move(headers), std::chrono::seconds(60));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : http::Response{};
  }

  std::unique_ptr<WorkerServer> worker_;
  std::unique_ptr<http::Server> server_;
  std::string base_;
};

constexpr const char* kChat =
    R"({"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,
        "temperature":0})";

TEST_F(WorkerServerTest, HealthIsLoadingUntilReadyAndApiWaits) {
  HANGAR_REQUIRE_FIXTURES();
  start(fixtures);
  http::Response h = get("/health");
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(json::parse(h.body)["status"], "loading");
  http::Response c = post("/v1/chat/completions", kChat);
  EXPECT_EQ(c.status, 503);
  EXPECT_EQ(json::parse(c.body)["error"]["type"], "unavailable_error");
  load();
  h = get("/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(json::parse(h.body)["status"], "ok");
}

TEST_F(WorkerServerTest, ModelsPropsAndMetrics) {
  HANGAR_REQUIRE_FIXTURES();
  start(fixtures);
  load();
  json m = json::parse(get("/v1/models").body);
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "tiny");
  EXPECT_EQ(m["data"][0]["object"], "model");
  json p = json::parse(get("/props").body);
  EXPECT_EQ(p["total_slots"], 2);
  EXPECT_EQ(p["n_ctx_slot"], 128);
  EXPECT_TRUE(p.contains("chat_template_fallback"));
  http::Response metrics = get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("hangar_worker_slots 2"), std::string::npos) << metrics.body;
}

TEST_F(WorkerServerTest, ChatCompletionStreamedEqualsWhole) {
  HANGAR_REQUIRE_FIXTURES();
  start(fixtures);
  load();
  http::Response whole = post("/v1/chat/completions", kChat);
  ASSERT_EQ(whole.status, 200) << whole.body;
  json w = json::parse(whole.body);
  EXPECT_EQ(w["object"], "chat.completion");
  EXPECT_TRUE(w["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_EQ(w["model"], "tiny");
  EXPECT_LE(w["usage"]["completion_tokens"].get<int>(), 8);
  EXPECT_GT(w["usage"]["prompt_tokens"].get<int>(), 0);

  json streamed_req = json::parse(kChat);
  streamed_req["stream"] = true;
  streamed_req["stream_options"] = {{"include_usage", true}};
  http::FetchOptions fo;
  fo.method = "POST";
  fo.body = streamed_req.dump();
  fo.timeout = std::chrono::seconds(120);
  http::SseParser parser;
  std::vector<std::string> events;
  Status s = http::fetch_stream(
      base_ + "/v1/chat/completions", fo,
      [](int status, const http::Headers&) { EXPECT_EQ(status, 200); },
      [&](std::string_view piece) {
        parser.feed(piece, [&](const http::SseEvent& e) { events.push_back(e.data); });
        return true;
      });
  ASSERT_TRUE(s.ok()) << s.to_string();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  json first = json::parse(events[0]);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  std::string finish;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    json c = json::parse(events[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    text += c["choices"][0]["delta"]["content"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  // The same prompt again: all but its last token come from the slot's cache (cache_prompt),
  // and the answer is the same.
  const int n_prompt = w["usage"]["prompt_tokens"].get<int>();
  EXPECT_EQ(w["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(usage["usage"]["prompt_tokens_details"]["cached_tokens"], n_prompt - 1);
  usage["usage"].erase("prompt_tokens_details");
  w["usage"].erase("prompt_tokens_details");
  EXPECT_EQ(usage["usage"], w["usage"]);
  EXPECT_EQ(text, w["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_EQ(finish, w["choices"][0]["finish_reason"].get<std::string>());
}

TEST_F(WorkerServerTest, CompletionShapes) {
  HANGAR_REQUIRE_FIXTURES();
  start(fixtures);
  load();
  http::Response r = post("/v1/completions", R"({"prompt":["Once upon","a time"],"max_tokens":4,
      "temperature":0})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "text_completion");
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][1]["index"], 1);
  http::Response n = post("/completion", R"({"prompt":"Once upon","n_predict":4,"temperature":0})");
  ASSERT_EQ(n.status, 200) << n.body;
  json nj = json::parse(n.body);
  EXPECT_EQ(nj["stop"], true);
  EXPECT_LE(nj["tokens_predicted"].get<int>(), 4);
  EXPECT_EQ(nj["content"], j["choices"][0]["text"]);
}

TEST_F(WorkerServerTest, TokenizeDetokenizeApplyTemplateEmbeddings) {
  HANGAR_REQUIRE_FIXTURES();
  start(fixtures);
  load();
  json t = json::parse(post("/tokenize", R"({"content":"Hello world","with_pieces":true})").body);
  ASSERT_TRUE(t["tokens"].is_array());
  ASSERT_FALSE(t["tokens"].empty());
  json ids = json::array();
  for (const auto& x : t["tokens"]) ids.push_back(x["id"]);
  json d = json::parse(post("/detokenize", json{{"tokens", ids}}.dump()).body);
  EXPECT_EQ(d["content"], "Hello world");
  json a =
      json::parse(post("/apply-template", R"({"messages":[{"role":"user","content":"Hi"}]})").body);
  EXPECT_NE(a["prompt"].get<std::string>().find("Hi"), std::string::npos);
  http::Response e = post("/v1/embeddings", R"({"input":["a b","c"]})");
  ASSERT_EQ(e.status, 200) << e.body;
  json ej = json::parse(e.body);
  EXPECT_EQ(ej["data"].size(), 2u);
  EXPECT_EQ(ej["data"][1]["index"], 1);
  EXPECT_FALSE(ej["data"][0]["embedding"].empty());
}

TEST_F(WorkerServerTest, BadRequestsGetOpenAiErrors) {
  HANGAR_REQUIRE_FIXTURES();
  start(fixtures);
  load();
  http::Response r = post("/v1/chat/completions",
                          R"({"messages":[{"role":"user","content":"x"}],"temperature":-1})");
  EXPECT_EQ(r.status, 400);
  json j = json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], 400);
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("temperature"), std::string::npos);
  EXPECT_EQ(post("/v1/chat/completions", "{").status, 400);
  EXPECT_EQ(post("/detokenize", R"({"tokens":[99999999]})").status, 400);
  EXPECT_EQ(post("/infill", "{}").status, 501);
  std::string long_prompt(4000, 'a');
  EXPECT_EQ(post("/completion", json{{"prompt", long_prompt}}.dump()).status, 400);
}

TEST_F(WorkerServerTest, ApiKeyGuardsAllButHealth) {
  HANGAR_REQUIRE_FIXTURES();
  start(fixtures, "sekret");
  load();
  EXPECT_EQ(get("/health").status, 200);
  http::Response r = get("/v1/models");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(json::parse(r.body)["error"]["type"], "authentication_error");
  EXPECT_EQ(get("/v1/models", {{"Authorization", "Bearer sekret"}}).status, 200);
}

}  // namespace
}  // namespace hangar::worker
