// `hangar serve`: the router (design §1, §3, §6, §7). Flags use llama.cpp's spellings; options
// the router does not know are worker arguments given to every model (`-c 4096 -np 2`), with
// precedence over the preset.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "common/signals.h"
#include "router/router.h"

namespace hangar::cli {
namespace {

struct ServeFlags {
  router::RouterOptions options;
  std::string preload;  // comma-separated
  double queue_timeout_s = 300;
  double load_timeout_s = 300;
  int queue_max = 64;
};

int serve(ServeFlags& f, const std::vector<std::string>& extras) {
  auto worker_args = router::parse_worker_cli_args(extras);
  if (!worker_args.ok()) {
    std::fprintf(stderr, "hangar serve: %s\n", worker_args.status().message().c_str());
    return 2;
  }
  f.options.sources.cli_args = *worker_args;
  if (f.queue_timeout_s < 0 || f.load_timeout_s <= 0 || f.queue_max < 0) {
    std::fprintf(stderr,
                 "hangar serve: --queue-timeout and --queue-max must be >= 0 and --load-timeout "
                 "> 0\n");
    return 2;
  }
  f.options.queue_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.queue_timeout_s * 1000));
  f.options.load_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.load_timeout_s * 1000));
  f.options.queue_max = static_cast<size_t>(f.queue_max);
  std::stringstream ss(f.preload);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) f.options.preload.push_back(item);
  }
  // SIGINT/SIGTERM are taken with sigwait below: block them before any thread starts.
  const sigset_t stop_signals = block_stop_signals();

  auto created = router::Router::create(f.options);
  if (!created.ok()) {
    std::fprintf(stderr, "hangar serve: %s\n", created.status().message().c_str());
    return 1;
  }
  std::unique_ptr<router::Router> r = std::move(created).value();
  auto port = r->start();
  if (!port.ok()) {
    std::fprintf(stderr, "hangar serve: cannot listen on %s:%d: %s\n", f.options.host.c_str(),
                 f.options.port, port.status().message().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("router: signal {}: unloading models and stopping", sig);
  r->shutdown(std::chrono::seconds(10));
  return 0;
}

}  // namespace

void register_serve(CLI::App& root, Commands& commands) {
  CLI::App* app =
      root.add_subcommand("serve", "Serve many models behind one OpenAI-compatible endpoint");
  auto f = std::make_shared<ServeFlags>();
  // Arguments serve does not know are passed to every worker (as llama-server's router does);
  // with fallthrough, CLI11 leaves them on the root app.
  app->allow_extras();
  app->add_option("--host", f->options.host, "address to listen on")->capture_default_str();
  app->add_option("--port", f->options.port, "port to listen on (0: any)")->capture_default_str();
  app->add_option("--models-dir", f->options.sources.models_dir,
                  "folder of .gguf models (one sub-folder level for shards and mmproj)");
  app->add_option("--models-preset", f->options.sources.preset_file,
                  "llama.cpp-style INI file of model presets");
  app->add_option("--models-max", f->options.models_max,
                  "most models running at once (0: no limit)")
      ->capture_default_str();
  app->add_flag("--models-autoload,!--no-models-autoload", f->options.models_autoload,
                "load a model when a request names it (default: on)");
  app->add_option("--api-key", f->options.api_key, "require this key (Bearer) on every route "
                                                   "but /health");
  app->add_option("--queue-timeout", f->queue_timeout_s,
                  "seconds a request waits for its model before 503")
      ->capture_default_str();
  app->add_option("--queue-max", f->queue_max, "requests waiting per model before 503")
      ->capture_default_str();
  app->add_option("--load-timeout", f->load_timeout_s,
                  "seconds a loading worker may go without any output or progress")
      ->capture_default_str();
  app->add_option("--preload", f->preload, "comma-separated models to load at start");
  app->add_option("--backend", f->options.backend,
                  "run this llama-server-compatible command per model instead of `hangar run`: "
                  "a template with {model}, {port} and {args}");
  app->add_option("--threads-http", f->options.http_threads, "HTTP io threads")
      ->capture_default_str();
  // Tests run a fake worker instead of `hangar run`.
  app->add_option("--worker-bin", f->options.worker_bin, "")->group("");
  commands.push_back({app, [&root, f] { return serve(*f, root.remaining(true)); }});
}

}  // namespace hangar::cli
