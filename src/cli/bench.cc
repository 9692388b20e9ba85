// `hangar bench`: prompt-processing and generation speed of the built-in engine on a model,
// llama-bench style: -p prompt tokens in one batch, then -n single-token steps, repeated -r
// times; prints the median tokens/s of each.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "engine/context.h"
#include "engine/model.h"

namespace hangar::cli {
namespace {

struct BenchOptions {
  std::string model;
  int n_prompt = 128;
  int n_gen = 64;
  int threads = 0;
  int reps = 5;
  bool json = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int run_bench(const BenchOptions& o) {
  if (o.n_prompt < 0 || o.n_gen < 0 || o.reps < 1 || o.n_prompt + o.n_gen < 1) {
    std::fprintf(stderr, "hangar bench: -p and -n must be >= 0 (not both 0) and -r >= 1\n");
    return 2;
  }
  auto model = engine::Model::load(o.model, engine::LoadOptions{.load_tokenizer = false});
  if (!model.ok()) {
    std::fprintf(stderr, "hangar bench: %s\n", model.status().message().c_str());
    return 1;
  }
  const engine::HParams& hp = (*model)->hparams();
  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  const int n_ctx = o.n_prompt + o.n_gen;
  auto ctx = engine::Context::create(
      **model, {.n_ctx = n_ctx, .n_seq_max = 1, .n_batch = std::max(o.n_prompt, 1), .n_threads = threads});
  if (!ctx.ok()) {
    std::fprintf(stderr, "hangar bench: %s\n", ctx.status().message().c_str());
    return 1;
  }
  using Clock = std::chrono::steady_clock;
  // Deterministic token ids spread over the vocabulary.
  auto token_at = [&](int i) { return static_cast<engine::TokenId>((static_cast<int64_t>(i) * 7919 + 13) % hp.n_vocab); };
  std::vector<double> pp_s, tg_s;
  engine::Batch b;
  for (int rep = -1; rep < o.reps; ++rep) {  // rep -1 warms up (page faults, caches)
    (*ctx)->seq_remove(0, 0, -1);
    if (o.n_prompt > 0) {
      b.clear();
      for (int i = 0; i < o.n_prompt; ++i) b.add(token_at(i), i, 0, i + 1 == o.n_prompt);
      const auto t0 = Clock::now();
      if (Status s = (*ctx)->decode(b); !s.ok()) {
        std::fprintf(stderr, "hangar bench: %s\n", s.message().c_str());
        return 1;
      }
      if (rep >= 0) pp_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    if (o.n_gen > 0) {
      const auto t0 = Clock::now();
      for (int j = 0; j < o.n_gen; ++j) {
        b.clear();
        b.add(token_at(o.n_prompt + j), o.n_prompt + j, 0, true);
        if (Status s = (*ctx)->decode(b); !s.ok()) {
          std::fprintf(stderr, "hangar bench: %s\n", s.message().c_str());
          return 1;
        }
      }
      if (rep >= 0) tg_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  const double pp = o.n_prompt > 0 ? o.n_prompt / median(pp_s) : 0.0;
  const double tg = o.n_gen > 0 ? o.n_gen / median(tg_s) : 0.0;
  const double size_mib = static_cast<double>((*model)->file().file_size()) / (1024.0 * 1024.0);
  if (o.json) {
    nlohmann::json out = {{"model", o.model},        {"size_mib", size_mib}, {"threads", threads},
                          {"n_prompt", o.n_prompt},  {"n_gen", o.n_gen},     {"reps", o.reps},
                          {"pp_tokens_per_s", pp},   {"tg_tokens_per_s", tg}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("model %s (%.1f MiB, %s, %d layers, n_embd %d), %d threads, median of %d\n",
                o.model.c_str(), size_mib, hp.arch.c_str(), hp.n_layer, hp.n_embd, threads, o.reps);
    if (o.n_prompt > 0) std::printf("pp%-5d %10.2f tokens/s\n", o.n_prompt, pp);
    if (o.n_gen > 0) std::printf("tg%-5d %10.2f tokens/s\n", o.n_gen, tg);
  }
  return 0;
}

}  // namespace

void register_bench(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand("bench", "Measure the built-in engine's prompt and generation speed");
  auto o = std::make_shared<BenchOptions>();
  app->add_option("-m,--model", o->model, "the .gguf model")->required();
  app->add_option("-p,--n-prompt", o->n_prompt, "prompt tokens (one batch)")->capture_default_str();
  app->add_option("-n,--n-gen", o->n_gen, "generated tokens (one at a time)")->capture_default_str();
  app->add_option("-t,--threads", o->threads, "threads (default: all cores)");
  app->add_option("-r,--repetitions", o->reps, "repetitions; the median is reported")->capture_default_str();
  app->add_flag("--json", o->json, "print the figures as one JSON object");
  commands.push_back({app, [o] { return run_bench(*o); }});
}

}  // namespace hangar::cli
