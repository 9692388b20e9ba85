// `hangar pull owner/repo[:TAG]`: downloads a model from the hub into the shared cache (as
// llama.cpp lays it out) and prints the model file's path on stdout. On a terminal a progress
// bar on stderr (file, %, bytes, speed, ETA); otherwise plain lines, one every few seconds.
// Exit codes: 0 done, 1 the download failed (the message says why and what to do), 2 usage.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "download/download.h"

namespace hangar::cli {
namespace {

struct PullFlags {
  std::string spec;
  std::string cache_dir;
  std::string hf_token;
  bool offline = false;
};

std::string bytes_text(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string eta_text(double seconds) {
  if (seconds < 0 || seconds > 99 * 3600) return "--:--";
  int s = static_cast<int>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%02d:%02d", s / 60, s % 60);
  }
  return buf;
}

// Renders progress: a redrawn bar on a TTY, a line every 5 s (and at the end) otherwise.
class ProgressView {
 public:
  explicit ProgressView(bool tty) : tty_(tty), start_(Clock::now()), last_(start_ - kLinePeriod) {}

  void update(const download::Progress& p) {
    const auto now = Clock::now();
    if (first_ && p.done == p.total) {  // nothing to download
      first_ = false;
      return;
    }
    if (first_) {
      first_ = false;
      base_done_ = p.done;
    }
    const bool finished = p.total > 0 && p.done == p.total;
    if (finished && printed_final_) return;
    printed_final_ = finished;
    if (!tty_ && !finished && now - last_ < kLinePeriod) return;
    if (tty_ && !finished && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    // The file being fetched: the first one not yet complete.
    std::string file = p.files.empty() ? "" : p.files.back().path;
    for (const auto& f : p.files) {
      if (f.done < f.total) {
        file = f.path;
        break;
      }
    }
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double speed = secs > 0 ? static_cast<double>(p.done - base_done_) / secs : 0;
    const double pct =
        p.total ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100.0;
    const double eta = speed > 0 ? static_cast<double>(p.total - p.done) / speed : -1;
    std::string line =
        file + (p.files.size() > 1 ? " (+" + std::to_string(p.files.size() - 1) + " more)" : "");
    char stats[160];
    std::snprintf(stats, sizeof stats, "%5.1f%% %s / %s  %s/s  ETA %s", pct,
                  bytes_text(static_cast<double>(p.done)).c_str(),
                  bytes_text(static_cast<double>(p.total)).c_str(), bytes_text(speed).c_str(),
                  eta_text(eta).c_str());
    if (tty_) {
      constexpr int kWidth = 30;
      int filled = static_cast<int>(pct / 100.0 * kWidth);
      std::string bar(static_cast<size_t>(filled), '#');
      bar += std::string(static_cast<size_t>(kWidth - filled), '-');
      std::fprintf(stderr, "\r\033[K%s [%s] %s", line.c_str(), bar.c_str(), stats);
      if (finished) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "pull: %s %s\n", line.c_str(), stats);
    }
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kLinePeriod{5};
  const bool tty_;
  const Clock::time_point start_;
  Clock::time_point last_;
  bool first_ = true;
  bool printed_final_ = false;  // the 100% line went out (it is printed once)
  uint64_t base_done_ = 0;  // bytes already there (resumed) do not count towards the speed
};

int pull(const PullFlags& f) {
  download::Options o;
  o.cache_dir = f.cache_dir;
  o.token = f.hf_token;
  o.offline = f.offline;
  ProgressView view(::isatty(STDERR_FILENO) == 1);
  auto m =
      download::ensure_downloaded(f.spec, o, [&](const download::Progress& p) { view.update(p); });
  if (!m.ok()) {
    std::fprintf(stderr, "hangar pull: %s\n", m.status().message().c_str());
    return m.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::fprintf(stderr, "pull: %s is in %s (%s)\n", m->id.c_str(), m->root.c_str(),
               bytes_text(static_cast<double>(m->bytes)).c_str());
  std::printf("%s\n", m->path.c_str());
  return 0;
}

}  // namespace

void register_pull(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand(
      "pull", "Download a model from a Hugging Face hub into the cache shared with llama.cpp");
  auto f = std::make_shared<PullFlags>();
  app->add_option("model", f->spec, "owner/repo[:TAG] (TAG: Q4_K_M by default, else Q8_0)")
      ->required();
  app->add_option("--cache-dir", f->cache_dir,
                  "cache root (default: LLAMA_CACHE, HF_HUB_CACHE, ..., ~/.cache/huggingface/hub)");
  app->add_option("--hf-token", f->hf_token, "hub token (default: HF_TOKEN)")->envname("HF_TOKEN");
  app->add_flag("--offline", f->offline, "never touch the network; fail naming what is missing");
  commands.push_back({app, [f] { return pull(*f); }});
}

}  // namespace hangar::cli
