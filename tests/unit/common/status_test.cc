#include "common/status.h"

#include <gtest/gtest.h>

namespace hangar {
namespace {

StatusOr<int> parse_positive(int v) {
  if (v <= 0) return invalid_argument_error("value " + std::to_string(v) + " is not positive");
  return v;
}

StatusOr<int> doubled(int v) {
  HANGAR_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Status check(int v) {
  HANGAR_RETURN_IF_ERROR(parse_positive(v));
  return ok_status();
}

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.to_string(), "OK");
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s = not_found_error("model 'x' not found");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.to_string(), "NOT_FOUND: model 'x' not found");
  EXPECT_EQ(s.with_context("loading").message(), "loading: model 'x' not found");
}

TEST(StatusTest, AssignOrReturnPropagatesErrors) {
  EXPECT_EQ(*doubled(4), 8);
  StatusOr<int> bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "value -1 is not positive");
}

TEST(StatusTest, ReturnIfErrorPropagatesErrors) {
  EXPECT_TRUE(check(3).ok());
  EXPECT_EQ(check(0).code(), StatusCode::kInvalidArgument);
}

TEST(StatusTest, StatusOrHoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(5);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(**p, 5);
}

}  // namespace
}  // namespace hangar
