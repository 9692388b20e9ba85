// Planned vs measured memory of `hangar run` (design §5; issue 4): the plan from
// `hangar estimate --json` (GGUF header only) against the worker's measured footprint.
//
// What is measured and why: the worker's Pss (/proc/PID/smaps_rollup) once it is ready. The
// worker prefaults its mapped weights and runs one warm-up decode during the load, so by then
// every weight page, the KV cache and the compute buffers are resident — the footprint it keeps
// while serving. Pss rather than RSS: a model file mapped by two workers counts once across them
// (the router sums footprints), and for a file only one process maps Pss equals RSS. The
// criterion is design §5's: within 3 % or 16 MiB of the measurement, whichever is larger,
// checked on every fixture model (tiny: the 16 MiB bound applies) and on a model of >= 500 MB
// made here by `hangar make-model` (the 3 % bound applies).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "e2e/worker_harness.h"

namespace hangar::e2e {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// Pss of a process in bytes, 0 when unreadable.
uint64_t pss_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string key;
  while (in >> key) {
    if (key == "Pss:") {
      uint64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

struct Footprint {
  uint64_t planned = 0;        // `hangar estimate --json` total
  uint64_t props_planned = 0;  // the worker's own plan in /props
  uint64_t measured = 0;       // the worker's Pss after its warm-up, as /props reports it
  uint64_t pss_now = 0;        // the worker's Pss read here from /proc after ready
};

// Plans and measures `model` with -c ctx -np 1 -t 1.
Footprint measure(const std::string& model, int ctx) {
  Footprint f;
  const std::vector<std::string> args = {"-m",  model, "-c", std::to_string(ctx),
                                         "-np", "1",   "-t", "1"};
  std::vector<std::string> est = {testing::hangar_binary(), "estimate"};
  est.insert(est.end(), args.begin(), args.end());
  est.push_back("--json");
  testing::CommandResult e = testing::run_command(est);
  EXPECT_EQ(e.exit_code, 0) << e.err;
  const json plan = json::parse(e.out, nullptr, false);
  EXPECT_TRUE(plan.is_object()) << e.out;
  if (!plan.is_object()) return f;
  const json& cpu = plan["devices"]["CPU"];
  f.planned = cpu["total"].get<uint64_t>();
  EXPECT_EQ(f.planned, cpu["weights"].get<uint64_t>() + cpu["kv_cache"].get<uint64_t>() +
                           cpu["compute"].get<uint64_t>() + cpu["overhead"].get<uint64_t>());

  WorkerProcess w(args);
  const std::string base = w.wait_ready();
  EXPECT_FALSE(base.empty()) << model;
  if (base.empty()) return f;
  f.pss_now = pss_of(w.pid());
  JsonReply props = get_json(base + "/props");
  EXPECT_EQ(props.status, 200) << props.text;
  f.props_planned = props.body["memory"]["plan"]["CPU"]["total"].get<uint64_t>();
  f.measured = props.body["memory"]["measured"]["CPU"].get<uint64_t>();
  EXPECT_EQ(w.stop(), 0);
  return f;
}

// design §5: |planned - measured| <= max(3 % of measured, 16 MiB).
void expect_within_criterion(const std::string& name, const Footprint& f) {
  const double diff = std::abs(static_cast<double>(f.planned) - static_cast<double>(f.measured));
  const double bound = std::max(0.03 * static_cast<double>(f.measured), 16.0 * kMiB);
  std::printf(
      "%-28s planned %8.1f MiB  measured %8.1f MiB (Pss now %8.1f)  diff %+6.1f MiB "
      "(%+5.2f %%)  bound %.1f MiB\n",
      name.c_str(), f.planned / kMiB, f.measured / kMiB, f.pss_now / kMiB,
      (static_cast<double>(f.planned) - static_cast<double>(f.measured)) / kMiB,
      100.0 * (static_cast<double>(f.planned) - static_cast<double>(f.measured)) /
          std::max(1.0, static_cast<double>(f.measured)),
      bound / kMiB);
  EXPECT_EQ(f.props_planned, f.planned) << name << ": the worker and `hangar estimate` disagree";
  EXPECT_GT(f.measured, 0u) << name;
  EXPECT_LE(diff, bound) << name << ": planned " << f.planned << " B, measured " << f.measured
                         << " B";
}

// AddressSanitizer's shadow memory and allocator add about 100 MiB of Pss to every process,
// which the plan rightly does not count: the comparison means something only without it.
#if defined(__SANITIZE_ADDRESS__)
#define HANGAR_SKIP_UNDER_ASAN() \
  GTEST_SKIP() << "the footprint cannot be measured under AddressSanitizer (+~100 MiB Pss)"
#else
#define HANGAR_SKIP_UNDER_ASAN() static_cast<void>(0)
#endif

TEST(WorkerFootprintTest, PlanMatchesMeasuredFootprintForEveryFixtureModel) {
  HANGAR_SKIP_UNDER_ASAN();
  HANGAR_REQUIRE_FIXTURES();
  std::vector<std::filesystem::path> models;
  for (const auto& e : std::filesystem::directory_iterator(fixtures + "/models")) {
    if (e.path().extension() == ".gguf") models.push_back(e.path());
  }
  std::sort(models.begin(), models.end());
  ASSERT_FALSE(models.empty());
  for (const auto& m : models) {
    expect_within_criterion(m.filename().string(), measure(m.string(), 256));
  }
}

TEST(WorkerFootprintTest, PlanMatchesMeasuredFootprintForA500MbModel) {
  HANGAR_SKIP_UNDER_ASAN();
  HANGAR_REQUIRE_FIXTURES();
  const std::string dir = testing::make_temp_dir("hangar-footprint");
  ASSERT_FALSE(dir.empty());
  const std::string model = dir + "/wide.gguf";
  // Few layers but wide, F16, tied embeddings (the output matmul reads all of token_embd), and
  // the llama-spm vocabulary (32000 tokens): 3 x 134 MB of blocks + 131 MB of embeddings.
  testing::CommandResult made = testing::run_command({testing::hangar_binary(),
                                                      "make-model",
                                                      "--arch",
                                                      "llama",
                                                      "--n-embd",
                                                      "2048",
                                                      "--n-layer",
                                                      "3",
                                                      "--n-head",
                                                      "16",
                                                      "--n-head-kv",
                                                      "16",
                                                      "--n-ff",
                                                      "8192",
                                                      "--ctx",
                                                      "512",
                                                      "--type",
                                                      "f16",
                                                      "--tie-embeddings",
                                                      "--vocab-from",
                                                      fixtures + "/models/llama-spm-f16.gguf",
                                                      "--threads",
                                                      "2",
                                                      "-o",
                                                      model});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  struct stat st;
  ASSERT_EQ(stat(model.c_str(), &st), 0);
  EXPECT_GE(st.st_size, 500'000'000) << "the model must be at least 500 MB";
  const Footprint f = measure(model, 256);
  std::filesystem::remove_all(dir);
  expect_within_criterion("wide-f16 (" + std::to_string(st.st_size / 1'000'000) + " MB)", f);
}

}  // namespace
}  // namespace hangar::e2e

namespace hangar::e2e {
namespace {

json estimate_json(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {testing::hangar_binary(), "estimate"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--json");
  testing::CommandResult r = testing::run_command(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out, nullptr, false);
}

TEST(EstimateCommandTest, KvCacheScalesWithTheTotalContextNotTheSlots) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string model = fixtures + "/models/qwen2-f16.gguf";
  const json a = estimate_json({"-m", model, "-c", "256", "-t", "1"});
  const json b = estimate_json({"-m", model, "-c", "512", "-t", "1"});
  const json c = estimate_json({"-m", model, "-c", "512", "-np", "4", "-t", "1"});
  ASSERT_TRUE(a.is_object() && b.is_object() && c.is_object());
  const json& ca = a["devices"]["CPU"];
  const json& cb = b["devices"]["CPU"];
  const json& cc = c["devices"]["CPU"];
  EXPECT_EQ(cb["kv_cache"].get<uint64_t>(), 2 * ca["kv_cache"].get<uint64_t>());
  EXPECT_EQ(cc["kv_cache"], cb["kv_cache"]);  // -c is shared by the -np slots
  EXPECT_EQ(cc["weights"], cb["weights"]);
  EXPECT_GT(cc["compute"].get<uint64_t>(), cb["compute"].get<uint64_t>());  // 4 logits rows
}

TEST(EstimateCommandTest, PrintsTextByDefaultAndNamesBadInput) {
  HANGAR_REQUIRE_FIXTURES();
  testing::CommandResult text = testing::run_command(
      {testing::hangar_binary(), "estimate", "-m", fixtures + "/models/qwen2-f16.gguf"});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  for (const char* part : {"CPU:", "weights", "kv_cache", "compute", "overhead", "total", "MiB"}) {
    EXPECT_NE(text.out.find(part), std::string::npos) << part << " missing from:\n" << text.out;
  }
  testing::CommandResult missing =
      testing::run_command({testing::hangar_binary(), "estimate", "-m", "/nonexistent/x.gguf"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent/x.gguf"), std::string::npos) << missing.err;
  testing::CommandResult no_slots =
      testing::run_command({testing::hangar_binary(), "estimate", "-m",
                            fixtures + "/models/qwen2-f16.gguf", "-np", "0"});
  EXPECT_EQ(no_slots.exit_code, 2);
  EXPECT_NE(no_slots.err.find("-np must be at least 1 (got 0)"), std::string::npos) << no_slots.err;
}

}  // namespace
}  // namespace hangar::e2e
