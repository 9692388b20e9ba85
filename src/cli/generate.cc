// `hangar generate`: runs one prompt through the engine and prints the continuation — the
// text, or with --json the prompt and generated ids, the text and optionally the top-K logits
// at every generated position (the first list is the distribution after the whole prompt).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "engine/context.h"
#include "engine/model.h"
#include "engine/sampler.h"

namespace hangar::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  int n_predict = 32;
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int64_t seed = -1;
  int threads = 0;
  int ctx_size = 0;
  bool json = false;
  int logits_top = 0;
};

// The k largest logits of a row, largest first (lowest id first on a tie).
nlohmann::json top_logits(const float* logits, int n_vocab, int k) {
  std::vector<int> ids(n_vocab);
  for (int i = 0; i < n_vocab; ++i) ids[i] = i;
  k = std::min(k, n_vocab);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  nlohmann::json out = nlohmann::json::array();
  for (int i = 0; i < k; ++i) out.push_back({{"id", ids[i]}, {"logit", logits[ids[i]]}});
  return out;
}

int run_generate(const GenerateOptions& o) {
  if (o.n_predict < 0 || o.logits_top < 0) {
    std::fprintf(stderr, "hangar generate: -n and --logits-top must not be negative\n");
    return 2;
  }
  auto model = engine::Model::load(o.model);
  if (!model.ok()) {
    std::fprintf(stderr, "hangar generate: %s\n", model.status().message().c_str());
    return 1;
  }
  const engine::Tokenizer& tok = (*model)->tokenizer();
  const engine::HParams& hp = (*model)->hparams();
  const std::vector<engine::TokenId> prompt = tok.tokenize(o.prompt, /*add_special=*/true, /*parse_special=*/false);
  if (prompt.empty()) {
    std::fprintf(stderr, "hangar generate: the prompt gives no tokens (and the vocabulary adds no BOS)\n");
    return 1;
  }
  const int need = static_cast<int>(prompt.size()) + o.n_predict;
  const int n_ctx = o.ctx_size > 0 ? o.ctx_size : std::min(hp.n_ctx_train, std::max(need, 1));
  if (need > n_ctx) {
    std::fprintf(stderr, "hangar generate: prompt (%zu tokens) + -n %d exceeds the context of %d; use a shorter prompt, a smaller -n or a larger -c\n",
                 prompt.size(), o.n_predict, n_ctx);
    return 1;
  }
  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  auto ctx = engine::Context::create(**model, {.n_ctx = n_ctx, .n_seq_max = 1, .n_threads = threads});
  if (!ctx.ok()) {
    std::fprintf(stderr, "hangar generate: %s\n", ctx.status().message().c_str());
    return 1;
  }
  engine::SamplerParams sp;
  sp.temperature = o.temp;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.min_p = o.min_p;
  sp.repeat_penalty = o.repeat_penalty;
  sp.presence_penalty = o.presence_penalty;
  sp.frequency_penalty = o.frequency_penalty;
  sp.seed = o.seed >= 0 ? static_cast<uint32_t>(o.seed) : std::random_device{}();
  engine::Sampler sampler(sp, hp.n_vocab);
  for (engine::TokenId id : prompt) sampler.accept(id);

  engine::Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i) {
    batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
  }
  std::vector<engine::TokenId> generated;
  std::string text;
  nlohmann::json tops = nlohmann::json::array();
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (int step = 0; step < o.n_predict; ++step) {
    if (Status s = (*ctx)->decode(batch); !s.ok()) {
      std::fprintf(stderr, "hangar generate: %s\n", s.message().c_str());
      return 1;
    }
    const float* logits = (*ctx)->logits(-1);
    if (o.logits_top > 0) tops.push_back(top_logits(logits, hp.n_vocab, o.logits_top));
    const engine::TokenId id = sampler.sample(logits);
    if (tok.is_eog(id)) break;
    sampler.accept(id);
    generated.push_back(id);
    const std::string piece = tok.token_to_piece(id, /*special=*/false);
    text += piece;
    if (!o.json) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    batch.clear();
    batch.add(id, pos++, 0, true);
  }
  if (o.json) {
    nlohmann::json out = {{"prompt_tokens", prompt}, {"tokens", generated}, {"text", text}};
    if (o.logits_top > 0) out["top"] = std::move(tops);
    const std::string s = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", s.c_str());
  } else {
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void register_generate(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand("generate", "Generate text from a prompt with the built-in engine");
  auto o = std::make_shared<GenerateOptions>();
  app->add_option("-m,--model", o->model, "the .gguf model")->required();
  app->add_option("-p,--prompt", o->prompt, "the prompt (tokenized with BOS where the vocabulary adds it)")->required();
  app->add_option("-n,--n-predict", o->n_predict, "tokens to generate at most")->capture_default_str();
  app->add_option("--temp", o->temp, "temperature; 0 = greedy")->capture_default_str();
  app->add_option("--top-k", o->top_k, "top-k; 0 = off")->capture_default_str();
  app->add_option("--top-p", o->top_p, "top-p; 1 = off")->capture_default_str();
  app->add_option("--min-p", o->min_p, "min-p; 0 = off")->capture_default_str();
  app->add_option("--repeat-penalty", o->repeat_penalty, "1 = off")->capture_default_str();
  app->add_option("--presence-penalty", o->presence_penalty, "0 = off")->capture_default_str();
  app->add_option("--frequency-penalty", o->frequency_penalty, "0 = off")->capture_default_str();
  app->add_option("-s,--seed", o->seed, "RNG seed (default: random)");
  app->add_option("-t,--threads", o->threads, "threads (default: all cores)");
  app->add_option("-c,--ctx-size", o->ctx_size, "context size (default: prompt + n)");
  app->add_flag("--json", o->json, "print {prompt_tokens, tokens, text[, top]} as JSON");
  app->add_option("--logits-top", o->logits_top, "with --json: the top-K logits at each generated position");
  commands.push_back({app, [o] { return run_generate(*o); }});
}

}  // namespace hangar::cli
