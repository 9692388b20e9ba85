// A client written against llama.cpp's router API (tests/e2e/llama_router_api.py: list, load,
// props by ?model=, chat by model, unknown model, unload) runs unchanged against `hangar serve`
// over fixture models (issue 5, "Done when"), with and without an API key.
#include <gtest/gtest.h>

#include "e2e/router_process.h"

namespace hangar::e2e {
namespace {

const std::string kScript = std::string(HANGAR_SOURCE_DIR) + "/tests/e2e/llama_router_api.py";

class RouterLlamaApiTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
};

TEST_F(RouterLlamaApiTest, LlamaCppRouterClientScriptWorksUnchanged) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string python = find_in_path("python3");
  ASSERT_FALSE(python.empty()) << "python3 is not on PATH";
  dir_ = make_models_dir(fixtures, {"llama-spm-f16", "qwen2-f16", "qwen3-f16"});
  Serve serve({"--models-dir", dir_.string(), "--models-max", "2", "-c", "512"});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  for (const char* model : {"qwen2-f16", "llama-spm-f16"}) {
    testing::CommandResult r = testing::run_command({python, kScript, serve.url(""), model});
    EXPECT_EQ(r.exit_code, 0) << model << "\n" << r.out << r.err << serve.process().output();
    EXPECT_NE(r.out.find("router api: ok"), std::string::npos) << r.out << r.err;
  }
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
}

TEST_F(RouterLlamaApiTest, LlamaCppRouterClientScriptWorksWithAnApiKey) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string python = find_in_path("python3");
  ASSERT_FALSE(python.empty()) << "python3 is not on PATH";
  dir_ = make_models_dir(fixtures, {"qwen3-f16"});
  Serve serve({"--models-dir", dir_.string(), "--api-key", "sekrit", "-c", "512"});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  testing::CommandResult keyed =
      testing::run_command({python, kScript, serve.url(""), "qwen3-f16", "sekrit"});
  EXPECT_EQ(keyed.exit_code, 0) << keyed.out << keyed.err << serve.process().output();
  EXPECT_NE(keyed.out.find("router api: ok"), std::string::npos) << keyed.out << keyed.err;
  // Without the key the script's first call (GET /models) is refused.
  testing::CommandResult unkeyed =
      testing::run_command({python, kScript, serve.url(""), "qwen3-f16"});
  EXPECT_NE(unkeyed.exit_code, 0) << unkeyed.out;
  EXPECT_NE(unkeyed.out.find("GET /models: 401"), std::string::npos) << unkeyed.out;
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
}

}  // namespace
}  // namespace hangar::e2e
