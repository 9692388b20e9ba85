// Memory admission through the real router with fake workers (issue 12, "Done when"): a devices
// file gives two GPUs and the host, preset `memory=` gives each model its need; the model short on
// CUDA1 evicts only the least recently used model holding CUDA1; a busy model is never evicted
// and the waiting load completes after it finishes; a model that can never fit is refused (507 /
// 400 naming device, need and budget) and nothing is unloaded.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "integration/router_harness.h"

namespace hangar::router::testing {
namespace {

class RouterMemory : public RouterHarness {
 protected:
  void SetUp() override {
    RouterHarness::SetUp();
    const auto devices = dir_ / "devices.json";
    std::ofstream(devices) << R"({"devices":[
      {"name":"CPU","type":"cpu","total_mib":16000,"free_mib":10000},
      {"name":"CUDA0","type":"gpu","total_mib":8192,"free_mib":8000},
      {"name":"CUDA1","type":"gpu","total_mib":8192,"free_mib":8000}]})";
    options.devices_file = devices.string();
    options.memory_margin_mib = 1000;  // budgets: CPU 9000, CUDA0 7000, CUDA1 7000 MiB
    options.models_max = 0;
    for (const char* m : {"old", "mid", "new", "x", "huge"}) add_model(m);
    write_preset(
        "version = 1\n"
        "[old]\nmemory = CUDA0:5000,CPU:100\n"
        "[mid]\nmemory = CUDA1:4000,CPU:100\n"
        "[new]\nmemory = CUDA1:2000,CPU:100\n"
        "[x]\nmemory = CUDA1:3500,CPU:100\n"
        "[huge]\nmemory = CUDA0:7500\n");
  }
  void load(const std::string& m) {
    http::Response r = post("/models/load", {{"model", m}, {"wait", true}});
    ASSERT_EQ(r.status, 200) << m << ": " << r.body;
  }
  json device(const std::string& name) {
    json j = json::parse(get("/devices").body, nullptr, false);
    if (j.is_discarded()) return json();
    for (const json& d : j["devices"]) {
      if (d.value("name", "") == name) return d;
    }
    return json();
  }
};

constexpr uint64_t kMiB = 1 << 20;

TEST_F(RouterMemory, ShortOnCuda1EvictsOnlyTheLruModelHoldingCuda1) {
  start();
  load("old");
  load("mid");
  load("new");
  EXPECT_EQ(device("CUDA1")["reserved"], 6000 * kMiB);
  EXPECT_EQ(device("CUDA1")["budget"], 7000 * kMiB);
  EXPECT_EQ(device("CUDA0")["reserved"], 5000 * kMiB);
  EXPECT_EQ(device("CPU")["budget"], 9000 * kMiB);
  // x needs 3500 MiB of CUDA1, where 1000 are left: "old" is the least recently used model but
  // holds only CUDA0; "mid" goes.
  http::Response r = chat("x");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(state_of("old"), "loaded");
  EXPECT_EQ(state_of("mid"), "unloaded");
  EXPECT_EQ(state_of("new"), "loaded");
  EXPECT_EQ(state_of("x"), "loaded");
  EXPECT_EQ(device("CUDA1")["reserved"], 5500 * kMiB);
  json entry = model_entry("x");
  EXPECT_EQ(entry["memory"]["estimate"]["CUDA1"], 3500 * kMiB);
}

TEST_F(RouterMemory, BusyModelIsNeverEvictedAndTheWaitingLoadCompletesAfterIt) {
  start();
  load("mid");
  load("new");
  // A stream on "mid" is held open (the fake worker's gate): mid is busy.
  StreamClient held(url("/v1/chat/completions"),
                    {{"model", "mid"},
                     {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                     {"stream", true},
                     {"fake_gate", "g"}});
  ASSERT_TRUE(held.wait_for_text("data:"));
  // x needs 3500 MiB of CUDA1 (1000 left). "mid" is the LRU but busy: "new" (2000) alone is not
  // enough, so x waits and nothing is evicted.
  http::Response load_x = post("/models/load", {{"model", "x"}});
  EXPECT_EQ(load_x.status, 200) << load_x.body;
  ASSERT_TRUE(watcher->wait_for_status("x", "waiting"));
  EXPECT_EQ(state_of("mid"), "loaded");
  EXPECT_EQ(state_of("new"), "loaded");
  // The stream finishes: mid is idle again (and now the most recently used), so the least
  // recently used first, "new" and then "mid", make room, and x loads.
  post("/tokenize", {{"model", "mid"}, {"content", "x"}, {"fake_release", "g"}});
  held.join();
  EXPECT_EQ(held.status(), 200);
  ASSERT_TRUE(watcher->wait_for_status("x", "loaded"));
  EXPECT_EQ(state_of("x"), "loaded");
  EXPECT_LE(device("CUDA1")["reserved"].get<uint64_t>(), 7000 * kMiB);
}

TEST_F(RouterMemory, NeverFitsIsRefusedWithDeviceNeedAndBudgetAndEvictsNothing) {
  start();
  load("old");
  load("mid");
  http::Response r = post("/models/load", {{"model", "huge"}});
  EXPECT_EQ(r.status, 507) << r.body;
  for (const char* part : {"CUDA0", "7500 MiB", "7000 MiB", "insufficient_memory_error"}) {
    EXPECT_NE(r.body.find(part), std::string::npos) << part << " in " << r.body;
  }
  http::Response proxied = chat("huge");
  EXPECT_EQ(proxied.status, 400) << proxied.body;
  EXPECT_NE(proxied.body.find("CUDA0"), std::string::npos) << proxied.body;
  EXPECT_EQ(state_of("old"), "loaded");
  EXPECT_EQ(state_of("mid"), "loaded");
  EXPECT_EQ(state_of("huge"), "unloaded");
}

// 16 concurrent cold requests over 6 models of random sizes: a sampler polling /devices never
// sees reserved > budget, and every request completes.
class RouterMemoryChurn : public RouterHarness {};

TEST_F(RouterMemoryChurn, ConcurrentColdRequestsNeverOvercommitAndAllComplete) {
  const auto devices = dir_ / "devices.json";
  std::ofstream(devices) << R"({"devices":[
      {"name":"CPU","type":"cpu","total_mib":4096,"free_mib":3000},
      {"name":"CUDA0","type":"gpu","total_mib":4096,"free_mib":2500}]})";
  options.devices_file = devices.string();
  options.memory_margin_mib = 500;  // budgets: CPU 2500, CUDA0 2000 MiB
  options.models_max = 0;
  options.queue_timeout = std::chrono::seconds(60);
  std::mt19937 rng(7);
  std::string preset = "version = 1\n";
  std::vector<std::string> names;
  for (int i = 0; i < 6; ++i) {
    const std::string name = "m" + std::to_string(i);
    names.push_back(name);
    add_model(name, {{"load_ms", 20 + static_cast<int>(rng() % 80)}});
    preset += "[" + name + "]\nmemory = CPU:" + std::to_string(300 + rng() % 1500) +
              ",CUDA0:" + std::to_string(rng() % 1800) + "\n";
  }
  write_preset(preset);
  start();

  std::atomic<bool> stop{false};
  std::atomic<int> samples{0};
  std::string violation;
  std::thread sampler([&] {
    while (!stop) {
      auto r = http::fetch("GET", url("/devices"), {}, {}, kHangDetector);
      if (!r.ok() || r->status != 200) continue;
      json j = json::parse(r->body, nullptr, false);
      if (j.is_discarded()) continue;
      for (const json& d : j["devices"]) {
        if (!d["budget"].is_null() && d["reserved"].get<uint64_t>() > d["budget"].get<uint64_t>()) {
          violation = d.dump();
        }
      }
      ++samples;
    }
  });
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  std::vector<std::string> failures(16);
  for (int c = 0; c < 16; ++c) {
    clients.emplace_back([&, c] {
      const std::string& model = names[static_cast<size_t>(c) % names.size()];
      auto r = http::fetch("POST", url("/v1/chat/completions"),
                           json{{"model", model},
                                {"messages", {{{"role", "user"}, {"content", "hi"}}}}}
                               .dump(),
                           {{"Content-Type", "application/json"}}, kHangDetector * 3);
      if (r.ok() && r->status == 200) {
        ++ok;
      } else {
        failures[static_cast<size_t>(c)] = r.ok() ? r->body : r.status().message();
      }
    });
  }
  for (auto& t : clients) t.join();
  stop = true;
  sampler.join();
  EXPECT_EQ(ok.load(), 16);
  for (const std::string& f : failures) EXPECT_EQ(f, "");
  EXPECT_EQ(violation, "");
  EXPECT_GT(samples.load(), 0);
  ASSERT_TRUE(router->model_status().size() == 6u);
}

}  // namespace
}  // namespace hangar::router::testing
