// WorkerProcess: spawn, control lines, output lines, exit codes, signals, no orphans.
#include "router/worker_process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <condition_variable>
#include <future>
#include <mutex>

namespace hangar::router {
namespace {

using namespace std::chrono_literals;

// Records callbacks and lets the test wait for the exit (hang detector: 20 s).
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> control, log;
  std::optional<WorkerExit> exit;

  WorkerCallbacks callbacks() {
    WorkerCallbacks cb;
    cb.on_control = [this](const std::string& l) {
      std::lock_guard lock(mu);
      control.push_back(l);
      cv.notify_all();
    };
    cb.on_log = [this](const std::string& l) {
      std::lock_guard lock(mu);
      log.push_back(l);
      cv.notify_all();
    };
    cb.on_exit = [this](const WorkerExit& e) {
      std::lock_guard lock(mu);
      exit = e;
      cv.notify_all();
    };
    return cb;
  }
  bool wait_exit() {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 20s, [&] { return exit.has_value(); });
  }
  bool wait_log(const std::string& line) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 20s, [&] {
      return std::find(log.begin(), log.end(), line) != log.end();
    });
  }
};

TEST(WorkerProcessTest, ReadsControlLinesAndOutputAndExitCode) {
  Recorder rec;
  auto w = WorkerProcess::spawn(
      {"/bin/sh", "-c",
       "echo '{\"event\":\"listening\",\"port\":5}' >&3; echo out-line; echo err-line >&2; exit 7"},
      true, "t", rec.callbacks());
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(rec.wait_exit());
  EXPECT_EQ(rec.exit->exit_code, 7);
  EXPECT_EQ(rec.control, std::vector<std::string>{"{\"event\":\"listening\",\"port\":5}"});
  EXPECT_NE(std::find(rec.log.begin(), rec.log.end(), "out-line"), rec.log.end());
  EXPECT_NE(std::find(rec.log.begin(), rec.log.end(), "err-line"), rec.log.end());
  EXPECT_EQ(rec.exit->last_lines.size(), 2u);
}

TEST(WorkerProcessTest, TerminateThenKillIsReportedAsSignal) {
  Recorder rec;
  auto w = WorkerProcess::spawn({"/bin/sh", "-c", "trap '' TERM; echo started; while :; do :; done"},
                                false, "t", rec.callbacks());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(rec.wait_log("started"));
  (*w)->terminate();  // ignored by the script
  (*w)->kill();
  ASSERT_TRUE(rec.wait_exit());
  EXPECT_EQ(rec.exit->exit_code, -SIGKILL);
  EXPECT_NE(rec.exit->how.find("signal 9"), std::string::npos);
}

TEST(WorkerProcessTest, ClosingTheControlSocketIsSeenAsEofByTheWorker) {
  Recorder rec;
  // `cat <&3` ends when the control socket reaches EOF.
  auto w = WorkerProcess::spawn({"/bin/sh", "-c", "echo ready; cat <&3 >/dev/null; exit 4"}, true,
                                "t", rec.callbacks());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(rec.wait_log("ready"));
  (*w)->close_control();
  ASSERT_TRUE(rec.wait_exit());
  EXPECT_EQ(rec.exit->exit_code, 4);
}

TEST(WorkerProcessTest, ChildDiesWhenTheSpawningThreadEnds) {
  // PR_SET_PDEATHSIG: the router's death (here: the spawning thread's) kills its workers.
  Recorder rec;
  std::unique_ptr<WorkerProcess> w;
  std::thread spawner([&] {
    auto r = WorkerProcess::spawn({"/bin/sh", "-c", "echo up; exec sleep 60"}, false, "t",
                                  rec.callbacks());
    ASSERT_TRUE(r.ok());
    w = std::move(r).value();
    ASSERT_TRUE(rec.wait_log("up"));
  });
  spawner.join();
  ASSERT_TRUE(rec.wait_exit());
  EXPECT_EQ(rec.exit->exit_code, -SIGKILL);
}

TEST(WorkerProcessTest, MissingProgramExitsWith127) {
  Recorder rec;
  auto w = WorkerProcess::spawn({"/nonexistent/hangar-worker"}, true, "t", rec.callbacks());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(rec.wait_exit());
  EXPECT_EQ(rec.exit->exit_code, 127);
  ASSERT_FALSE(rec.exit->last_lines.empty());
  EXPECT_NE(rec.exit->last_lines.back().find("exec failed"), std::string::npos);
}

}  // namespace
}  // namespace hangar::router
