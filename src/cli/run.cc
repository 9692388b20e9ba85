// `hangar run -m FILE.gguf [-c CTX] [-np N] [-t T] [--host H] [--port P] [-a ALIAS]
// [--api-key K] [-ngl N] [--chat-template NAME] [--control-fd FD] [--drain-timeout S]`:
// one model behind llama-server's OpenAI-compatible API (design §6, §7). The router spawns one
// per model with --control-fd; it also runs alone. llama.cpp's spellings are accepted, including
// `-np` and `-ngl` (main.cc rewrites them to their long forms).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>
#include <thread>

#include "cli/command.h"
#include "common/status.h"
#include "worker/run_worker.h"

namespace hangar::cli {
void register_run(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand(
      "run", "Serve one GGUF model with the OpenAI-compatible API (hangar's worker)");
  auto o = std::make_shared<worker::RunOptions>();
  auto ngl = std::make_shared<int>(-1);
  o->worker.n_threads = std::max(1u, std::thread::hardware_concurrency());
  app->add_option("-m,--model", o->worker.model_path, "The GGUF model file")->required();
  app->add_option("-c,--ctx-size", o->worker.n_ctx,
                  "Total context (KV positions) shared by the slots")
      ->capture_default_str();
  app->add_option("--parallel", o->worker.n_parallel, "Slots (also -np)")->capture_default_str();
  app->add_option("-t,--threads", o->worker.n_threads, "Engine threads")->capture_default_str();
  app->add_option("--host", o->host, "Address to bind")->capture_default_str();
  app->add_option("--port", o->port, "Port to bind (0: any free port)")->capture_default_str();
  app->add_option("-a,--alias", o->worker.alias, "The model's id in the API");
  app->add_option("--api-key", o->worker.api_key, "Require 'Authorization: Bearer KEY'");
  app->add_option("--n-gpu-layers", *ngl,
                  "Accepted for llama.cpp compatibility; ignored (also -ngl)");
  app->add_flag("--cont-batching")->description(
      "Accepted for llama.cpp compatibility; batching is always on (also -cb)");
  app->add_option("--chat-template", o->worker.chat_template,
                  "A chat template name overriding the model's (chatml, llama3, ...)");
  app->add_option("--control-fd", o->control_fd, "The router's control socket fd");
  app->add_option("--drain-timeout", o->drain_timeout_s,
                  "Seconds in-flight requests get to finish on SIGTERM")
      ->capture_default_str();
  commands.push_back({app, [o, ngl]() {
                        if (*ngl >= 0) {
                          spdlog::info("-ngl {} ignored: hangar's engine runs on the CPU", *ngl);
                        }
                        return worker::run_worker(*o);
                      }});
}

}  // namespace hangar::cli
