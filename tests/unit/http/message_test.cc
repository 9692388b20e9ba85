// Headers, query parsing, percent-coding, error JSON and the SSE parser: plain functions.

#include "http/message.h"

#include <gtest/gtest.h>

#include "http/sse.h"

namespace hangar::http {
namespace {

TEST(Headers, LookupIgnoresCase) {
  Headers h;
  h.add("Content-Type", "application/json");
  EXPECT_EQ(h.get("content-type").value(), "application/json");
  EXPECT_EQ(h.get("CONTENT-TYPE").value(), "application/json");
  EXPECT_FALSE(h.get("Content-Length").has_value());
  EXPECT_EQ(h.get_or("x", "dflt"), "dflt");
}

TEST(Headers, SetReplacesEveryFieldAndRemoveCounts) {
  Headers h{{"A", "1"}, {"a", "2"}, {"B", "3"}};
  h.set("A", "9");
  EXPECT_EQ(h.size(), 2u);
  EXPECT_EQ(h.get("a").value(), "9");
  EXPECT_EQ(h.remove("b"), 1u);
  EXPECT_FALSE(h.has("B"));
}

TEST(Query, ParsesAndPercentDecodes) {
  std::string path;
  std::map<std::string, std::string> q;
  ASSERT_TRUE(parse_target("/models%2Fx?model=a%20b&reload=1&flag&plus=c+d", &path, &q).ok());
  EXPECT_EQ(path, "/models/x");
  EXPECT_EQ(q["model"], "a b");
  EXPECT_EQ(q["reload"], "1");
  EXPECT_EQ(q.count("flag"), 1u);
  EXPECT_EQ(q["flag"], "");
  EXPECT_EQ(q["plus"], "c d");
}

TEST(Query, MalformedEscapeIsAnErrorNamingTheOffset) {
  auto r = percent_decode("ab%zz", false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("offset 2"), std::string::npos) << r.status().message();
  EXPECT_FALSE(percent_decode("ab%4", false).ok());
  EXPECT_FALSE(percent_decode("%", false).ok());
}

TEST(Query, PercentEncodeRoundTrips) {
  std::string s = "a b/c?d=é";
  auto back = percent_decode(percent_encode(s), false);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, s);
  EXPECT_EQ(percent_encode("a b"), "a%20b");
}

TEST(ErrorJson, HasOpenAiShapeAndEscapes) {
  EXPECT_EQ(error_json(502, "upstream \"x\"\n down", "unavailable_error"),
            R"({"error":{"code":502,"message":"upstream \"x\"\n down","type":"unavailable_error"}})");
  Response r = error_response(404, "nope", "not_found_error");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers.get("content-type").value(), "application/json");
}

TEST(Sse, FormatsMultiLineData) {
  EXPECT_EQ(sse_data("x"), "data: x\n\n");
  EXPECT_EQ(sse_data("a\nb"), "data: a\ndata: b\n\n");
  EXPECT_EQ(sse_event("e", "p"), "event: e\ndata: p\n\n");
}

TEST(Sse, ParserHandlesAnySplitAndLineEnds) {
  std::string stream =
      ": comment\r\ndata: one\r\n\r\nevent: upd\ndata: two\ndata: lines\nid: 7\n\ndata:three\r\r";
  for (size_t split = 0; split <= stream.size(); ++split) {
    SseParser p;
    std::vector<SseEvent> events;
    auto cb = [&](const SseEvent& e) { events.push_back(e); };
    p.feed(std::string_view(stream).substr(0, split), cb);
    p.feed(std::string_view(stream).substr(split), cb);
    ASSERT_EQ(events.size(), 3u) << "split at " << split;
    EXPECT_EQ(events[0].data, "one");
    EXPECT_EQ(events[1].event, "upd");
    EXPECT_EQ(events[1].data, "two\nlines");
    EXPECT_EQ(events[1].id, "7");
    EXPECT_EQ(events[2].data, "three");
  }
}

TEST(Sse, EventWithoutDataIsNotDispatched) {
  SseParser p;
  int n = 0;
  p.feed("event: x\n\n", [&](const SseEvent&) { ++n; });
  EXPECT_EQ(n, 0);
}

}  // namespace
}  // namespace hangar::http
