#pragma once
// Shared helpers for hangar's tests: where the fixtures, test data and the hangar binary are,
// and running a command to completion.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace hangar::testing {

// The shared fixtures folder (../shared/fixtures), or nullopt when it is absent. Under CI=true
// a missing fixtures folder is a test failure, not a skip (clarifications.md).
std::optional<std::string> fixtures_dir();

// Every *.gguf file of the fixtures' vocab/ and models/ folders, sorted within each folder.
std::vector<std::string> fixture_gguf_files(const std::string& fixtures);

// tests/data in the source tree.
std::string test_data_dir();
// The built `hangar` binary.
std::string hangar_binary();
// A fresh empty temporary directory, removed by the caller (or left in /tmp).
std::string make_temp_dir(const std::string& prefix = "hangar-test");

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;     // stdout
  std::string err;     // stderr
};
// Runs argv (no shell) to completion, capturing stdout and stderr.
CommandResult run_command(const std::vector<std::string>& argv);

}  // namespace hangar::testing

// Skips the test (or fails it under CI=true) when the shared fixtures are absent; otherwise
// declares `const std::string fixtures` holding their path.
#define HANGAR_REQUIRE_FIXTURES()                                                         \
  const auto hangar_fixtures_opt_ = ::hangar::testing::fixtures_dir();                    \
  if (!hangar_fixtures_opt_) {                                                            \
    if (std::getenv("CI") && std::string(std::getenv("CI")) == "true") {                  \
      FAIL() << "the shared fixtures folder " HANGAR_FIXTURES_DIR " is missing under CI"; \
    }                                                                                     \
    GTEST_SKIP() << "shared fixtures not found at " HANGAR_FIXTURES_DIR                   \
                    " (set -DHANGAR_FIXTURES=...); skipping";                             \
  }                                                                                       \
  const std::string fixtures = *hangar_fixtures_opt_
