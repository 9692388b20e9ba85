// Single flight: concurrent calls for one missing model share one transfer per file; one caller
// giving up does not stop the others.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "download/download.h"
#include "hub_env.h"

namespace hangar::download {
namespace {

using hangar::testing::FaultKind;

class ConcurrencyTest : public HubEnv {
 protected:
  void SetUp() override {
    HubEnv::SetUp();
    data_ = bytes(300'000, 9);
    hub_.add_repo("org/C", {{"c-Q4_K_M.gguf", data_, "", true}});
    // Slow enough that every caller arrives while the transfer runs.
    hub_.fault_file("c-Q4_K_M.gguf",
                    {FaultKind::kTrickle, -1, 0, 0, 20'000, std::chrono::milliseconds(20)});
  }
  std::string data_;
};

TEST_F(ConcurrencyTest, EightConcurrentCallsCauseOneDownload) {
  std::vector<StatusOr<LocalModel>> results(8, internal_error("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { results[i] = ensure_downloaded("org/C:Q4_K_M", opts_); });
  }
  for (auto& t : threads) t.join();
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->path, results[0]->path);
  }
  EXPECT_EQ(read(results[0]->path), data_);
  EXPECT_EQ(hub_.seen("/c-Q4_K_M.gguf").size(), 1u);
}

TEST_F(ConcurrencyTest, OneCallerCancellingDoesNotStopTheOthers) {
  CancelToken quitter;
  StatusOr<LocalModel> stayed = internal_error("not run");
  StatusOr<LocalModel> quit = internal_error("not run");
  std::promise<void> running;
  std::atomic<bool> once{false};
  std::thread a([&] {
    stayed = ensure_downloaded("org/C", opts_, [&](const Progress& p) {
      if (p.done > 0 && !once.exchange(true)) running.set_value();
    });
  });
  // The second caller joins a transfer already under way.
  ASSERT_EQ(running.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  std::thread b([&] {
    quit = ensure_downloaded(
        "org/C", opts_,
        [&](const Progress& p) {
          if (p.done > 0) quitter.cancel();
        },
        quitter);
  });
  a.join();
  b.join();
  EXPECT_EQ(quit.status().code(), StatusCode::kCancelled);
  ASSERT_TRUE(stayed.ok()) << stayed.status().message();
  EXPECT_EQ(read(stayed->path), data_);
  EXPECT_EQ(hub_.seen("/c-Q4_K_M.gguf").size(), 1u);
}

}  // namespace
}  // namespace hangar::download
