// The status page in a real browser (issue 15, "Done when"): Debian's chromium, driven headless
// by playwright-core (tests/ui/node/status_page.mjs), against a real `hangar serve` with an API
// key, fake workers, a --devices-file and a fake hub. The script enters the key, loads a model with
// the button and sees loading → loaded and the device bar grow without a reload, sees a download's
// progress bar advance, unloads and sees the bar freed, sees a never-fits load's message, and
// streams a chat answer; it saves screenshots at 1440 and 375 px wide under the build folder and
// fails on any console error. Skipped only when node, playwright-core or chromium is missing and
// CI is not "true".
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "e2e/router_process.h"
#include "fake_hub.h"

namespace hangar::e2e {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr char kKey[] = "ui-test-key";

bool under_ci() { return std::getenv("CI") && std::string(std::getenv("CI")) == "true"; }

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Debian's chromium, or the one HANGAR_CHROMIUM names.
std::string find_chromium() {
  if (const char* env = std::getenv("HANGAR_CHROMIUM"); env != nullptr && *env != '\0') {
    return access(env, X_OK) == 0 ? env : "";
  }
  return find_in_path("chromium");
}

TEST(StatusPageUi, KeyLoadDownloadUnloadNeverFitsAndChatWorkInTheBrowser) {
  const std::string ui_dir = std::string(HANGAR_SOURCE_DIR) + "/tests/ui";
  const std::string node = find_in_path("node");
  const std::string chromium = find_chromium();
  std::string missing;
  if (node.empty()) {
    missing = "node is not on PATH";
  } else if (!exists(ui_dir + "/node/node_modules/playwright-core/package.json")) {
    missing = ui_dir + "/node/node_modules/playwright-core is missing (run scripts/setup)";
  } else if (chromium.empty()) {
    missing = "chromium is not on PATH (apt-get install chromium, or run scripts/setup)";
  }
  if (!missing.empty()) {
    if (under_ci()) FAIL() << missing << " under CI";
    GTEST_SKIP() << missing;
  }

  namespace fs = std::filesystem;
  const fs::path dir = testing::make_temp_dir("hangar-ui");
  const fs::path models = dir / "models";
  fs::create_directories(models);
  // The fake worker reads its model file as a script. "alpha" loads for a while, so the page
  // shows "loading" before "loaded" (the test waits for the state, it does not time it).
  std::ofstream(models / "alpha.gguf") << R"({"load_ms": 2500})";
  std::ofstream(models / "huge.gguf") << R"({})";

  // A 2 MiB "GGUF" sent 32 KiB every 50 ms: a few seconds of downloading.
  testing::FakeHub hub;
  ASSERT_TRUE(hub.start().ok());
  std::string big = R"({"load_ms": 500})";
  big.resize(2 << 20, ' ');
  hub.add_repo("acme/big-GGUF", {{"big-Q8_0.gguf", big, "", true}});
  hub.fault_file("big-Q8_0.gguf", {testing::FaultKind::kTrickle, -1, 500, 0, 32 << 10,
                                   std::chrono::milliseconds(50)});

  // Budgets with a 1000 MiB margin: CPU 9000 MiB, CUDA0 7000 MiB. "huge" never fits CUDA0.
  const fs::path devices = dir / "devices.json";
  std::ofstream(devices) << R"({"devices":[
      {"name":"CPU","type":"cpu","total_mib":16000,"free_mib":10000},
      {"name":"CUDA0","type":"gpu","total_mib":8192,"free_mib":8000}]})";
  const fs::path preset = dir / "models.ini";
  std::ofstream(preset) << "version = 1\n"
                           "[alpha]\nmemory = CUDA0:3000,CPU:100\n"
                           "[huge]\nmemory = CUDA0:7500\n"
                           "[big]\nhf-repo = acme/big-GGUF:Q8_0\nmemory = CPU:200\n";

  const fs::path cache = dir / "cache";
  Serve serve({"--models-dir", models.string(), "--models-preset", preset.string(),
               "--devices-file", devices.string(), "--models-memory-margin", "1000", "--cache-dir",
               cache.string(), "--worker-bin", HANGAR_FAKE_WORKER, "--api-key", kKey},
              {"HF_ENDPOINT=" + hub.endpoint(), "LLAMA_CACHE=" + cache.string(),
               "HOME=" + (dir / "home").string()});
  ASSERT_NE(serve.port(), 0) << serve.process().output();

  // Fresh each run, so no screenshot of an earlier run (a failure's) is mistaken for this one's.
  const std::string shots = std::string(HANGAR_BINARY_DIR) + "/ui-screenshots";
  fs::remove_all(shots);
  fs::create_directories(shots);
  const json spec = {{"load", "alpha"},
                     {"download", "big"},
                     {"never_fits", "huge"},
                     {"device", "CUDA0"},
                     {"load_bytes", 3000 * kMiB}};
  testing::CommandResult r = testing::run_command(
      {node, ui_dir + "/node/status_page.mjs", serve.url(""), kKey, shots, spec.dump(), chromium});
  if (r.exit_code == 0) std::cout << r.out;  // one line per step (on failure, below)
  EXPECT_EQ(r.exit_code, 0) << "status_page.mjs stdout:\n"
                            << r.out << "\nstderr:\n"
                            << r.err << "\nrouter output:\n"
                            << serve.process().output();
  if (r.exit_code == 0) {
    // Every screenshot the script promised is there.
    for (const char* name : {"1440-loaded.png", "1440-final.png", "375-final.png"}) {
      EXPECT_TRUE(exists(shots + "/" + name)) << name;
    }
  }
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hangar::e2e
