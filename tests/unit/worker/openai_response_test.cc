#include "worker/openai_response.h"

#include <gtest/gtest.h>

namespace hangar::worker {
namespace {

using nlohmann::json;

// The JSON payloads of "data: …\n\n" frames ("[DONE]" as the string "[DONE]").
std::vector<json> frames(const std::string& sse) {
  std::vector<json> out;
  size_t pos = 0;
  while (pos < sse.size()) {
    size_t end = sse.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated frame";
    if (end == std::string::npos) break;
    std::string frame = sse.substr(pos, end - pos);
    EXPECT_TRUE(frame.starts_with("data: ")) << frame;
    std::string payload = frame.substr(6);
    out.push_back(payload == "[DONE]" ? json("[DONE]") : json::parse(payload));
    pos = end + 2;
  }
  return out;
}

ResponseMeta meta() { return {"chatcmpl-abc", 1700000000, "tiny"}; }

TEST(OpenAiResponseTest, ChatCompletionHasOpenAiShape) {
  json j = chat_completion_json(meta(), "Hi!", FinishReason::kLength, {5, 2});
  EXPECT_EQ(j["id"], "chatcmpl-abc");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "tiny");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hi!");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  EXPECT_EQ(j["usage"]["total_tokens"], 7);
}

TEST(OpenAiResponseTest, TextCompletionHasOneChoicePerPrompt) {
  json j = text_completion_json(
      {"cmpl-x", 1, "m"},
      {{"a", FinishReason::kStop, nullptr}, {"b", FinishReason::kLength, nullptr}}, {3, 4});
  EXPECT_EQ(j["object"], "text_completion");
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][1]["index"], 1);
  EXPECT_EQ(j["choices"][1]["text"], "b");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["total_tokens"], 7);
}

TEST(OpenAiResponseTest, ChatStreamRoleFirstFinishOnLastUsageThenDone) {
  ChatStream s(meta(), /*include_usage=*/true);
  std::string sse = s.delta("Hel");
  sse += s.delta("");  // nothing to send
  sse += s.delta("lo");
  sse += s.finish("!", FinishReason::kStop, {4, 3});
  auto f = frames(sse);
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(f[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(f[0]["id"], "chatcmpl-abc");
  EXPECT_EQ(f[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(f[0]["choices"][0]["delta"]["content"], "Hel");
  EXPECT_TRUE(f[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(f[1]["choices"][0]["delta"].contains("role"));
  EXPECT_EQ(f[1]["choices"][0]["delta"]["content"], "lo");
  EXPECT_EQ(f[2]["choices"][0]["delta"]["content"], "!");
  EXPECT_EQ(f[2]["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(f[3]["choices"].empty());
  EXPECT_EQ(f[3]["usage"]["total_tokens"], 7);
  EXPECT_EQ(f[4], "[DONE]");
}

TEST(OpenAiResponseTest, ChatStreamWithoutUsageAndNoTextStillSendsRole) {
  ChatStream s(meta(), false);
  auto f = frames(s.finish("", FinishReason::kLength, {1, 0}));
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(f[0]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(f[1], "[DONE]");
}

TEST(OpenAiResponseTest, CompletionStreamChunks) {
  CompletionStream s({"cmpl-1", 2, "m"}, false);
  auto f = frames(s.delta("ab") + s.finish("c", FinishReason::kStop, {1, 2}));
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0]["object"], "text_completion");
  EXPECT_EQ(f[0]["choices"][0]["text"], "ab");
  EXPECT_EQ(f[1]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(f[2], "[DONE]");
}

TEST(OpenAiResponseTest, NativeStreamEndsWithStopTrueAndNoDone) {
  NativeResult r;
  r.content = "";
  r.stop_type = "limit";
  r.usage = {3, 5};
  auto f = frames(native_stream_delta("x") + native_stream_finish("m", r));
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0]["content"], "x");
  EXPECT_EQ(f[0]["stop"], false);
  EXPECT_EQ(f[1]["stop"], true);
  EXPECT_EQ(f[1]["stop_type"], "limit");
  EXPECT_EQ(f[1]["tokens_predicted"], 5);
  EXPECT_EQ(f[1]["tokens_evaluated"], 3);
}

TEST(OpenAiResponseTest, InvalidUtf8NeverThrowsAndBecomesReplacement) {
  json j = chat_completion_json(meta(), "a\xFF", FinishReason::kStop, {});
  EXPECT_EQ(j["choices"][0]["message"]["content"], "a\xEF\xBF\xBD");
  EXPECT_NE(sse_frame(j).find("a\xEF\xBF\xBD"), std::string::npos);
}

TEST(OpenAiResponseTest, ModelsListShape) {
  json j = models_list_json({{"tiny", 123, "hangar"}});
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "tiny");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["created"], 123);
  EXPECT_EQ(j["data"][0]["owned_by"], "hangar");
}

TEST(OpenAiResponseTest, TokenizeWithPiecesGivesBytesForPartialCharacters) {
  std::vector<std::string> pieces = {"he", "\xE4\xBD"};
  json j = tokenize_json({1, 2}, &pieces);
  EXPECT_EQ(j["tokens"][0]["id"], 1);
  EXPECT_EQ(j["tokens"][0]["piece"], "he");
  EXPECT_EQ(j["tokens"][1]["piece"], json::array({0xE4, 0xBD}));
  EXPECT_EQ(tokenize_json({7}, nullptr)["tokens"], json::array({7}));
}

TEST(OpenAiResponseTest, EmbeddingsShapes) {
  json j = embeddings_json("m", {{0.5f, 1.0f}}, 4);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["object"], "embedding");
  EXPECT_EQ(j["data"][0]["index"], 0);
  EXPECT_EQ(j["data"][0]["embedding"][1], 1.0);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
  json n = native_embeddings_json({{0.25f}});
  EXPECT_EQ(n[0]["embedding"][0][0], 0.25);
}

TEST(OpenAiResponseTest, ResponseIdsAreUniqueWithPrefix) {
  std::string a = make_response_id("chatcmpl-");
  std::string b = make_response_id("chatcmpl-");
  EXPECT_TRUE(a.starts_with("chatcmpl-"));
  EXPECT_EQ(a.size(), 9u + 24u);
  EXPECT_NE(a, b);
}

TEST(OpenAiResponseTest, LogprobsShape) {
  json j = chat_logprobs_json({{"hi", -0.5f, {{"hi", -0.5f}, {"yo", -1.5f}}}});
  EXPECT_EQ(j["content"][0]["token"], "hi");
  EXPECT_EQ(j["content"][0]["bytes"], json::array({'h', 'i'}));
  EXPECT_EQ(j["content"][0]["top_logprobs"][1]["token"], "yo");
}

}  // namespace
}  // namespace hangar::worker

namespace hangar::worker {
namespace {

TEST(CompletionLogprobsJsonTest, LegacyShapeListsTokensLogprobsAlternativesAndByteOffsets) {
  std::vector<TokenLogprob> tokens = {{"He", -0.5f, {{"He", -0.5f}, {"A", -1.5f}}},
                                      {"llo", -0.25f, {{"llo", -0.25f}, {"y", -2.0f}}}};
  const nlohmann::json j = completion_logprobs_json(tokens, 10);
  EXPECT_EQ(j["tokens"], nlohmann::json::array({"He", "llo"}));
  EXPECT_EQ(j["token_logprobs"], nlohmann::json::array({-0.5, -0.25}));
  EXPECT_EQ(j["top_logprobs"][0]["A"], -1.5);
  EXPECT_EQ(j["top_logprobs"][1]["y"], -2.0);
  EXPECT_EQ(j["text_offset"], nlohmann::json::array({10, 12}));
}

TEST(NativeCompletionJsonTest, ProbabilitiesAppearOnlyWhenAskedFor) {
  NativeResult r;
  r.content = "hi";
  EXPECT_FALSE(native_completion_json("m", r).contains("completion_probabilities"));
  r.probabilities = nlohmann::json::array({{{"token", "hi"}, {"logprob", -0.1}}});
  EXPECT_EQ(native_completion_json("m", r)["completion_probabilities"][0]["token"], "hi");
  const std::string frame = native_stream_delta("hi", r.probabilities);
  EXPECT_NE(frame.find("\"completion_probabilities\""), std::string::npos) << frame;
  EXPECT_EQ(native_stream_delta("hi").find("completion_probabilities"), std::string::npos);
}

TEST(CompletionStreamTest, ChunksCarryTheirLogprobs) {
  CompletionStream s({"cmpl-x", 1, "m"}, false);
  const std::string frame = s.delta("a", 0, nlohmann::json{{"tokens", {"a"}}});
  EXPECT_NE(frame.find("\"logprobs\":{\"tokens\":[\"a\"]}"), std::string::npos) << frame;
  EXPECT_NE(s.delta("b").find("\"logprobs\":null"), std::string::npos);
}

}  // namespace
}  // namespace hangar::worker
