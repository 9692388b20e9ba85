// Router integration: the HTTP API (design §7) against fake workers: routing by body and query,
// aliases, errors with llama.cpp's codes, API key, /models shapes, reload, presets.
#include <sys/stat.h>

#include <filesystem>
#include <regex>

#include "integration/router_harness.h"

namespace hangar::router::testing {
namespace {

TEST_F(RouterHarness, RoutesByBodyModelAndAliasAndQueryParameter) {
  add_model("alpha");
  write_preset("version = 1\n[alpha]\nalias = first, uno\nc = 64\n");
  start();
  http::Response r = chat("uno", "hi there");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "alpha heard: hi there ");
  http::Response props = get("/props?model=first");
  EXPECT_EQ(props.status, 200) << props.body;
  EXPECT_EQ(json::parse(props.body)["model_alias"], "alpha");
  http::Response tok = post("/tokenize", {{"model", "alpha"}, {"content", "AB"}});
  EXPECT_EQ(json::parse(tok.body)["tokens"], json::array({65, 66}));
  http::Response emb = post("/v1/embeddings", {{"model", "alpha"}, {"input", "abc"}});
  EXPECT_EQ(emb.status, 200) << emb.body;
  http::Response cmp = post("/v1/completions", {{"model", "alpha"}, {"prompt", "x"}});
  EXPECT_EQ(json::parse(cmp.body)["choices"][0]["text"], "alpha heard: x ");
}

TEST_F(RouterHarness, ErrorsUseLlamaCppCodes) {
  add_model("alpha");
  start();
  http::Response missing = post("/v1/chat/completions", {{"messages", json::array()}});
  EXPECT_EQ(missing.status, 400);
  http::Response unknown = chat("nope");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("model 'nope' not found"), std::string::npos) << unknown.body;
  EXPECT_EQ(json::parse(unknown.body)["error"]["type"], "invalid_request_error");
  EXPECT_EQ(post("/models/load", {{"model", "nope"}}).status, 404);
  EXPECT_EQ(post("/models/unload", {{"model", "nope"}}).status, 404);
  http::Response bad_json =
      *http::fetch("POST", url("/v1/chat/completions"), "{not json", {}, kHangDetector);
  EXPECT_EQ(bad_json.status, 400);
  // ?autoload=false on a cold model.
  http::Response cold = post("/v1/chat/completions?autoload=false",
                             {{"model", "alpha"}, {"messages", json::array()}});
  EXPECT_EQ(cold.status, 400);
  EXPECT_NE(cold.body.find("model is not loaded"), std::string::npos) << cold.body;
}

TEST_F(RouterHarness, NoAutoloadRefusesColdModelsUntilLoaded) {
  add_model("alpha");
  options.models_autoload = false;
  start();
  EXPECT_EQ(chat("alpha").status, 400);
  EXPECT_EQ(post("/models/load", {{"model", "alpha"}, {"wait", true}}).status, 200);
  EXPECT_EQ(chat("alpha").status, 200);
  json props = json::parse(get("/props").body);
  EXPECT_EQ(props["role"], "router");
  EXPECT_EQ(props["models_autoload"], false);
}

TEST_F(RouterHarness, ApiKeyGuardsEverythingButHealth) {
  add_model("alpha");
  options.api_key = "sekrit";
  start();
  EXPECT_EQ(get("/health").status, 200);
  http::Response denied = get("/models");
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(json::parse(denied.body)["error"]["type"], "authentication_error");
  EXPECT_EQ(chat("alpha").status, 401);
  http::Headers h;
  h.add("Authorization", "Bearer sekrit");
  EXPECT_EQ(get("/models", h).status, 200);
  http::Response ok = post("/v1/chat/completions",
                           {{"model", "alpha"}, {"messages", json::array()}}, h);
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(RouterHarness, ModelsListShowsStatusSourceAndArgs) {
  add_model("alpha");
  write_preset("version = 1\n[*]\nc = 128\n[alpha]\nalias = a1\n");
  start();
  json list = json::parse(get("/v1/models").body);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  json m = list["data"][0];
  EXPECT_EQ(m["id"], "alpha");
  EXPECT_EQ(m["object"], "model");
  EXPECT_EQ(m["aliases"], json::array({"a1"}));
  EXPECT_EQ(m["source"], "models-dir");
  EXPECT_EQ(m["status"]["value"], "unloaded");
  const json& args = m["status"]["args"];
  EXPECT_NE(std::find(args.begin(), args.end(), "--ctx-size"), args.end()) << args.dump();
  EXPECT_EQ(post("/models/load", {{"model", "alpha"}, {"wait", true}}).status, 200);
  EXPECT_EQ(state_of("alpha"), "loaded");
  EXPECT_EQ(post("/models/unload", {{"model", "alpha"}}).status, 200);
  ASSERT_TRUE(watcher->wait_for_status("alpha", "unloaded"));
  // Unloading what is not running is a 400.
  EXPECT_EQ(post("/models/unload", {{"model", "alpha"}}).status, 400);
}

// The socket a ready worker listens on (issue 16 item 7), read from its /models args.
std::string listen_path(const json& entry) {
  const json& args = entry["status"]["args"];
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--listen") return args[i + 1].get<std::string>().substr(5);  // "unix:"
  }
  return "";
}

TEST_F(RouterHarness, WorkersListenOnUnixSocketsThatGoWithThem) {
  add_model("alpha");
  start();
  ASSERT_EQ(post("/models/load", {{"model", "alpha"}, {"wait", true}}).status, 200);
  const std::string first = listen_path(model_entry("alpha"));
  ASSERT_FALSE(first.empty()) << model_entry("alpha").dump();
  EXPECT_EQ(std::filesystem::status(first).type(), std::filesystem::file_type::socket);
  struct stat dir {};
  ASSERT_EQ(stat(std::filesystem::path(first).parent_path().c_str(), &dir), 0);
  EXPECT_EQ(dir.st_mode & 0777, 0700u);
  EXPECT_EQ(chat("alpha", "over a socket").status, 200);

  EXPECT_EQ(post("/models/unload", {{"model", "alpha"}}).status, 200);
  ASSERT_TRUE(watcher->wait_for_status("alpha", "unloaded"));
  EXPECT_FALSE(std::filesystem::exists(first));
  // A crashed worker's socket is removed too, and the next start gets a fresh name.
  ASSERT_EQ(post("/models/load", {{"model", "alpha"}, {"wait", true}}).status, 200);
  const std::string second = listen_path(model_entry("alpha"));
  EXPECT_NE(second, first);
  ASSERT_TRUE(std::filesystem::exists(second));
  (void)post("/v1/chat/completions", {{"model", "alpha"},
                                      {"stream", true},
                                      {"fake_crash_after", 0},
                                      {"messages", json::array()}});
  ASSERT_TRUE(watcher->wait_for_count("alpha", "unloaded", 2));
  EXPECT_FALSE(std::filesystem::exists(second)) << "a killed worker's socket stayed";
  const std::string socket_dir = std::filesystem::path(second).parent_path().string();
  router->shutdown(5s);
  EXPECT_FALSE(std::filesystem::exists(socket_dir)) << "the socket directory outlived the router";
}

TEST_F(RouterHarness, TheStatusPageLoadsWithoutTheKeyAndHoldsNoData) {
  add_model("alpha");
  options.api_key = "sesame";
  start();
  for (const char* path : {"/", "/ui"}) {
    http::Response page = get(path);
    ASSERT_EQ(page.status, 200) << path;
    EXPECT_EQ(page.headers.get("Content-Type").value_or(""), "text/html; charset=utf-8");
    EXPECT_NE(page.body.find("<body data-auth=\"key\">"), std::string::npos);
    // Self-contained: nothing is fetched from another host.
    EXPECT_EQ(page.body.find("http://"), std::string::npos);
    EXPECT_EQ(page.body.find("https://"), std::string::npos);
    EXPECT_EQ(page.body.find("alpha"), std::string::npos) << "the page itself lists a model";
    EXPECT_NE(page.headers.get("Content-Security-Policy").value_or("").find("connect-src 'self'"),
              std::string::npos);
  }
  // Every data call still needs the key.
  EXPECT_EQ(get("/models").status, 401);
  EXPECT_EQ(get("/devices").status, 401);
  EXPECT_EQ(get("/models", {{"Authorization", "Bearer sesame"}}).status, 200);
}

TEST_F(RouterHarness, NoUiTurnsThePageOff) {
  add_model("alpha");
  options.ui = false;
  start();
  EXPECT_EQ(get("/").status, 404);
  EXPECT_EQ(get("/ui").status, 404);
  http::Response models = get("/models");
  EXPECT_EQ(models.status, 200);
}

TEST_F(RouterHarness, WithoutAKeyThePageSaysSo) {
  add_model("alpha");
  start();
  http::Response page = get("/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<body data-auth=\"none\">"), std::string::npos);
}

TEST_F(RouterHarness, ReloadAddsNewModelsAndUnloadsRemovedRunningOnes) {
  add_model("alpha");
  start();
  EXPECT_EQ(chat("alpha").status, 200);
  add_model("beta");
  std::filesystem::remove(models_dir_ / "alpha.gguf");
  http::Response r = get("/models?reload=1");
  ASSERT_EQ(r.status, 200) << r.body;
  json list = json::parse(r.body);
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], "beta");
  ASSERT_TRUE(watcher->wait_for_status("alpha", "unloaded"));
  EXPECT_EQ(chat("alpha").status, 400);
  EXPECT_EQ(chat("beta").status, 200);
}

TEST_F(RouterHarness, PresetErrorsFailStartupNamingFileLineAndKey) {
  add_model("alpha");
  std::string file = write_preset("version = 1\n[alpha]\nc = 1\nnot-a-flag = 2\n");
  auto r = Router::create(options);
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find(file), std::string::npos) << m;
  EXPECT_NE(m.find("line 4"), std::string::npos) << m;
  EXPECT_NE(m.find("not-a-flag"), std::string::npos) << m;
  write_preset("version = 1\n[beta]\nmodel = /x.gguf\nalias = alpha\n");
  auto dup = Router::create(options);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("alpha"), std::string::npos);
}

TEST_F(RouterHarness, StreamsPassThroughChunkByChunk) {
  add_model("alpha");
  start();
  json body = {{"model", "alpha"},
               {"stream", true},
               {"fake_gate", "g"},
               {"messages", {{{"role", "user"}, {"content", "x y z"}}}}};
  StreamClient stream(url("/v1/chat/completions"), body);
  // The role chunk and the first word arrive while the worker holds the rest: nothing waits
  // for the whole body.
  ASSERT_TRUE(stream.wait_for_text("\"role\":\"assistant\""));
  ASSERT_TRUE(stream.wait_for_text("alpha "));
  EXPECT_EQ(stream.body().find("[DONE]"), std::string::npos);
  EXPECT_EQ(post("/tokenize", {{"model", "alpha"}, {"fake_release", "g"}}).status, 200);
  stream.join();
  EXPECT_EQ(stream.status(), 200);
  EXPECT_NE(stream.body().find("[DONE]"), std::string::npos);
}

}  // namespace
TEST_F(RouterHarness, PropsBuildInfoHasLlamaCppsForm) {
  start();
  json props = json::parse(get("/props").body, nullptr, false);
  ASSERT_TRUE(props.is_object());
  const std::string info = props.value("build_info", "");
  // b<commit count>-<short hash>, as llama.cpp ("b0-unknown" outside a git checkout).
  EXPECT_TRUE(std::regex_match(info, std::regex("b[0-9]+-([0-9a-f]{7,}|unknown)"))) << info;
}

}  // namespace hangar::router::testing
