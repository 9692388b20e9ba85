// `hangar serve`: the router (design §1, §3, §6, §7). Flags use llama.cpp's spellings; options
// the router does not know are worker arguments given to every model (`-c 4096 -np 2`), with
// precedence over the preset.
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "common/signals.h"
#include "download/download.h"
#include "router/arg_table.h"
#include "router/registry.h"
#include "router/router.h"

namespace hangar::cli {
namespace {

struct ServeFlags {
  router::RouterOptions options;
  std::string preload;  // comma-separated
  double queue_timeout_s = 300;
  double load_timeout_s = 300;
  int queue_max = 64;
  int64_t max_body_memory_mib = 256;
  bool dry_run = false;
  bool json = false;
  bool offline = false;
  bool download_only = false;
  std::string cache_dir;
  double download_stall_timeout_s = 60;
  double memory_refresh_s = 0;
  std::string hf_preset;  // -hf owner/repo: a remote preset
};

// A range check for a numeric option that also refuses NaN and infinities (NaN passes every
// `<` test, so CLI::Range alone would accept `--queue-timeout nan`).
CLI::Validator finite_range(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' || !std::isfinite(v) || v < min || v > max) {
          return fmt::format("'{}' is not a number in [{}, {}]", text, min, max);
        }
        return "";
      },
      fmt::format("NUMBER in [{} - {}]", min, max));
}

// Worker options given as HANGAR_<OPTION> in serve's environment (HANGAR_CTX_SIZE=4096): the
// workers no longer inherit HANGAR_* variables, so the router passes these on as arguments,
// before the command line's own worker arguments (which win). serve's own options are skipped:
// CLI11 already read them.
std::vector<std::string> worker_args_from_env(const CLI::App& serve_app) {
  std::vector<std::string> args;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (!entry.starts_with("HANGAR_")) continue;
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key;
    for (char c : entry.substr(7, eq - 7)) {
      key += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    const router::ArgSpec* spec = router::find_arg(key);
    if (spec == nullptr || (spec->kind != router::ArgKind::kValue &&
                            spec->kind != router::ArgKind::kFlag)) {
      continue;
    }
    if (serve_app.get_option_no_throw("--" + key) != nullptr) continue;
    args.push_back("--" + key + "=" + std::string(entry.substr(eq + 1)));
  }
  return args;
}

// `serve --download-only`: fetch every model the presets name (hf-repo / model-url) and every
// --preload model that is not cached, then exit: 0, or 1 naming each failure.
int download_only(const router::RouterOptions& options) {
  auto reg = router::Registry::scan(options.sources);
  if (!reg.ok()) {
    std::fprintf(stderr, "hangar serve: %s\n", reg.status().message().c_str());
    return 1;
  }
  std::vector<router::ModelConfig> wanted;
  for (const router::ModelConfig& m : reg->models()) {
    if (m.path.empty() && (!m.hf_repo.empty() || !m.model_url.empty())) wanted.push_back(m);
  }
  int failures = 0;
  for (const std::string& name : options.preload) {
    if (reg->resolve(name) != nullptr) continue;
    if (download::parse_spec(name).ok()) {  // a repository to fetch: owner/repo[:TAG]
      router::ModelConfig m;
      m.id = name;
      m.hf_repo = name;
      wanted.push_back(m);
      continue;
    }
    std::fprintf(stderr, "hangar serve: --preload names model '%s', which is not known\n",
                 name.c_str());
    ++failures;
  }
  for (const router::ModelConfig& model : wanted) {
    const router::ModelConfig* m = &model;
    const std::string what = m->hf_repo.empty() ? m->model_url : m->hf_repo;
    std::fprintf(stderr, "downloading %s (%s)\n", m->id.c_str(), what.c_str());
    auto last = std::chrono::steady_clock::now();
    auto progress = [&](const download::Progress& p) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::seconds(5) && p.done != p.total) return;
      last = now;
      std::fprintf(stderr, "  %s: %llu of %llu bytes\n", m->id.c_str(),
                   static_cast<unsigned long long>(p.done), static_cast<unsigned long long>(p.total));
    };
    Status result;
    if (!m->hf_repo.empty()) {
      result = download::ensure_downloaded(m->hf_repo, options.sources.download, progress).status();
    } else {
      result = download::ensure_url(m->model_url, options.sources.download, progress).status();
    }
    if (!result.ok()) {
      std::fprintf(stderr, "hangar serve: %s: %s\n", m->id.c_str(), result.message().c_str());
      ++failures;
    }
  }
  std::fprintf(stderr, "%zu models to download, %d failed\n", wanted.size(), failures);
  return failures == 0 ? 0 : 1;
}

int serve(ServeFlags& f, const CLI::App& app, const std::vector<std::string>& cli_extras) {
  std::vector<std::string> extras = worker_args_from_env(app);
  extras.insert(extras.end(), cli_extras.begin(), cli_extras.end());
  auto worker_args = router::parse_worker_cli_args(extras);
  if (!worker_args.ok()) {
    std::fprintf(stderr, "hangar serve: %s\n", worker_args.status().message().c_str());
    return 2;
  }
  f.options.sources.cli_args = *worker_args;
  // hangar's own workers: say once, at start, which llama-server options they ignore, and refuse
  // the ones they cannot honour (rather than every worker failing at load).
  if (f.options.backend.empty()) {
    for (const router::PresetEntry& e : *worker_args) {
      const router::ArgSpec* spec = router::find_arg(e.key);
      if (spec == nullptr) continue;
      const auto support = router::worker_support(*spec);
      if (support == router::WorkerSupport::kIgnored) {
        spdlog::warn("serve: --{} has no meaning for hangar's CPU engine and is ignored", e.key);
      } else if (support == router::WorkerSupport::kUnsupported) {
        std::fprintf(stderr,
                     "hangar serve: --%s is a llama-server option hangar's engine does not "
                     "support; remove it, or serve with --backend llama-server\n",
                     e.key.c_str());
        return 2;
      }
    }
  }
  f.options.max_body_memory = static_cast<size_t>(f.max_body_memory_mib) * 1024 * 1024;
  f.options.queue_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.queue_timeout_s * 1000));
  f.options.load_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.load_timeout_s * 1000));
  f.options.queue_max = static_cast<size_t>(f.queue_max);
  std::stringstream ss(f.preload);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) f.options.preload.push_back(item);
  }
  f.options.memory_refresh =
      std::chrono::milliseconds(static_cast<int64_t>(f.memory_refresh_s * 1000));
  f.options.sources.scan_cache = true;
  f.options.sources.download.offline = f.offline;
  f.options.sources.download.cache_dir = f.cache_dir;
  f.options.sources.download.stall_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(f.download_stall_timeout_s * 1000));
  // A remote preset: `--models-preset owner/repo` (or `-hf owner/repo`) names a hub repository
  // whose root holds preset.ini; that file is fetched into the cache and served from there.
  if (!f.hf_preset.empty()) f.options.sources.preset_file = f.hf_preset;
  if (const std::string& preset = f.options.sources.preset_file;
      !preset.empty() && !std::filesystem::exists(preset) &&
      download::parse_spec(preset).ok() && preset.find(':') == std::string::npos) {
    auto local = download::ensure_repo_file(preset, "preset.ini", f.options.sources.download);
    if (!local.ok()) {
      std::fprintf(stderr, "hangar serve: remote preset %s: %s\n", preset.c_str(),
                   local.status().message().c_str());
      return 1;
    }
    spdlog::info("serve: preset {} from {}", *local, preset);
    f.options.sources.preset_file = *local;
  }
  if (f.download_only) return download_only(f.options);
  if (f.dry_run) {
    bool preloads_fit = true;
    auto report = router::dry_run_report(f.options, f.json, &preloads_fit);
    if (!report.ok()) {
      std::fprintf(stderr, "hangar serve: %s\n", report.status().message().c_str());
      return 1;
    }
    std::printf("%s%s", report->c_str(), f.json ? "\n" : "");
    return preloads_fit ? 0 : 1;
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
                  "llama.cpp-style INI file of model presets, or owner/repo: a hub repository "
                  "whose preset.ini is fetched");
  app->add_option("--hf-repo", f->hf_preset,
                  "owner/repo (also -hf): serve the remote preset in that repository's preset.ini");
  app->add_option("--models-max", f->options.models_max,
                  "most models running at once (0: no limit)")
      ->capture_default_str()
      ->check(finite_range(0, 100000));
  app->add_option("--models-memory-margin", f->options.memory_margin_mib,
                  "MiB kept free on every device (budget = free at start minus this; 0: no "
                  "memory check)")
      ->capture_default_str()
      ->check(finite_range(0, 1 << 30));
  app->add_option("--memory-refresh", f->memory_refresh_s,
                  "re-read free memory every this many seconds (budget = free now + what "
                  "hangar's workers hold - margin; 0: only at start)")
      ->capture_default_str()
      ->check(finite_range(0, 1e6));
  app->add_option("--devices-file", f->options.devices_file,
                  "JSON file replacing the device inventory (what-if planning, tests)");
  app->add_flag("--dry-run", f->dry_run,
                "print each device's budget and every model's estimate and whether it fits, "
                "then exit (1 when a model that loads at start can never fit)");
  app->add_flag("--json", f->json, "with --dry-run: one JSON object");
  app->add_flag("--offline", f->offline,
                "never touch the network: only models already in the cache (also LLAMA_OFFLINE)");
  app->add_option("--cache-dir", f->cache_dir,
                  "the model cache hangar writes (default: LLAMA_CACHE, HF_HUB_CACHE, ... as "
                  "llama.cpp)");
  app->add_option("--download-stall-timeout", f->download_stall_timeout_s,
                  "seconds without a byte before a download is retried from its partial file")
      ->capture_default_str()
      ->check(finite_range(1, 1e6));
  app->add_flag("--download-only", f->download_only,
                "download every model the presets and --preload name, then exit");
  app->add_flag("--models-autoload,!--no-models-autoload", f->options.models_autoload,
                "load a model when a request names it (default: on)");
  app->add_option("--api-key", f->options.api_key, "require this key (Bearer) on every route "
                                                   "but /health and the status page");
  app->add_flag("!--no-ui", f->options.ui,
                "no status page at / and /ui (the page is on by default; it reads the API "
                "with the key it asks for)");
  app->add_option("--queue-timeout", f->queue_timeout_s,
                  "seconds a request waits for its model before 503")
      ->capture_default_str()
      ->check(finite_range(0, 1e6));
  app->add_option("--queue-max", f->queue_max, "requests waiting per model before 503")
      ->capture_default_str()
      ->check(finite_range(0, 1e6));
  app->add_option("--load-timeout", f->load_timeout_s,
                  "seconds a loading worker may go without a control event or health change")
      ->capture_default_str()
      ->check(finite_range(0.001, 1e6));
  app->add_option("--preload", f->preload, "comma-separated models to load at start");
  app->add_option("--backend", f->options.backend,
                  "run this llama-server-compatible command per model instead of `hangar run`: "
                  "a template with {model}, {port} and {args}");
  app->add_option("--threads-http", f->options.http_threads, "HTTP io threads")
      ->capture_default_str()
      ->check(finite_range(1, 256));
  app->add_option("--max-connections", f->options.max_connections,
                  "open client connections at most; more wait in the kernel's backlog "
                  "(0: the soft RLIMIT_NOFILE minus 128)")
      ->capture_default_str()
      ->check(finite_range(0, 1e7));
  app->add_option("--max-body-memory", f->max_body_memory_mib,
                  "MiB of request bodies held at once over all clients; a request whose body "
                  "does not fit gets 503 before it is read")
      ->capture_default_str()
      ->check(finite_range(1, 1 << 20));
  // Tests run a fake worker instead of `hangar run`.
  app->add_option("--worker-bin", f->options.worker_bin, "")->group("");
  commands.push_back({app, [&root, app, f] {
    // llama.cpp's variable for the margin, when neither the flag nor HANGAR_MODELS_MEMORY_MARGIN
    // set it (CLI11 reads one variable per option).
    const char* llama_margin = std::getenv("LLAMA_ARG_MODELS_MEMORY_MARGIN");
    if (app->count("--models-memory-margin") == 0 && llama_margin != nullptr) {
      std::string text = llama_margin;
      if (std::string bad = finite_range(0, 1 << 30)(text); !bad.empty()) {
        std::fprintf(stderr, "hangar serve: LLAMA_ARG_MODELS_MEMORY_MARGIN: %s\n", bad.c_str());
        return 2;
      }
      f->options.memory_margin_mib = static_cast<uint64_t>(std::strtod(text.c_str(), nullptr));
    }
    f->options.worker_log_level = root.get_option("--log-level")->as<std::string>();
    f->options.worker_log_format = root.get_option("--log-format")->as<std::string>();
    return serve(*f, *app, root.remaining(true));
  }});
}

}  // namespace hangar::cli
