// The JSON depth pre-scan (issue 16 item 1): brackets count only outside strings, escapes
// never end a string, and the scan stops as soon as the limit is passed.
#include "common/json_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace hangar {
namespace {

TEST(JsonLimitsTest, CountsNestingOutsideStringsOnly) {
  EXPECT_EQ(json_nesting_depth("1"), 0u);
  EXPECT_EQ(json_nesting_depth(R"({"a":[1,{"b":[]}]})"), 4u);
  EXPECT_EQ(json_nesting_depth(R"({"a":"[[[[{{{{"})"), 1u);
  EXPECT_EQ(json_nesting_depth(R"({"a":"\"[[[[","b":[[]]})"), 3u);  // escaped quote
  EXPECT_EQ(json_nesting_depth(R"(["\\",[[]]])"), 3u);               // escaped backslash
}

TEST(JsonLimitsTest, RefusesDeeperThanTheLimitAndStopsEarly) {
  const std::string deep = std::string(400'000, '[') + std::string(400'000, ']');
  EXPECT_EQ(json_nesting_depth(deep), kMaxJsonDepth + 1);  // stopped at the limit
  const Status s = check_json_depth(deep);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "request body nests arrays and objects more than 128 deep");
  const std::string at_limit = std::string(128, '[') + std::string(128, ']');
  EXPECT_TRUE(check_json_depth(at_limit).ok());
  EXPECT_FALSE(check_json_depth(at_limit, 127).ok());
}

}  // namespace
}  // namespace hangar
