#pragma once
// Shared set-up of the router's integration tests: an in-process Router on 127.0.0.1 port 0
// whose workers are hangar-fake-worker processes, models as script files in a temp folder, an
// SSE watcher on /models/sse to wait for state changes without sleeping, and small HTTP helpers.

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/sse.h"
#include "router/router.h"
#include "support/test_support.h"

namespace hangar::router::testing {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Generous hang detector for every wait in these tests (never a speed assertion).
inline constexpr auto kHangDetector = std::chrono::seconds(20);

// Collects /models/sse events from a background thread.
class SseWatcher {
 public:
  explicit SseWatcher(uint16_t port) {
    thread_ = std::thread([this, port] {
      http::FetchOptions o;
      o.timeout = std::chrono::seconds(120);
      http::SseParser parser;
      (void)http::fetch_stream(
          "http://127.0.0.1:" + std::to_string(port) + "/models/sse", o,
          [this](int, const http::Headers&) {
            std::lock_guard lock(mu_);
            subscribed_ = true;
            cv_.notify_all();
          },
          [&](std::string_view piece) {
            parser.feed(piece, [this](const http::SseEvent& e) {
              try {
                json j = json::parse(e.data);
                std::lock_guard lock(mu_);
                events_.push_back(j);
              } catch (const json::exception&) {
              }
              cv_.notify_all();
            });
            return true;
          });
      std::lock_guard lock(mu_);
      ended_ = true;
      cv_.notify_all();
    });
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, kHangDetector, [this] { return subscribed_ || ended_; });
  }
  ~SseWatcher() {
    if (thread_.joinable()) thread_.join();  // ends when the router closes the stream
  }

  // Waits until a model_status event with `status` for `model` was seen (at any time).
  bool wait_for_status(const std::string& model, const std::string& status) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kHangDetector, [&] { return count_locked(model, status) > 0; });
  }
  // Waits until `n` such events were seen.
  bool wait_for_count(const std::string& model, const std::string& status, int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kHangDetector, [&] { return count_locked(model, status) >= n; });
  }
  // Waits until an event named `event` (download_finished, models_reload...) for `model` came.
  bool wait_for_event(const std::string& model, const std::string& event) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kHangDetector, [&] {
      for (const json& e : events_) {
        if (e.value("model", "") == model && e.value("event", "") == event) return true;
      }
      return false;
    });
  }
  // The data of every `event` event for `model`, in order.
  std::vector<json> events(const std::string& model, const std::string& event) {
    std::lock_guard lock(mu_);
    std::vector<json> out;
    for (const json& e : events_) {
      if (e.value("model", "") == model && e.value("event", "") == event) {
        out.push_back(e.value("data", json()));
      }
    }
    return out;
  }
  // The states `model` went through, in order (status_change events: one per transition, not
  // the loading progress updates that model_status also carries).
  std::vector<std::string> statuses(const std::string& model) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const json& e : events_) {
      if (e.value("model", "") == model && e.value("event", "") == "status_change" &&
          e.contains("data") && e["data"].contains("status")) {
        out.push_back(e["data"]["status"].get<std::string>());
      }
    }
    return out;
  }
  int count(const std::string& model, const std::string& status) {
    std::lock_guard lock(mu_);
    return count_locked(model, status);
  }

 private:
  int count_locked(const std::string& model, const std::string& status) const {
    int n = 0;
    for (const json& e : events_) {
      if (e.value("model", "") == model && e.value("event", "") == "model_status" &&
          e.contains("data") && e["data"].value("status", "") == status) {
        ++n;
      }
    }
    return n;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<json> events_;  // guarded by mu_
  bool subscribed_ = false;   // guarded by mu_
  bool ended_ = false;        // guarded by mu_
  std::thread thread_;
};

class RouterHarness : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = hangar::testing::make_temp_dir("hangar-router-it");
    models_dir_ = dir_ / "models";
    std::filesystem::create_directories(models_dir_);
    options.host = "127.0.0.1";
    options.port = 0;
    options.worker_bin = HANGAR_FAKE_WORKER;
    options.sources.models_dir = models_dir_.string();
    options.queue_timeout = 10s;
    options.load_timeout = 10s;
    options.stop_timeout = 5s;
    // The fake worker's models are scripts, not GGUF files: no estimate, so no memory check
    // unless a test sets a margin (and gives its models preset `memory=`).
    options.memory_margin_mib = 0;
  }
  void TearDown() override {
    router.reset();
    watcher.reset();
    std::filesystem::remove_all(dir_);
  }

  // A model whose file scripts the fake worker (see tests/fake_worker/fake_worker.cc).
  void add_model(const std::string& name, const json& script = json::object()) {
    std::ofstream(models_dir_ / (name + ".gguf")) << script.dump();
  }
  std::string write_preset(const std::string& text) {
    auto p = dir_ / "models.ini";
    std::ofstream(p) << text;
    options.sources.preset_file = p.string();
    return p.string();
  }

  void start() {
    auto r = Router::create(options);
    ASSERT_TRUE(r.ok()) << r.status().message();
    router = std::move(r).value();
    auto port = router->start();
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = *port;
    watcher = std::make_unique<SseWatcher>(port_);
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  http::Response post(const std::string& path, const json& body, http::Headers h = {}) {
    h.add("Content-Type", "application/json");
    auto r = http::fetch("POST", url(path), body.dump(), h, kHangDetector);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : http::Response{};
  }
  http::Response get(const std::string& path, http::Headers h = {}) {
    auto r = http::fetch("GET", url(path), {}, h, kHangDetector);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : http::Response{};
  }
  http::Response chat(const std::string& model, const std::string& text = "hello") {
    return post("/v1/chat/completions",
                {{"model", model}, {"messages", {{{"role", "user"}, {"content", text}}}}});
  }
  // The /models entry of `id`.
  json model_entry(const std::string& id) {
    http::Response r = get("/models");
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.contains("data")) return json();
    for (const json& m : j["data"]) {
      if (m.value("id", "") == id) return m;
    }
    return json();
  }
  std::string state_of(const std::string& id) {
    json m = model_entry(id);
    return m.is_null() ? "" : m["status"].value("value", "");
  }

  RouterOptions options;
  std::unique_ptr<Router> router;
  std::unique_ptr<SseWatcher> watcher;
  uint16_t port_ = 0;
  std::filesystem::path dir_, models_dir_;
};

// A streamed request in a background thread: records the body as it arrives, and lets the test
// wait until some text was seen (causal, no timing).
class StreamClient {
 public:
  StreamClient(const std::string& url, const json& body) {
    thread_ = std::thread([this, url, body] {
      http::FetchOptions o;
      o.method = "POST";
      o.body = body.dump();
      o.headers.add("Content-Type", "application/json");
      o.timeout = kHangDetector;
      Status s = http::fetch_stream(
          url, o,
          [this](int status, const http::Headers&) {
            std::lock_guard lock(mu_);
            status_ = status;
          },
          [this](std::string_view piece) {
            std::lock_guard lock(mu_);
            body_.append(piece);
            cv_.notify_all();
            return true;
          });
      std::lock_guard lock(mu_);
      result_ = s;
      done_ = true;
      cv_.notify_all();
    });
  }
  ~StreamClient() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  bool wait_for_text(const std::string& text) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kHangDetector,
                        [&] { return body_.find(text) != std::string::npos || done_; }) &&
           body_.find(text) != std::string::npos;
  }
  std::string body() {
    std::lock_guard lock(mu_);
    return body_;
  }
  int status() {
    std::lock_guard lock(mu_);
    return status_;
  }
  Status result() {
    std::lock_guard lock(mu_);
    return result_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string body_;
  int status_ = 0;
  bool done_ = false;
  Status result_;
  std::thread thread_;
};

}  // namespace hangar::router::testing
