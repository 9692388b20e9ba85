// engine_bench (issue 14 item 4): the built-in engine's prompt and generation speed on Q4_0, Q8_0
// and Q4_K_M models of the TinyLlama-1.1B shape (made in a temporary folder in this run), against
// baselines measured in the same run:
//   - this machine's read bandwidth with the same thread count, measured right before and after
//     every run: each run's generation is a fraction of the roofline, model bytes x tokens/s /
//     bandwidth around it, and the median of those fractions is reported;
//   - prompt as GFLOP/s (2 x matmul weights x tokens/s; attention not counted);
//   - HANGAR_BENCH_BASELINE=path/to/hangar: that binary's `hangar bench --json` on the same files,
//     alternating with our runs (e.g. a build of an older commit), and the ratios;
//   - HANGAR_LLAMA_BENCH=path/to/llama-bench: llama.cpp's figures on the same files, and ratios.
// A benchmark, not a test: it prints figures and asserts nothing. Medians of -r repetitions.
//
//   engine_bench [-t 2] [-p 128] [-n 64] [-r 3] [--types q4_0,q8_0,q4_k_m] [--small]
//                [--n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N] [--dir DIR]
#include <fmt/format.h>
#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "read_probe.h"
#include "engine/context.h"
#include "engine/cpu_features.h"
#include "engine/model.h"
#include "gguf/model_maker.h"

namespace {

using namespace hangar;
using Clock = std::chrono::steady_clock;
using bench::ReadProbe;

struct Options {
  int threads = 2;
  int n_prompt = 128;
  int n_gen = 64;
  int reps = 3;
  std::vector<std::string> types = {"q4_0", "q8_0", "q4_k_m"};
  int64_t n_embd = 2048, n_layer = 22, n_head = 32, n_head_kv = 4, n_ff = 5632;
  std::string dir;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ---- our engine, in process ---------------------------------------------------------------------

struct Figures {
  double pp = 0.0;  // tokens/s
  double tg = 0.0;
};

std::optional<Figures> run_engine(const engine::Model& model, const Options& o, int reps) {
  const engine::HParams& hp = model.hparams();
  auto ctx = engine::Context::create(model, {.n_ctx = o.n_prompt + o.n_gen, .n_seq_max = 1,
                                             .n_batch = std::max(o.n_prompt, 1), .n_threads = o.threads});
  if (!ctx.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", ctx.status().message().c_str());
    return std::nullopt;
  }
  // The same token ids and steps as `hangar bench`.
  auto token_at = [&](int i) { return static_cast<engine::TokenId>((static_cast<int64_t>(i) * 7919 + 13) % hp.n_vocab); };
  std::vector<double> pp_s, tg_s;
  engine::Batch b;
  for (int rep = -1; rep < reps; ++rep) {  // rep -1 warms up
    (*ctx)->seq_remove(0, 0, -1);
    b.clear();
    for (int i = 0; i < o.n_prompt; ++i) b.add(token_at(i), i, 0, i + 1 == o.n_prompt);
    auto t0 = Clock::now();
    if (!(*ctx)->decode(b).ok()) return std::nullopt;
    if (rep >= 0) pp_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    t0 = Clock::now();
    for (int j = 0; j < o.n_gen; ++j) {
      b.clear();
      b.add(token_at(o.n_prompt + j), o.n_prompt + j, 0, true);
      if (!(*ctx)->decode(b).ok()) return std::nullopt;
    }
    if (rep >= 0) tg_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return Figures{o.n_prompt / median(pp_s), o.n_gen / median(tg_s)};
}

// ---- other programs on the same file ------------------------------------------------------------

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// The first line of a program's output that says something, for a one-line reason.
std::string first_line(const std::string& out) {
  size_t b = out.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "no output";
  return out.substr(b, out.find('\n', b) - b);
}

// The JSON document that starts at the first `open` character of out (discarded when none).
nlohmann::json json_in(const std::string& out, char open) {
  const size_t at = out.find(open);
  if (at == std::string::npos) return nlohmann::json(nlohmann::json::value_t::discarded);
  return nlohmann::json::parse(out.substr(at), nullptr, /*allow_exceptions=*/false);
}

// 32ebcb4's `hangar bench` on the file; the reason on *why when it gives no figures (it refuses
// the K-quant types, which came later).
std::optional<Figures> run_baseline(const std::string& hangar, const std::string& file,
                                    const Options& o, std::string* why) {
  const std::string out =
      run_command(fmt::format("'{}' bench -m '{}' -p {} -n {} -t {} -r 1 --json 2>&1", hangar, file,
                              o.n_prompt, o.n_gen, o.threads));
  const nlohmann::json j = json_in(out, '{');
  if (j.is_object() && j.contains("pp_tokens_per_s") && j["pp_tokens_per_s"].is_number() &&
      j.contains("tg_tokens_per_s") && j["tg_tokens_per_s"].is_number()) {
    return Figures{j["pp_tokens_per_s"].get<double>(), j["tg_tokens_per_s"].get<double>()};
  }
  *why = first_line(out);
  return std::nullopt;
}

std::optional<Figures> run_llama_bench(const std::string& bin, const std::string& file, const Options& o) {
  const std::string out =
      run_command(fmt::format("'{}' -m '{}' -p {} -n {} -t {} -r {} -o json 2>&1", bin, file,
                              o.n_prompt, o.n_gen, o.threads, o.reps));
  const nlohmann::json rows = json_in(out, '[');
  if (!rows.is_array()) {
    std::fprintf(stderr, "engine_bench: llama-bench gave no figures: %s\n",
                 first_line(out).c_str());
    return std::nullopt;
  }
  Figures f;
  for (const auto& row : rows) {
    if (!row.is_object() || !row.contains("avg_ts") || !row["avg_ts"].is_number()) continue;
    const double ts = row["avg_ts"].get<double>();
    const auto count = [&row](const char* key) {
      const auto it = row.find(key);
      return it != row.end() && it->is_number() ? it->get<double>() : 0.0;
    };
    if (count("n_prompt") > 0) f.pp = ts;
    if (count("n_gen") > 0) f.tg = ts;
  }
  return f;
}

// 2 x the weights every token multiplies (every layer matrix and the output; not token_embd).
double flops_per_token(const engine::Model& m) {
  const engine::ModelWeights& w = m.weights();
  double params = static_cast<double>(w.output.n_in) * static_cast<double>(w.output.n_out);
  for (const auto& l : w.layers) {
    for (const engine::Weight* x : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      params += static_cast<double>(x->n_in) * static_cast<double>(x->n_out);
    }
  }
  return 2.0 * params;
}

// The 1-minute load average: figures taken while other work shares the cores are not comparable.
double load_average() {
  double load[1] = {0.0};
  return getloadavg(load, 1) == 1 ? load[0] : -1.0;
}

int parse_args(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "-t") o->threads = std::atoi(next());
    else if (a == "-p") o->n_prompt = std::atoi(next());
    else if (a == "-n") o->n_gen = std::atoi(next());
    else if (a == "-r") o->reps = std::atoi(next());
    else if (a == "--n-embd") o->n_embd = std::atoll(next());
    else if (a == "--n-layer") o->n_layer = std::atoll(next());
    else if (a == "--n-head") o->n_head = std::atoll(next());
    else if (a == "--n-head-kv") o->n_head_kv = std::atoll(next());
    else if (a == "--n-ff") o->n_ff = std::atoll(next());
    else if (a == "--dir") o->dir = next();
    else if (a == "--small") {  // a quick run: 4 layers of the same width
      o->n_layer = 4;
    } else if (a == "--types") {
      o->types.clear();
      std::string s = next();
      for (size_t p = 0; p <= s.size();) {
        const size_t q = std::min(s.find(',', p), s.size());
        if (q > p) o->types.push_back(s.substr(p, q - p));
        p = q + 1;
      }
    } else {
      std::fprintf(stderr, "usage: engine_bench [-t N] [-p N] [-n N] [-r N] [--types q4_0,q8_0,q4_k_m] [--small]\n"
                           "  [--n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N] [--dir DIR]\n");
      return 2;
    }
  }
  if (o->threads < 1 || o->n_prompt < 1 || o->n_gen < 1 || o->reps < 1) {
    std::fprintf(stderr, "engine_bench: -t, -p, -n and -r must be >= 1\n");
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int rc = parse_args(argc, argv, &o)) return rc;
  bool own_dir = false;
  if (o.dir.empty()) {
    char tmpl[] = "/tmp/engine_bench.XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::perror("engine_bench: mkdtemp");
      return 1;
    }
    o.dir = tmpl;
    own_dir = true;
  }
  const char* baseline = std::getenv("HANGAR_BENCH_BASELINE");
  const char* llama = std::getenv("HANGAR_LLAMA_BENCH");
  const std::string vocab = std::string(HANGAR_FIXTURES_DIR) + "/vocab/ggml-vocab-llama-spm.gguf";

  std::printf("engine_bench: n_embd %lld, %lld layers, %lld heads (%lld KV), n_ff %lld; -p %d -n %d -t %d, median of %d; kernels: %s\n",
              static_cast<long long>(o.n_embd), static_cast<long long>(o.n_layer), static_cast<long long>(o.n_head),
              static_cast<long long>(o.n_head_kv), static_cast<long long>(o.n_ff), o.n_prompt, o.n_gen, o.threads,
              o.reps, engine::cpu_isa_name());
  ReadProbe probe(o.threads);
  const double bw = probe.measure();
  std::printf("read bandwidth (%d threads): %.1f GB/s (plain loads %.1f, with prefetches %.1f); load average %.2f\n",
              o.threads, bw, probe.plain(), probe.prefetched(), load_average());

  int rc = 0;
  for (const std::string& type : o.types) {
    gguf::ModelSpec spec;
    spec.name = "bench-" + type;
    spec.n_embd = o.n_embd;
    spec.n_layer = o.n_layer;
    spec.n_head = o.n_head;
    spec.n_head_kv = o.n_head_kv;
    spec.n_ff = o.n_ff;
    spec.n_ctx = 2048;
    if (std::filesystem::exists(vocab)) spec.vocab_from = vocab;
    if (!gguf::set_model_type(type, &spec)) {
      std::fprintf(stderr, "engine_bench: unknown type '%s'\n", type.c_str());
      return 2;
    }
    const std::string file = o.dir + "/bench-" + type + ".gguf";
    if (!std::filesystem::exists(file)) {
      if (Status s = gguf::write_model(spec, file); !s.ok()) {
        std::fprintf(stderr, "engine_bench: %s\n", s.message().c_str());
        return 1;
      }
    }
    auto model = engine::Model::load(file, engine::LoadOptions{.load_tokenizer = false});
    if (!model.ok()) {
      std::fprintf(stderr, "engine_bench: %s\n", model.status().message().c_str());
      return 1;
    }
    const double bytes = static_cast<double>((*model)->file().file_size());
    // Alternating: one repetition of ours, one of the baseline, reps times. Each of ours is
    // its own roofline ratio, against the bandwidth measured right before and after it.
    std::vector<double> pp, tg, roof, bws, base_pp, base_tg;
    std::string baseline_why;  // set when the baseline cannot run this file
    double bw_before = probe.measure();
    for (int rep = 0; rep < o.reps; ++rep) {
      auto f = run_engine(**model, o, 1);
      if (!f) return 1;
      const double bw_after = probe.measure();
      const double bw_run = 0.5 * (bw_before + bw_after);
      pp.push_back(f->pp);
      tg.push_back(f->tg);
      bws.push_back(bw_run);
      roof.push_back(100.0 * bytes * f->tg / (bw_run * 1e9));
      if (baseline && baseline_why.empty()) {
        if (auto g = run_baseline(baseline, file, o, &baseline_why)) {
          base_pp.push_back(g->pp);
          base_tg.push_back(g->tg);
        }
        bw_before = probe.measure();
      } else {
        bw_before = bw_after;
      }
    }
    const Figures ours{median(pp), median(tg)};
    std::printf("\n%s (%.1f MiB; load average after the runs %.2f)\n", type.c_str(), bytes / (1024.0 * 1024.0),
                load_average());
    std::printf("  prompt     pp%-4d %8.2f tok/s   %6.1f GFLOP/s   (runs:", o.n_prompt, ours.pp,
                ours.pp * flops_per_token(**model) / 1e9);
    for (double v : pp) std::printf(" %.1f", v);
    std::printf(")\n  generation tg%-4d %8.2f tok/s   %5.1f %% of the roofline, median of the runs' ratios (%.1f GB/s of weights)\n",
                o.n_gen, ours.tg, median(roof), bytes * ours.tg / 1e9);
    std::printf("    runs: tok/s");
    for (double v : tg) std::printf(" %.1f", v);
    std::printf("; read bandwidth around each run, GB/s");
    for (double v : bws) std::printf(" %.1f", v);
    std::printf("; %% of the roofline");
    for (double v : roof) std::printf(" %.1f", v);
    std::printf("\n");
    if (!base_pp.empty()) {
      const Figures b{median(base_pp), median(base_tg)};
      std::printf("  baseline %s: pp %.2f tok/s, tg %.2f tok/s -> ours / baseline: prompt %.2fx, generation %.2fx\n",
                  baseline, b.pp, b.tg, ours.pp / b.pp, ours.tg / b.tg);
    } else if (!baseline_why.empty()) {
      std::printf("  baseline %s gives no figures for this file: %s\n", baseline,
                  baseline_why.c_str());
    }
    if (llama) {
      if (auto l = run_llama_bench(llama, file, o)) {
        std::printf("  llama-bench: pp %.2f tok/s, tg %.2f tok/s -> ours / llama.cpp: prompt %.2fx, generation %.2fx\n",
                    l->pp, l->tg, ours.pp / l->pp, ours.tg / l->tg);
      }
    }
    std::fflush(stdout);
  }
  if (own_dir) std::filesystem::remove_all(o.dir);
  return rc;
}
