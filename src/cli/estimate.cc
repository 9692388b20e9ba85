// `hangar estimate -m FILE.gguf [-c CTX] [-np N] [-t T] [--batch-size B] [--json]`: the memory a
// `hangar run` worker with the same arguments will hold, per device, from the GGUF header only
// (design §5). The defaults are `hangar run`'s, so `hangar estimate -m F` plans what
// `hangar run -m F` allocates.
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "cli/command.h"
#include "estimate/memory_plan.h"
#include "estimate/plan_json.h"
#include "gguf/gguf.h"

namespace hangar::cli {
namespace {

struct EstimateOptions {
  std::string model;
  int ctx_size = 4096;  // hangar run's default -c
  int parallel = 1;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int batch_size = 512;  // the engine's n_batch
  bool json = false;
};

int run_estimate(const EstimateOptions& o) {
  if (o.parallel < 1 || o.ctx_size < 0) {
    std::fprintf(stderr,
                 "hangar estimate: -np must be at least 1 (got %d) and -c at least 0 (got %d)\n",
                 o.parallel, o.ctx_size);
    return 2;
  }
  auto file = gguf::GgufFile::open(o.model);
  if (!file.ok()) {
    std::fprintf(stderr, "hangar estimate: %s\n", file.status().message().c_str());
    return 1;
  }
  estimate::PlanOptions po;
  po.n_batch = o.batch_size;
  po.n_threads = o.threads;
  auto plan = estimate::plan_memory(**file, o.ctx_size, o.parallel, po);
  if (!plan.ok()) {
    std::fprintf(stderr, "hangar estimate: %s\n", plan.status().message().c_str());
    return 1;
  }
  if (o.json) {
    std::printf("%s\n", estimate::memory_plan_json(*plan).dump().c_str());
  } else {
    std::printf("%s (-c %d, -np %d, -t %d, batch %d)\n%s", o.model.c_str(), o.ctx_size, o.parallel,
                o.threads, o.batch_size, estimate::memory_plan_text(*plan).c_str());
  }
  return 0;
}

}  // namespace

void register_estimate(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand(
      "estimate", "Print the memory a `hangar run` worker needs per device (from the header only)");
  auto o = std::make_shared<EstimateOptions>();
  app->add_option("-m,--model", o->model, "The GGUF model file")->required();
  app->add_option("-c,--ctx-size", o->ctx_size,
                  "Total context shared by the slots (0: the model's training context)")
      ->capture_default_str();
  app->add_option("--parallel", o->parallel, "Slots (also -np)")->capture_default_str();
  app->add_option("-t,--threads", o->threads, "Engine threads")->capture_default_str();
  app->add_option("--batch-size", o->batch_size, "Tokens per forward step")->capture_default_str();
  app->add_flag("--json", o->json, "Print {\"devices\":{\"CPU\":{...}}} in bytes");
  commands.push_back({app, [o]() { return run_estimate(*o); }});
}

}  // namespace hangar::cli
