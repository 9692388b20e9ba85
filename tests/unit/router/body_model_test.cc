// model_of_body: the top-level "model" of a proxied request's JSON body, found by scanning.
#include "router/body_model.h"

#include <gtest/gtest.h>

#include <string>

namespace hangar::router {
namespace {

std::string model_or_error(std::string_view body) {
  auto r = model_of_body(body);
  if (!r.ok()) return "error: " + r.status().message();
  return r->has_value() ? **r : "(none)";
}

TEST(BodyModel, FindsTopLevelModelAfterOtherMembersOfEveryType) {
  EXPECT_EQ(model_or_error(R"({"model":"a"})"), "a");
  EXPECT_EQ(model_or_error(
                " {\n \"messages\": [{\"role\":\"user\",\"content\":\"say \\\"}\\\" {[\"}],"
                " \"n\": -1.5e3, \"stream\": true, \"stop\": null, \"x\": {\"model\": \"inner\"},"
                " \"model\" : \"outer\" }"),
            "outer");
}

TEST(BodyModel, IgnoresModelInsideNestedValues) {
  EXPECT_EQ(model_or_error(R"({"a":{"model":"inner"},"b":["model","x"]})"), "(none)");
  EXPECT_EQ(model_or_error("{}"), "(none)");
}

TEST(BodyModel, DecodesEscapesInNameAndValue) {
  EXPECT_EQ(model_or_error(R"({"mod\u0065l":"q\"w\u00e9n\\x"})"), "q\"w\xc3\xa9n\\x");
}

TEST(BodyModel, StopsAtModelWithoutJudgingTheRest) {
  // The worker validates the whole body; the router only needs the name.
  EXPECT_EQ(model_or_error(R"({"model":"a", this is not json)"), "a");
}

TEST(BodyModel, RejectsASecondTopLevelModel) {
  // JSON libraries keep the last: routing by the first would send the request to another model
  // than the one the worker answers for.
  EXPECT_EQ(model_or_error(R"({"model":"a","messages":[],"model":"b"})"),
            "error: field 'model' appears twice in the request body (byte 27); send it once");
  EXPECT_EQ(model_or_error(R"({"model":"a","model":"b"})").rfind("error: field 'model' "
                                                                     "appears twice", 0),
            0u);
  // Nested "model" members are not the top level's.
  EXPECT_EQ(model_or_error(R"({"model":"a","x":{"model":"b"},"y":["model"]})"), "a");
}

TEST(BodyModel, RejectsNonObjectsAndMalformedBodiesWithTheOffset) {
  EXPECT_EQ(model_or_error("[1,2]"), "error: request body must be a JSON object (byte 0)");
  EXPECT_EQ(model_or_error(""), "error: request body must be a JSON object (byte 0)");
  EXPECT_EQ(model_or_error(R"({"model":3})"), "error: field 'model' must be a string (byte 9)");
  EXPECT_EQ(model_or_error(R"({"a":"unterminated)"),
            "error: request body is not valid JSON: an unterminated string at byte 5");
  EXPECT_EQ(model_or_error(R"({"a":[1,{"b":2})"),
            "error: request body is not valid JSON: an unterminated object or array at byte 15");
  EXPECT_EQ(model_or_error(R"({"a" 1})"),
            "error: request body is not valid JSON: expected ':' at byte 5");
  EXPECT_EQ(model_or_error(R"({"a":1 "b":2})"),
            "error: request body is not valid JSON: expected ',' or '}' at byte 7");
  EXPECT_EQ(model_or_error(R"({"a":,})"),
            "error: request body is not valid JSON: a missing value at byte 5");
  EXPECT_EQ(model_or_error("{\"a\":\"x\ny\"}"),
            "error: request body is not valid JSON: a control character in a string at byte 7");
  EXPECT_EQ(model_or_error(R"({"model":"\u12"})"),
            "error: request body is not valid JSON: a bad escape in the string at byte 9");
  EXPECT_EQ(model_or_error(R"({"a":1,})"),
            "error: request body is not valid JSON: expected a member name at byte 7");
  EXPECT_EQ(model_or_error("{\"a\":\"\\"),
            "error: request body is not valid JSON: an unterminated string at byte 5");
}

TEST(BodyModel, EveryTruncationOfARealRequestIsAnErrorOrTheModelNeverACrash) {
  const std::string body =
      R"({"messages":[{"role":"user","content":"hi \"there\""}],"temperature":0,"model":"m1"})";
  for (size_t n = 0; n <= body.size(); ++n) {
    auto r = model_of_body(std::string_view(body).substr(0, n));
    if (r.ok()) {
      ASSERT_TRUE(r->has_value()) << n;  // only complete "m1" strings can succeed
      EXPECT_EQ(**r, "m1") << n;
    }
  }
  EXPECT_EQ(model_or_error(body), "m1");
}

}  // namespace
}  // namespace hangar::router
