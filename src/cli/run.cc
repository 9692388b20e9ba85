// `hangar run -m FILE.gguf [-c CTX] [-np N] [-t T] [--host H] [--port P] [-a ALIAS]
// [--api-key K] [--chat-template NAME] [--control-fd FD] [--drain-timeout S] [llama-server
// options]`: one model behind llama-server's OpenAI-compatible API (design §6, §7). The router
// spawns one per model with --control-fd; it also runs alone.
//
// llama-server's worker options (router/arg_table.h) are all accepted, so a llama.cpp command
// line passed through `serve` never stops a worker: those with a meaning for hangar are applied
// (sampling defaults --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n,
// --presence-penalty, --frequency-penalty, --seed, -n; batch sizes -b/-ub), those without one
// on a CPU engine (-ngl, -fa, --jinja, --mlock, ...) are ignored with one log line, and those
// hangar cannot apply (--lora, --rope-*, ...) are an error. main.cc rewrites llama.cpp's
// several-letter single-dash spellings (-np, -ngl, -ub...) to their long forms.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <thread>

#include "cli/command.h"
#include "common/status.h"
#include "download/download.h"
#include "router/arg_table.h"
#include "worker/run_worker.h"

namespace hangar::cli {
namespace {

// "-x,--long,--alias" for a table entry: one-letter aliases take one dash, the rest two (their
// single-dash llama.cpp spellings are rewritten to the long name before parsing).
std::string option_names(const router::ArgSpec& spec) {
  std::string names;
  for (std::string_view a : spec.aliases) {
    if (a.size() == 1) names += "-" + std::string(a) + ",";
  }
  names += "--" + std::string(spec.long_name);
  for (std::string_view a : spec.aliases) {
    if (a.size() > 1) names += ",--" + std::string(a);
  }
  return names;
}

// Sampling and batch options as given on the command line; applied and range-checked by
// apply() (CLI11's own range checks let NaN through).
struct LlamaOptions {
  std::optional<double> temp, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
  std::optional<int64_t> top_k, repeat_last_n, seed, n_predict, batch, ubatch;
  std::vector<std::string> ignored;      // given, and ignored by hangar's engine
  std::vector<std::string> unsupported;  // given, and not supported
};

Status in_range(const char* name, double v, double lo, double hi) {
  if (!std::isfinite(v) || v < lo || v > hi) {
    return invalid_argument_error(
        fmt::format("{} must be between {} and {}, got {}", name, lo, hi, v));
  }
  return ok_status();
}

Status apply(const LlamaOptions& l, worker::WorkerOptions* w) {
  if (!l.unsupported.empty()) {
    std::string names;
    for (const std::string& n : l.unsupported) names += (names.empty() ? "" : ", ") + n;
    return invalid_argument_error("not supported by hangar's engine: " + names);
  }
  worker::SamplingParams& s = w->sampling;
  const auto num = [](const std::optional<double>& v, const char* name, double lo, double hi,
                      float* out) -> Status {
    if (!v) return ok_status();
    HANGAR_RETURN_IF_ERROR(in_range(name, *v, lo, hi));
    *out = static_cast<float>(*v);
    return ok_status();
  };
  const auto integer = [](const std::optional<int64_t>& v, const char* name, int64_t lo, int64_t hi,
                          int32_t* out) -> Status {
    if (!v) return ok_status();
    HANGAR_RETURN_IF_ERROR(
        in_range(name, static_cast<double>(*v), static_cast<double>(lo), static_cast<double>(hi)));
    *out = static_cast<int32_t>(*v);
    return ok_status();
  };
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  HANGAR_RETURN_IF_ERROR(num(l.temp, "--temp", 0.0, 1e6, &s.temperature));
  HANGAR_RETURN_IF_ERROR(num(l.top_p, "--top-p", 0.0, 1.0, &s.top_p));
  HANGAR_RETURN_IF_ERROR(num(l.min_p, "--min-p", 0.0, 1.0, &s.min_p));
  HANGAR_RETURN_IF_ERROR(num(l.repeat_penalty, "--repeat-penalty", 0.0, 1e6, &s.repeat_penalty));
  HANGAR_RETURN_IF_ERROR(
      num(l.presence_penalty, "--presence-penalty", -2.0, 2.0, &s.presence_penalty));
  HANGAR_RETURN_IF_ERROR(
      num(l.frequency_penalty, "--frequency-penalty", -2.0, 2.0, &s.frequency_penalty));
  HANGAR_RETURN_IF_ERROR(integer(l.top_k, "--top-k", 0, kMaxInt, &s.top_k));
  HANGAR_RETURN_IF_ERROR(
      integer(l.repeat_last_n, "--repeat-last-n", -1, kMaxInt, &s.repeat_last_n));
  HANGAR_RETURN_IF_ERROR(integer(l.n_predict, "--n-predict", -1, kMaxInt, &s.max_tokens));
  if (l.seed) {
    // llama.cpp: -1 (or any value past uint32) means a random seed per request.
    HANGAR_RETURN_IF_ERROR(in_range("--seed", static_cast<double>(*l.seed), -1.0, 4294967295.0));
    if (*l.seed >= 0) s.seed = static_cast<uint64_t>(*l.seed);
  }
  int32_t batch = w->n_batch, ubatch = w->n_batch;
  HANGAR_RETURN_IF_ERROR(integer(l.batch, "--batch-size", 1, 65536, &batch));
  HANGAR_RETURN_IF_ERROR(integer(l.ubatch, "--ubatch-size", 1, 65536, &ubatch));
  // hangar computes one physical batch per step: llama.cpp's -ub, bounded by -b.
  w->n_batch = std::min(batch, ubatch);
  return ok_status();
}

struct HubOptions {
  std::string spec;  // -hf owner/repo[:TAG]
  bool offline = false;
  std::string cache_dir;
};

// -m or -hf: with -hf, the model comes from the cache, downloaded first when missing (as
// llama-server -hf). Returns an exit code, 0 when the worker can start.
int resolve_model(const HubOptions& hub, worker::WorkerOptions* w) {
  if (hub.spec.empty()) {
    if (w->model_path.empty()) {
      std::fprintf(stderr, "hangar run: give the model: -m FILE or -hf owner/repo[:TAG]\n");
      return 2;
    }
    return 0;
  }
  if (!w->model_path.empty()) {
    std::fprintf(stderr, "hangar run: -m and -hf both name a model; give one\n");
    return 2;
  }
  download::Options opts;
  opts.offline = hub.offline;
  opts.cache_dir = hub.cache_dir;
  auto last = std::chrono::steady_clock::now();
  auto progress = [&](const download::Progress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds(5) && p.done != p.total) return;
    last = now;
    spdlog::info("run: downloading {}: {} of {} bytes", hub.spec, p.done, p.total);
  };
  auto local = download::ensure_downloaded(hub.spec, opts, progress);
  if (!local.ok()) {
    std::fprintf(stderr, "hangar run: %s\n", local.status().message().c_str());
    return 1;
  }
  w->model_path = local->path;
  if (w->alias.empty()) w->alias = local->id;
  return 0;
}

}  // namespace

void register_run(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand(
      "run", "Serve one GGUF model with the OpenAI-compatible API (hangar's worker)");
  auto o = std::make_shared<worker::RunOptions>();
  auto l = std::make_shared<LlamaOptions>();
  o->worker.n_threads = std::max(1u, std::thread::hardware_concurrency());
  auto hub = std::make_shared<HubOptions>();
  app->add_option("-m,--model", o->worker.model_path, "The GGUF model file");
  app->add_option("--hf-repo", hub->spec,
                  "owner/repo[:TAG] from the Hugging Face hub (also -hf): downloaded into the "
                  "model cache first unless it is there");
  app->add_flag("--offline", hub->offline,
                "never touch the network: -hf only from the cache (also LLAMA_OFFLINE)");
  app->add_option("--cache-dir", hub->cache_dir, "the model cache (default as llama.cpp)");
  app->add_option("-c,--ctx-size", o->worker.n_ctx,
                  "Total context (KV positions) shared by the slots")
      ->capture_default_str();
  app->add_option("--parallel", o->worker.n_parallel, "Slots (also -np)")->capture_default_str();
  app->add_option("-t,--threads", o->worker.n_threads, "Engine threads")->capture_default_str();
  app->add_option("--host", o->host, "Address to bind")->capture_default_str();
  app->add_option("--port", o->port, "Port to bind (0: any free port)")->capture_default_str();
  app->add_option("--listen", o->listen,
                  "unix:PATH: serve on this Unix socket instead of --host/--port (the router "
                  "starts its workers so)");
  app->add_option("-a,--alias", o->worker.alias, "The model's id in the API");
  app->add_option("--api-key", o->worker.api_key, "Require 'Authorization: Bearer KEY'");
  app->add_option("--chat-template", o->worker.chat_template,
                  "A chat template name overriding the model's (chatml, llama3, ...)");
  app->add_option("--control-fd", o->control_fd, "The router's control socket fd");
  app->add_option("--drain-timeout", o->drain_timeout_s,
                  "Seconds in-flight requests get to finish on SIGTERM")
      ->capture_default_str();

  // llama-server's sampling defaults and batch sizes.
  const auto honoured = [&](std::string_view long_name, auto* target, const char* help) {
    const router::ArgSpec* spec = router::find_arg(long_name);
    app->add_option(option_names(*spec), *target, help);
  };
  honoured("temp", &l->temp, "Default temperature of requests that give none");
  honoured("top-k", &l->top_k, "Default top-k (0: off)");
  honoured("top-p", &l->top_p, "Default top-p (1: off)");
  honoured("min-p", &l->min_p, "Default min-p (0: off)");
  honoured("repeat-penalty", &l->repeat_penalty, "Default repeat penalty (1: off)");
  honoured("repeat-last-n", &l->repeat_last_n, "Default repeat window (-1: the context)");
  honoured("presence-penalty", &l->presence_penalty, "Default presence penalty");
  honoured("frequency-penalty", &l->frequency_penalty, "Default frequency penalty");
  honoured("seed", &l->seed, "Default seed (-1: random per request)");
  honoured("n-predict", &l->n_predict, "Default most tokens to generate (-1: no limit)");
  honoured("batch-size", &l->batch, "Most tokens per forward step");
  honoured("ubatch-size", &l->ubatch, "Most tokens per forward step (the smaller of -b and -ub)");

  // Every other worker argument llama-server has: accepted and ignored, or refused.
  for (const router::ArgSpec& spec : router::all_args()) {
    const std::optional<router::WorkerSupport> support = router::worker_support(spec);
    if (!support || *support == router::WorkerSupport::kHonoured) continue;
    const std::string name = "--" + std::string(spec.long_name);
    if (app->get_option_no_throw(name) != nullptr) continue;
    const bool ignored = *support == router::WorkerSupport::kIgnored;
    const char* help = ignored ? "llama-server option; ignored by hangar's engine"
                               : "llama-server option; not supported by hangar's engine";
    auto note = [l, name, ignored](std::size_t) {
      (ignored ? l->ignored : l->unsupported).push_back(name);
    };
    if (spec.kind == router::ArgKind::kFlag) {
      app->add_flag_callback(
          option_names(spec), [note] { note(1); }, help);
      if (spec.negatable) {
        app->add_flag_callback(
            "--no-" + std::string(spec.long_name), [note] { note(1); }, help);
      }
    } else {
      app->add_option_function<std::string>(
          option_names(spec), [note](const std::string&) { note(1); }, help);
    }
  }

  commands.push_back({app, [o, l, hub]() {
                        if (int rc = resolve_model(*hub, &o->worker); rc != 0) return rc;
                        for (const std::string& name : l->ignored) {
                          spdlog::info("{} ignored: it has no effect on hangar's CPU engine", name);
                        }
                        if (Status s = apply(*l, &o->worker); !s.ok()) {
                          std::fprintf(stderr, "hangar run: %s\n", s.message().c_str());
                          return 2;
                        }
                        return worker::run_worker(*o);
                      }});
}

}  // namespace hangar::cli
