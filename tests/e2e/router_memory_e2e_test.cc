// Memory admission end to end with real `hangar run` workers (issue 12, "Done when"): three
// fixture models and a --devices-file CPU budget that holds any two of them: a request for the
// third evicts the least recently used; /devices and /models memory fields are right after each
// step; the workers' arguments carry no memory margin.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "e2e/router_process.h"

namespace hangar::e2e {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// What `hangar estimate` plans for `model` with the router's worker arguments (-c 512).
uint64_t estimate_of(const std::filesystem::path& model) {
  auto r = testing::run_command(
      {testing::hangar_binary(), "estimate", "-m", model.string(), "-c", "512", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  if (j.is_discarded()) return 0;
  return j["devices"]["CPU"]["total"].get<uint64_t>();
}

json get_json(const std::string& url) {
  auto r = http::fetch("GET", url, {}, {}, kHangDetector);
  if (!r.ok() || r->status != 200) return json();
  return json::parse(r->body, nullptr, false);
}

json cpu_device(const Serve& serve) {
  json j = get_json(serve.url("/devices"));
  if (!j.is_object()) return json();
  for (const json& d : j["devices"]) {
    if (d.value("name", "") == "CPU") return d;
  }
  return json();
}

// id → its /models entry.
std::map<std::string, json> entries(const Serve& serve) {
  std::map<std::string, json> out;
  json j = get_json(serve.url("/models"));
  if (!j.is_object()) return out;
  for (const json& m : j["data"]) out[m["id"].get<std::string>()] = m;
  return out;
}

TEST(RouterMemoryE2e, ABudgetForTwoModelsEvictsTheLeastRecentlyUsedForTheThird) {
  HANGAR_REQUIRE_FIXTURES();
#if defined(__SANITIZE_ADDRESS__)
  // The budget is sized from the estimates; under AddressSanitizer every worker measures about
  // 100 MiB more Pss (its shadow memory), which rightly raises the reservations past it.
  GTEST_SKIP() << "the footprint cannot be measured under AddressSanitizer (+~100 MiB Pss)";
#endif
  const std::vector<std::string> models = {"llama-spm-f16", "qwen2-f16", "qwen3-f16"};
  const auto dir = make_models_dir(fixtures, models);
  std::map<std::string, uint64_t> need;
  for (const std::string& m : models) {
    need[m] = estimate_of(dir / (m + ".gguf"));
    ASSERT_GT(need[m], 0u) << m;
  }
  uint64_t total = 0, smallest = UINT64_MAX;
  for (const auto& [m, n] : need) {
    total += n;
    smallest = std::min(smallest, n);
  }
  // Any two fit (the budget is at least total − smallest), all three do not.
  const uint64_t budget_mib = (total - smallest / 2) / kMiB;
  ASSERT_GE(budget_mib * kMiB, total - smallest);
  const auto devices = dir / "devices.json";
  std::ofstream(devices) << json{{"devices",
                                  {{{"name", "CPU"},
                                    {"type", "cpu"},
                                    {"total_mib", budget_mib + 64},
                                    {"free_mib", budget_mib + 1}}}}}
                                .dump();
  Serve serve({"--models-dir", dir.string(), "-c", "512", "--models-max", "0",
               "--models-memory-margin", "1", "--devices-file", devices.string()});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  const std::string base = serve.url("");

  EXPECT_EQ(cpu_device(serve)["budget"], budget_mib * kMiB);
  EXPECT_EQ(cpu_device(serve)["reserved"], 0u);
  for (const auto& [id, e] : entries(serve)) {
    EXPECT_EQ(e["memory"]["estimate"]["CPU"], need[id]) << id;
    for (const json& a : e["status"]["args"]) {
      EXPECT_EQ(a.get<std::string>().find("memory-margin"), std::string::npos) << id;
    }
  }

  auto check_reserved = [&](const std::vector<std::string>& loaded) {
    std::map<std::string, json> e = entries(serve);
    uint64_t sum = 0;
    for (const std::string& m : loaded) {
      ASSERT_EQ(e[m]["status"]["value"], "loaded") << m;
      const uint64_t reserved = e[m]["memory"]["reserved"]["CPU"].get<uint64_t>();
      const uint64_t measured = e[m]["memory"]["measured"]["CPU"].get<uint64_t>();
      // The reservation is the estimate, raised to the measured footprint when that is larger.
      EXPECT_EQ(reserved, std::max(need[m], measured)) << m;
      EXPECT_GT(measured, 0u) << m;
      sum += reserved;
    }
    json cpu = cpu_device(serve);
    EXPECT_EQ(cpu["reserved"].get<uint64_t>(), sum);
    EXPECT_LE(cpu["reserved"].get<uint64_t>(), cpu["budget"].get<uint64_t>());
    EXPECT_GT(cpu["measured"].get<uint64_t>(), 0u);
  };

  for (size_t i = 0; i < 2; ++i) {
    StreamedChat chat = stream_chat(base, models[i], "Hello", 4);
    ASSERT_EQ(chat.status, 200) << chat.error;
  }
  check_reserved({models[0], models[1]});
  // The third does not fit beside both: the least recently used (the first) goes.
  StreamedChat third = stream_chat(base, models[2], "Hello", 4);
  ASSERT_EQ(third.status, 200) << third.error;
  using States = std::map<std::string, std::string>;
  EXPECT_EQ(model_states(base), (States{{models[0], "unloaded"},
                                        {models[1], "loaded"},
                                        {models[2], "loaded"}}));
  check_reserved({models[1], models[2]});
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
  std::filesystem::remove_all(dir);
}

TEST(RouterMemoryE2e, DryRunPrintsBudgetsAndEstimatesAndFailsWhenAPreloadCanNeverFit) {
  HANGAR_REQUIRE_FIXTURES();
  const auto dir = make_models_dir(fixtures, {"llama-spm-f32", "qwen2-f16"});
  const uint64_t small = estimate_of(dir / "llama-spm-f32.gguf");
  const uint64_t large = estimate_of(dir / "qwen2-f16.gguf");
  ASSERT_LT(small + 2 * kMiB, large);
  // A budget between the two estimates: the small model fits alone, the large one never does.
  const uint64_t budget_mib = (small + large) / 2 / kMiB;
  const auto devices = dir / "devices.json";
  std::ofstream(devices) << json{{"devices",
                                  {{{"name", "CPU"},
                                    {"type", "cpu"},
                                    {"total_mib", 4096},
                                    {"free_mib", budget_mib + 100}}}}}
                                .dump();
  const std::vector<std::string> base = {testing::hangar_binary(), "serve", "--models-dir",
                                         dir.string(), "-c", "512", "--devices-file",
                                         devices.string(), "--models-memory-margin", "100",
                                         "--dry-run"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::run_command(argv);
  };
  auto text = with({});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("budget"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("NEVER FITS"), std::string::npos) << text.out;

  auto report = with({"--json", "--preload", "qwen2-f16"});
  EXPECT_EQ(report.exit_code, 1) << report.err;
  json j = json::parse(report.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << report.out;
  EXPECT_EQ(j["devices"][0]["budget"], budget_mib * kMiB);
  EXPECT_EQ(j["ok"], false);
  std::map<std::string, json> models;
  for (const json& m : j["models"]) models[m["id"].get<std::string>()] = m;
  EXPECT_EQ(models["llama-spm-f32"]["fits_alone"], true);
  EXPECT_EQ(models["llama-spm-f32"]["estimate"]["CPU"], small);
  EXPECT_EQ(models["qwen2-f16"]["fits_alone"], false);
  EXPECT_EQ(models["qwen2-f16"]["loads_at_start"], true);
  EXPECT_NE(models["qwen2-f16"]["reason"].get<std::string>().find("device CPU"),
            std::string::npos);
  EXPECT_EQ(with({"--preload", "llama-spm-f32"}).exit_code, 0);
  std::filesystem::remove_all(dir);
}

TEST(RouterMemoryE2e, ABackendModelIsEstimatedWithTheLlamaServerPlacementOverTheGpus) {
  HANGAR_REQUIRE_FIXTURES();
  const auto dir = make_models_dir(fixtures, {"qwen2-f16"});
  const auto devices = dir / "devices.json";
  std::ofstream(devices) << R"({"devices":[
      {"name":"CPU","type":"cpu","total_mib":16000,"free_mib":12000},
      {"name":"CUDA0","type":"gpu","total_mib":8192,"free_mib":8000}]})";
  auto plan = [&](const std::string& ngl) {
    auto r = testing::run_command(
        {testing::hangar_binary(), "serve", "--models-dir", dir.string(), "--devices-file",
         devices.string(), "--backend", "llama-server -m {model} --port {port} {args}", "-c",
         "512", "-ngl", ngl, "--dry-run", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json() : j["models"][0];
  };
  json all = plan("99");
  json none = plan("0");
  EXPECT_EQ(all["source"], "llama-server formula");
  // Every layer on the GPU: most of the weights leave the host.
  EXPECT_GT(all["estimate"]["CUDA0"].get<uint64_t>(), none["estimate"].value("CUDA0", 0ull));
  EXPECT_LT(all["estimate"]["CPU"].get<uint64_t>(), none["estimate"]["CPU"].get<uint64_t>());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hangar::e2e

namespace hangar::e2e {
namespace {

// A Hugging Face cache laid out by hf-cache.md's rules by hand, as llama.cpp leaves it: blobs
// named by SHA-256, relative snapshot links, refs/main. `hangar serve` lists and serves it with
// no flag (issue 13, "Done when").
TEST(RouterCacheE2e, ACacheLaidOutAsLlamaCppLeavesItIsListedAndServedWithNoFlag) {
  HANGAR_REQUIRE_FIXTURES();
  namespace fs = std::filesystem;
  const fs::path root = testing::make_temp_dir("hangar-llama-cache");
  const fs::path repo = root / "models--someone--qwen-GGUF";
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  const std::string oid = "5e1f0d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots" / commit);
  fs::copy_file(fixtures + "/models/qwen2-f16.gguf", repo / "blobs" / oid);
  fs::create_symlink(fs::path("..") / ".." / "blobs" / oid,
                     repo / "snapshots" / commit / "qwen-Q8_0.gguf");
  std::ofstream(repo / "refs" / "main") << commit;

  Serve serve({"-c", "256"}, {"LLAMA_CACHE=" + root.string()});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  const std::string base = serve.url("");
  EXPECT_EQ(model_states(base), (std::map<std::string, std::string>{
                                    {"someone/qwen-GGUF:Q8_0", "unloaded"}}));
  StreamedChat chat = stream_chat(base, "someone/qwen-GGUF:Q8_0", "Hello", 4);
  EXPECT_EQ(chat.status, 200) << chat.error << serve.process().output();
  EXPECT_TRUE(chat.done);
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
  fs::remove_all(root);
}

}  // namespace
}  // namespace hangar::e2e
