#include "worker/text_holdback.h"

#include <gtest/gtest.h>

namespace hangar::worker {
namespace {

// Feeds every piece and returns what came out, chunk by chunk, then the flush.
std::vector<std::string> run(TextHoldback& h, const std::vector<std::string>& pieces) {
  std::vector<std::string> out;
  for (const auto& p : pieces) out.push_back(h.feed(p));
  out.push_back(h.flush());
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

TEST(TextHoldbackTest, WithoutStopsEmitsEverythingAtOnce) {
  TextHoldback h;
  EXPECT_EQ(h.feed("Hello"), "Hello");
  EXPECT_EQ(h.feed(" world"), " world");
  EXPECT_EQ(h.flush(), "");
  EXPECT_FALSE(h.stopped());
}

TEST(TextHoldbackTest, StopStringIsNeverEmittedEvenPartially) {
  TextHoldback h({"</end>"});
  auto out = run(h, {"abc<", "/e", "nd", ">tail"});
  EXPECT_EQ(out[0], "abc");  // "<" may start the stop string
  EXPECT_EQ(out[1], "");
  EXPECT_EQ(out[2], "");
  EXPECT_EQ(out[3], "");
  EXPECT_EQ(join(out), "abc");
  EXPECT_TRUE(h.stopped());
  EXPECT_EQ(h.matched_stop(), "</end>");
}

TEST(TextHoldbackTest, HeldPrefixIsReleasedWhenItStopsMatching) {
  TextHoldback h({"STOP"});
  EXPECT_EQ(h.feed("aST"), "a");
  EXPECT_EQ(h.feed("x"), "STx");
  EXPECT_EQ(h.flush(), "");
  EXPECT_FALSE(h.stopped());
}

TEST(TextHoldbackTest, FlushReleasesAPartialStopAtTheEnd) {
  TextHoldback h({"STOP"});
  EXPECT_EQ(h.feed("abcSTO"), "abc");
  EXPECT_EQ(h.flush(), "STO");
}

TEST(TextHoldbackTest, EarliestOfSeveralStopsWins) {
  TextHoldback h({"yz", "x"});
  EXPECT_EQ(h.feed("abxyz"), "ab");
  EXPECT_EQ(h.matched_stop(), "x");
}

TEST(TextHoldbackTest, StopInsideOnePieceCutsThere) {
  TextHoldback h({"\n\n"});
  EXPECT_EQ(h.feed("line one\n\nline two"), "line one");
  EXPECT_TRUE(h.stopped());
  EXPECT_EQ(h.feed("more"), "");
  EXPECT_EQ(h.flush(), "");
}

TEST(TextHoldbackTest, NeverSplitsAUtf8Character) {
  // "é" = C3 A9, "🙂" = F0 9F 99 82, fed byte by byte.
  const std::string text =
      "a\xC3\xA9\xF0\x9F\x99\x82"
      "b";
  TextHoldback h;
  std::vector<std::string> out;
  for (char c : text) out.push_back(h.feed(std::string(1, c)));
  out.push_back(h.flush());
  EXPECT_EQ(out[0], "a");
  EXPECT_EQ(out[1], "");
  EXPECT_EQ(out[2], "\xC3\xA9");
  EXPECT_EQ(out[3], "");
  EXPECT_EQ(out[4], "");
  EXPECT_EQ(out[5], "");
  EXPECT_EQ(out[6], "\xF0\x9F\x99\x82");
  EXPECT_EQ(out[7], "b");
  EXPECT_EQ(join(out), text);
}

TEST(TextHoldbackTest, IncompleteCharacterAtTheEndBecomesReplacement) {
  TextHoldback h;
  EXPECT_EQ(h.feed("x\xE4\xBD"), "x");
  EXPECT_EQ(h.flush(), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TextHoldbackTest, StopStringMadeOfMultibyteCharacters) {
  TextHoldback h({"。"});  // E3 80 82
  EXPECT_EQ(h.feed("你好\xE3"), "你好");
  EXPECT_EQ(h.feed("\x80"), "");
  EXPECT_EQ(h.feed("\x82"
                   "after"),
            "");
  EXPECT_TRUE(h.stopped());
}

TEST(TextHoldbackTest, IncompleteTailAndSanitize) {
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xC3"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("a\xF0\x9F\x99"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("a\xF0\x9F\x99\x82"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\x80\x80"), 0u);
  EXPECT_EQ(sanitize_utf8("ok\xFFok"), "ok\xEF\xBF\xBDok");
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(sanitize_utf8("Grüße 🙂"), "Grüße 🙂");
}

}  // namespace
}  // namespace hangar::worker
