#include "worker/openai_request.h"

#include <gtest/gtest.h>

#include "worker/api_error.h"

namespace hangar::worker {
namespace {

using nlohmann::json;

json body(std::string_view text) {
  auto j = parse_body(text);
  EXPECT_TRUE(j.ok()) << j.status().to_string();
  return j.ok() ? *j : json::object();
}

// The 400 message a chat request body gives, or "" when it parses.
std::string chat_error(std::string_view text) {
  auto r = parse_chat_completion_request(body(text));
  if (r.ok()) return "";
  EXPECT_EQ(http_status_for(r.status().code()), 400) << r.status().to_string();
  return r.status().message();
}

TEST(OpenAiRequestTest, ParsesAFullChatRequest) {
  auto r = parse_chat_completion_request(body(R"({
    "model": "m", "messages": [{"role":"system","content":"S"},{"role":"user","content":"U"}],
    "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 3, "min_p": 0.1,
    "presence_penalty": 0.2, "frequency_penalty": -0.3, "repeat_penalty": 1.1, "seed": 42,
    "stop": ["a", "b"], "stream": true, "stream_options": {"include_usage": true},
    "logprobs": true, "top_logprobs": 2, "n": 1})"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[1].content, "U");
  EXPECT_EQ(r->sampling.max_tokens, 7);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_EQ(r->sampling.top_k, 3);
  EXPECT_FLOAT_EQ(r->sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r->sampling.presence_penalty, 0.2f);
  EXPECT_FLOAT_EQ(r->sampling.frequency_penalty, -0.3f);
  EXPECT_FLOAT_EQ(r->sampling.repeat_penalty, 1.1f);
  ASSERT_TRUE(r->sampling.seed.has_value());
  EXPECT_EQ(*r->sampling.seed, 42u);
  EXPECT_EQ(r->sampling.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r->stream.stream);
  EXPECT_TRUE(r->stream.include_usage);
  EXPECT_TRUE(r->sampling.logprobs);
  EXPECT_EQ(r->sampling.top_logprobs, 2);
}

TEST(OpenAiRequestTest, DefaultsAreLlamaServers) {
  auto r = parse_chat_completion_request(body(R"({"messages":[{"role":"user","content":"x"}]})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->sampling.max_tokens, -1);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.8f);
  EXPECT_EQ(r->sampling.top_k, 40);
  EXPECT_FALSE(r->sampling.seed.has_value());
  EXPECT_FALSE(r->stream.stream);
}

TEST(OpenAiRequestTest, UnknownFieldsAndNullsAreIgnored) {
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}], "tools": [{"x":1}],
      "response_format": {"type":"json_object"}, "user": "u", "stop": null, "max_tokens": null,
      "temperature": null})"),
            "");
}

TEST(OpenAiRequestTest, ContentPartsAreJoinedAndNullContentIsEmpty) {
  auto r = parse_chat_completion_request(body(R"({"messages":[
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":null}]})"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->messages[0].content, "ab");
  EXPECT_EQ(r->messages[1].content, "");
}

TEST(OpenAiRequestTest, WrongTypesAreRejectedNamingTheField) {
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})")
                .find("'temperature' must be a number, got a string \"hot\""),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"stream":1})")
                .find("'stream' must be a boolean"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})")
                .find("'stop[0]' must be a string"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"top_k":1.5})")
                .find("'top_k' must be an integer"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"stream_options":
      {"include_usage":"yes"}})")
                .find("'stream_options.include_usage' must be a boolean"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":"hi"})").find("'messages' must be an array"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":5}]})")
                .find("'messages[0].content' must be"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"content":"x"}]})").find("'messages[0].role' is missing"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})")
                .find("only \"text\" parts"),
            std::string::npos);
}

TEST(OpenAiRequestTest, OutOfRangeValuesAreRejected) {
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"temperature":-0.1})")
                .find("'temperature' must be between 0"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})")
                .find("'max_tokens' must be at least 1, got 0"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":-5})")
                .find("'max_completion_tokens' must be at least 1"),
            std::string::npos);
  EXPECT_NE(
      chat_error(R"({"messages":[{"role":"user","content":"x"}],"n":2})").find("'n' must be 1"),
      std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"}],"top_p":1.5})")
                .find("'top_p' must be between 0 and 1"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[]})").find("'messages' must not be empty"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({})").find("'messages' is missing"), std::string::npos);
}

TEST(OpenAiRequestTest, MaxCompletionTokensWinsOverMaxTokens) {
  auto r = parse_chat_completion_request(body(
      R"({"messages":[{"role":"user","content":"x"}],"max_tokens":5,"max_completion_tokens":9})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->sampling.max_tokens, 9);
}

TEST(OpenAiRequestTest, InvalidJsonAndNonObjectBodiesAreRejected) {
  auto a = parse_body("{not json");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("not valid JSON"), std::string::npos);
  auto b = parse_body("[1,2]");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("must be a JSON object, got an array"), std::string::npos);
}

TEST(OpenAiRequestTest, CompletionPromptShapes) {
  auto one = parse_completion_request(body(R"({"prompt":"hi","max_tokens":3})"), false);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->prompts.size(), 1u);
  EXPECT_EQ(one->prompts[0].text, "hi");
  EXPECT_EQ(one->sampling.max_tokens, 3);

  auto ids = parse_completion_request(body(R"({"prompt":[1,2,3]})"), false);
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->prompts.size(), 1u);
  EXPECT_TRUE(ids->prompts[0].is_tokens);
  EXPECT_EQ(ids->prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));

  auto many = parse_completion_request(body(R"({"prompt":["a",[4,5]]})"), false);
  ASSERT_TRUE(many.ok());
  ASSERT_EQ(many->prompts.size(), 2u);
  EXPECT_EQ(many->prompts[0].text, "a");
  EXPECT_EQ(many->prompts[1].tokens, (std::vector<int32_t>{4, 5}));

  auto bad = parse_completion_request(body(R"({"prompt":[1,"a"]})"), false);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'prompt[1]' must be a token id"), std::string::npos);

  auto neg = parse_completion_request(body(R"({"prompt":[-1]})"), false);
  ASSERT_FALSE(neg.ok());

  auto legacy_logprobs = parse_completion_request(body(R"({"prompt":"x","logprobs":3})"), false);
  ASSERT_TRUE(legacy_logprobs.ok());
  EXPECT_TRUE(legacy_logprobs->sampling.logprobs);
  EXPECT_EQ(legacy_logprobs->sampling.top_logprobs, 3);
}

TEST(OpenAiRequestTest, NativeCompletionTakesNPredictAndNProbs) {
  auto r = parse_completion_request(
      body(R"({"prompt":"x","n_predict":-1,"stream":true,"n_probs":4,"cache_prompt":true})"), true);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->native);
  EXPECT_EQ(r->sampling.max_tokens, -1);
  EXPECT_TRUE(r->stream.stream);
  EXPECT_EQ(r->sampling.top_logprobs, 4);
  auto z = parse_completion_request(body(R"({"prompt":"x","n_predict":0})"), true);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->sampling.max_tokens, 0);
  EXPECT_FALSE(parse_completion_request(body(R"({"prompt":"x","n_predict":-2})"), true).ok());
  EXPECT_FALSE(parse_completion_request(body(R"({"n_predict":3})"), true).ok());
}

TEST(OpenAiRequestTest, TokenizeDetokenizeAndApplyTemplate) {
  auto t =
      parse_tokenize_request(body(R"({"content":"hi","add_special":true,"with_pieces":true})"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->content, "hi");
  EXPECT_TRUE(t->add_special);
  EXPECT_TRUE(t->with_pieces);
  EXPECT_TRUE(t->parse_special);
  EXPECT_FALSE(parse_tokenize_request(body(R"({"content":3})")).ok());
  EXPECT_FALSE(parse_tokenize_request(body(R"({})")).ok());

  auto d = parse_detokenize_request(body(R"({"tokens":[5,6]})"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->tokens, (std::vector<int32_t>{5, 6}));
  auto dbad = parse_detokenize_request(body(R"({"tokens":[5,"x"]})"));
  ASSERT_FALSE(dbad.ok());
  EXPECT_NE(dbad.status().message().find("'tokens[1]'"), std::string::npos);

  auto a = parse_apply_template_request(
      body(R"({"messages":[{"role":"user","content":"x"}],"add_generation_prompt":false})"));
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->add_generation_prompt);
  EXPECT_FALSE(parse_apply_template_request(body(R"({"messages":[{"role":"user","content":"x"}],
      "add_generation_prompt":"no"})"))
                   .ok());
}

TEST(OpenAiRequestTest, EmbeddingsInputShapes) {
  auto e = parse_embeddings_request(body(R"({"input":["a","b"],"model":"m"})"), false);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->inputs.size(), 2u);
  auto n = parse_embeddings_request(body(R"({"content":"a"})"), true);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->inputs[0].text, "a");
  auto b64 = parse_embeddings_request(body(R"({"input":"a","encoding_format":"base64"})"), false);
  ASSERT_FALSE(b64.ok());
  EXPECT_NE(b64.status().message().find("encoding_format"), std::string::npos);
  EXPECT_FALSE(parse_embeddings_request(body(R"({"input":5})"), false).ok());
  EXPECT_FALSE(parse_embeddings_request(body(R"({})"), false).ok());
}

TEST(OpenAiRequestTest, ErrorBodyHasOpenAiShape) {
  int status = 0;
  json e = error_body(invalid_argument_error("'x' is bad"), &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(e["error"]["code"], 400);
  EXPECT_EQ(e["error"]["message"], "'x' is bad");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(error_body(unavailable_error("busy"))["error"]["type"], "unavailable_error");
  EXPECT_EQ(error_body(401, "no")["error"]["type"], "authentication_error");
}


// Issue 16 item 1: nesting a value 400,000 arrays deep in an 800 KB body crashed the worker (the
// error path serialised the wrong-typed value recursively).
std::string nested_arrays(size_t depth, std::string_view inner = "") {
  return std::string(depth, '[') + std::string(inner) + std::string(depth, ']');
}

TEST(OpenAiRequestTest, ParseBodyRefusesBodiesNestedDeeperThanTheLimitInAnyField) {
  const std::string deep = nested_arrays(400'000);
  for (const std::string& text :
       {R"({"messages":)" + deep + "}", R"({"prompt":[)" + deep + "]}",
        R"({"messages":[{"role":"user","content":[)" + deep + "]}]}",
        R"({"stop":)" + deep + "}", R"({"logit_bias":{"1":)" + deep + "}}", deep}) {
    auto j = parse_body(text);
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(http_status_for(j.status().code()), 400);
    EXPECT_NE(j.status().message().find("more than 128 deep"), std::string::npos)
        << j.status().message();
  }
  // Brackets inside strings are text, not nesting.
  EXPECT_TRUE(parse_body(R"({"prompt":")" + nested_arrays(1000) + R"("})").ok());
  EXPECT_TRUE(parse_body(R"({"prompt":)" + nested_arrays(127, "1") + "}").ok());
}

TEST(OpenAiRequestTest, WrongTypedValuesAreDescribedByTypeAndSizeNeverSerialised) {
  // A value parsed without the body check (deep enough to overflow a recursive dump) must
  // still give a short message.
  json deep = json::parse(R"({"model":"m","prompt":[)" + nested_arrays(200'000, "1") + "]}");
  auto r = parse_completion_request(deep, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "'prompt[0][0]' must be a token id (an integer >= 0), got an array of 1 item");
  const std::string m = chat_error(R"({"messages":{"a":[1,2,3],"b":{}}})");
  EXPECT_EQ(m, "'messages' must be an array, got an object with 2 keys");
  const std::string long_string(10'000, 'x');
  const std::string s = chat_error(R"({"messages":[{"role":"user","content":"c"}],"stop":[")" +
                                   long_string + R"(", 7]})");
  EXPECT_EQ(s, "'stop[1]' must be a string, got a number 7");
  const std::string t =
      chat_error(R"({"messages":[{"role":")" + long_string + R"(","content":1}]})");
  EXPECT_LT(t.size(), 200u) << t;
}

}  // namespace
}  // namespace hangar::worker
