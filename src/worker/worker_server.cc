#include "worker/worker_server.h"

#include "common/version.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <mutex>
#include <sstream>

#include "estimate/memory_plan.h"
#include "estimate/plan_json.h"
#include "http/message.h"
#include "http/responder.h"
#include "worker/api_error.h"
#include "worker/openai_request.h"
#include "worker/openai_response.h"
#include "worker/text_holdback.h"

namespace hangar::worker {
namespace {

using nlohmann::json;

enum Kind { kChat = 0, kCompletions = 1, kNative = 2 };

http::Response json_response(int status, const json& body) {
  return http::Response::json(status, dump_json(body));
}

http::Response error_response(const Status& s) {
  int code = 500;
  json body = error_body(s, &code);
  return json_response(code, body);
}

http::Response error_response(int code, std::string_view message) {
  return json_response(code, error_body(code, message));
}

}  // namespace

// The state of one generation request, shared by the engine's callbacks (engine thread).
struct WorkerServer::Generation {
  std::shared_ptr<http::Responder> res;
  Kind kind = kChat;
  bool stream = false;
  ResponseMeta meta;
  std::unique_ptr<ChatStream> chat_stream;
  std::unique_ptr<CompletionStream> completion_stream;
  std::string model;

  // Several prompts (non-streamed /v1/completions) finish in any order.
  std::mutex mu;
  std::vector<TextChoice> choices;  // guarded by mu
  std::vector<TextHoldback> holdbacks;
  bool logprobs = false;
  // Engine thread only: per choice, every token's logprob (non-streamed answers), and for a
  // stream the tokens whose text has not gone out in a frame yet.
  std::vector<std::vector<TokenLogprob>> token_logprobs;
  std::vector<TokenLogprob> unsent_logprobs;
  size_t sent_text_bytes = 0;  // a stream's text so far, for the legacy shape's text_offset

  // The logprobs of `tokens` in this request's shape (null when not asked for): OpenAI chat's
  // {"content":[…]}, legacy completions' {"tokens",…,"text_offset"}, or llama-server's
  // completion_probabilities list.
  nlohmann::json logprobs_json(const std::vector<TokenLogprob>& tokens,
                               size_t first_offset = 0) const {
    if (!logprobs) return nullptr;
    switch (kind) {
      case kChat:
        return chat_logprobs_json(tokens);
      case kCompletions:
        return completion_logprobs_json(tokens, first_offset);
      default:
        return chat_logprobs_json(tokens)["content"];
    }
  }
  // The logprobs of the tokens not sent yet, for the next frame of a stream (then forgotten).
  nlohmann::json take_unsent_logprobs() {
    if (!logprobs || unsent_logprobs.empty()) return nullptr;
    nlohmann::json j = logprobs_json(unsent_logprobs, sent_text_bytes);
    for (const TokenLogprob& t : unsent_logprobs) sent_text_bytes += t.token.size();
    unsent_logprobs.clear();
    return j;
  }
  Usage usage;         // guarded by mu
  size_t pending = 0;  // guarded by mu
  Status error;        // guarded by mu: the first failure
  // Weak: the engine owns running tasks, and each task's on_done owns this Generation.
  std::vector<std::weak_ptr<Task>> tasks;

  std::string stream_delta(std::string_view text) {
    if (text.empty()) return "";
    switch (kind) {
      case kChat:
        return chat_stream->delta(text, take_unsent_logprobs());
      case kCompletions:
        return completion_stream->delta(text, 0, take_unsent_logprobs());
      default:
        return native_stream_delta(text, take_unsent_logprobs());
    }
  }
};

namespace {
// Request preparation threads, and requests that may wait for one before the worker answers 503.
constexpr int kPrepareThreads = 2;
constexpr size_t kMaxPreparing = 256;
// A token covers at most this many input bytes even where the vocabulary's tokens are short
// (an unknown 4-byte character becomes one UNK token); doubled for margin.
constexpr size_t kMinBytesPerToken = 8;
}  // namespace

WorkerServer::WorkerServer(WorkerOptions options)
    : options_(std::move(options)),
      created_(unix_seconds_now()),
      pool_(std::make_unique<RequestPool>(kPrepareThreads, kMaxPreparing)) {}

WorkerServer::~WorkerServer() { shutdown_engine(); }

std::string WorkerServer::model_id() const {
  if (!options_.alias.empty()) return options_.alias;
  return std::filesystem::path(options_.model_path).filename().string();
}

Status WorkerServer::load(const std::function<void(float)>& progress) {
  before_load_ = read_process_memory();
  progress(0.0f);
  HANGAR_ASSIGN_OR_RETURN(model_, engine::Model::load(options_.model_path));
  progress(0.5f);
  if (!model_->has_tokenizer()) {
    return invalid_argument_error("model '" + options_.model_path + "' has no tokenizer");
  }
  if (options_.n_parallel < 1) {
    return invalid_argument_error("-np must be at least 1, got " +
                                  std::to_string(options_.n_parallel));
  }
  if (options_.n_ctx < options_.n_parallel) {
    return invalid_argument_error("-c " + std::to_string(options_.n_ctx) + " is smaller than -np " +
                                  std::to_string(options_.n_parallel));
  }
  engine::ContextParams cp;
  cp.n_ctx = options_.n_ctx;
  cp.n_seq_max = options_.n_parallel;
  cp.n_threads = std::max(1, options_.n_threads);
  cp.n_batch = options_.n_batch;
  HANGAR_ASSIGN_OR_RETURN(context_, engine::Context::create(*model_, cp));
  estimate::PlanOptions plan_options;
  plan_options.n_batch = cp.n_batch;
  plan_options.n_threads = cp.n_threads;
  HANGAR_ASSIGN_OR_RETURN(
      const estimate::MemoryPlan plan,
      estimate::plan_memory(model_->file(), options_.n_ctx, options_.n_parallel, plan_options));
  plan_json_ = estimate::memory_plan_json(plan)["devices"];
  progress(0.6f);
  const uint64_t touched = touch_mapped_weights(model_->file());
  progress(0.8f);
  HANGAR_RETURN_IF_ERROR(warm_up());
  after_load_ = read_process_memory();
  spdlog::info(
      "worker: {} MiB of weights prefaulted; planned {} MiB, measured Pss {} MiB (RSS {} "
      "MiB, +{} MiB over the load)",
      touched >> 20, plan.total() >> 20, after_load_.pss >> 20, after_load_.rss >> 20,
      (after_load_.rss - std::min(after_load_.rss, before_load_.rss)) >> 20);
  progress(0.9f);

  if (!options_.chat_template.empty()) {
    HANGAR_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::from_name(options_.chat_template));
    template_ = std::make_unique<ChatTemplate>(std::move(t));
  } else {
    const std::string* text = model_->file().get_string("tokenizer.chat_template");
    template_ = std::make_unique<ChatTemplate>(
        ChatTemplate::from_template_text(text != nullptr ? *text : std::string()));
  }
  spdlog::info("worker: chat template '{}'{}", template_->name(),
               template_->is_fallback() ? " (fallback)" : "");
  const engine::Tokenizer& tok = model_->tokenizer();
  for (engine::TokenId id = 0; id < tok.n_vocab(); ++id) {
    max_token_bytes_ = std::max(max_token_bytes_, tok.token_text(id).size());
  }
  engine_ = std::make_unique<SlotEngine>(*model_, *context_, options_.n_parallel);
  ready_.store(true);
  progress(1.0f);
  return ok_status();
}

Status WorkerServer::warm_up() {
  // One token through every layer and the output matrix touches every weight the decode loop
  // reads, and the first-use allocations (thread stacks, logits rows) happen now.
  const engine::Tokenizer& tok = model_->tokenizer();
  engine::Batch batch;
  batch.add(tok.bos() >= 0 ? tok.bos() : 0, 0, 0, true);
  Status s = context_->decode(batch);
  context_->seq_remove(0, 0, -1);
  if (!s.ok()) return internal_error("warm-up decode failed: " + s.message());
  return ok_status();
}

void WorkerServer::shutdown_engine() {
  pool_->shutdown();  // first: its jobs submit to the engine
  if (engine_) engine_->shutdown();
}

Status WorkerServer::check_prompt_bytes(std::string_view text, std::string_view what) const {
  const size_t n_ctx_slot = static_cast<size_t>(engine_->n_ctx_slot());
  const size_t per_token = std::max(max_token_bytes_, kMinBytesPerToken);
  if (text.size() / per_token <= n_ctx_slot) return ok_status();
  return invalid_argument_error(
      std::string(what) + " has " + std::to_string(text.size()) +
      " bytes: more than a slot's context of " + std::to_string(n_ctx_slot) +
      " tokens can hold (tokens here are at most " + std::to_string(per_token) +
      " bytes; -c " + std::to_string(options_.n_ctx) + " is shared by " +
      std::to_string(options_.n_parallel) + " slots)");
}

int WorkerServer::busy() const { return engine_ ? engine_->busy() : 0; }

json WorkerServer::model_info() const {
  return {{"id", model_id()},
          {"path", options_.model_path},
          {"n_ctx", options_.n_ctx},
          {"n_parallel", options_.n_parallel},
          {"chat_template", template_ ? template_->name() : ""},
          {"chat_template_fallback", template_ ? template_->is_fallback() : false}};
}

json WorkerServer::memory_info() {
  // Pss: the worker's own pages plus its share of the mapped model file (design §5).
  return {{"CPU", read_process_memory().pss}};
}

ChatTemplateContext WorkerServer::template_context() const {
  ChatTemplateContext ctx;
  const engine::Tokenizer& tok = model_->tokenizer();
  if (tok.bos() >= 0) ctx.bos_token = tok.token_text(tok.bos());
  if (tok.eos() >= 0) ctx.eos_token = tok.token_text(tok.eos());
  ctx.add_bos = tok.add_bos();
  ctx.date = local_date_now();
  return ctx;
}

void WorkerServer::register_routes(http::Server& server) {
  // Wraps a handler with the API key check and the not-ready answer.
  auto guarded = [this](auto fn) {
    return [this, fn](http::Request req, std::shared_ptr<http::Responder> res) {
      if (!options_.api_key.empty()) {
        std::string auth = req.headers.get_or("Authorization", "");
        if (auth != "Bearer " + options_.api_key) {
          res->send(error_response(401, "invalid or missing API key"));
          return;
        }
      }
      if (!ready_.load()) {
        http::Response r = error_response(503, "the model is loading");
        r.headers.set("Retry-After", "1");
        res->send(std::move(r));
        return;
      }
      fn(std::move(req), std::move(res));
    };
  };

  // Handlers that read a body run on the request pool (see worker_server.h); a full pool is a
  // 503 with Retry-After, as a full engine queue is.
  auto prepared = [this, guarded](auto fn) {
    return guarded([this, fn](http::Request req, std::shared_ptr<http::Responder> res) {
      auto shared_req = std::make_shared<http::Request>(std::move(req));
      const bool queued = pool_->post(
          [fn, shared_req, res] { fn(std::move(*shared_req), res); },
          [res] { res->send(error_response(503, "the worker is shutting down")); });
      if (!queued) {
        http::Response r = error_response(503, "the worker is busy preparing other requests");
        r.headers.set("Retry-After", "1");
        res->send(std::move(r));
      }
    });
  };

  server.route("GET", "/health", [this](http::Request, std::shared_ptr<http::Responder> res) {
    if (ready_.load()) {
      res->send(json_response(200, {{"status", "ok"}}));
    } else {
      http::Response r = json_response(503, {{"status", "loading"}});
      r.headers.set("Retry-After", "1");
      res->send(std::move(r));
    }
  });

  auto models = guarded([this](http::Request, std::shared_ptr<http::Responder> res) {
    res->send(json_response(200, models_list_json({{model_id(), created_, "hangar"}})));
  });
  server.route("GET", "/v1/models", models);
  server.route("GET", "/models", models);

  server.route(
      "GET", "/props", guarded([this](http::Request, std::shared_ptr<http::Responder> res) {
        json props = {
            {"model_path", options_.model_path},
            {"model_alias", model_id()},
            {"total_slots", options_.n_parallel},
            {"n_ctx", options_.n_ctx},
            {"n_ctx_slot", engine_->n_ctx_slot()},
            {"chat_template", template_->name()},
            {"chat_template_fallback", template_->is_fallback()},
            {"build_info", kBuildInfo},
            {"default_generation_settings",
             {{"n_ctx", engine_->n_ctx_slot()},
              {"params",
               {{"temperature", options_.sampling.temperature},
                {"top_k", options_.sampling.top_k},
                {"top_p", options_.sampling.top_p},
                {"min_p", options_.sampling.min_p},
                {"repeat_penalty", options_.sampling.repeat_penalty},
                {"n_predict", options_.sampling.max_tokens},
                {"seed", options_.sampling.seed ? static_cast<int64_t>(*options_.sampling.seed)
                                                : int64_t{-1}}}}}},
            {"modalities", {{"vision", false}, {"audio", false}}},
            // Bytes. measured: Pss after the load's warm-up decode (what the router counts);
            // rss_growth: VmRSS after minus before the load.
            {"memory",
             {{"plan", plan_json_},
              {"measured", {{"CPU", after_load_.pss}}},
              {"rss", {{"CPU", after_load_.rss}}},
              {"rss_growth",
               {{"CPU", after_load_.rss - std::min(after_load_.rss, before_load_.rss)}}}}}};
        res->send(json_response(200, props));
      }));

  for (const char* path : {"/v1/chat/completions", "/chat/completions"}) {
    server.route("POST", path,
                 prepared([this](http::Request req, std::shared_ptr<http::Responder> res) {
                   handle_generate(std::move(req), std::move(res), kChat);
                 }));
  }
  for (const char* path : {"/v1/completions", "/completions"}) {
    server.route("POST", path,
                 prepared([this](http::Request req, std::shared_ptr<http::Responder> res) {
                   handle_generate(std::move(req), std::move(res), kCompletions);
                 }));
  }
  server.route("POST", "/completion",
               prepared([this](http::Request req, std::shared_ptr<http::Responder> res) {
                 handle_generate(std::move(req), std::move(res), kNative);
               }));

  server.route(
      "POST", "/tokenize", prepared([this](http::Request req, std::shared_ptr<http::Responder> res) {
        auto body = parse_body(req.body);
        if (!body.ok()) return void(res->send(error_response(body.status())));
        auto r = parse_tokenize_request(*body);
        if (!r.ok()) return void(res->send(error_response(r.status())));
        const engine::Tokenizer& tok = model_->tokenizer();
        std::vector<engine::TokenId> ids =
            tok.tokenize(r->content, r->add_special, r->parse_special);
        std::vector<std::string> pieces;
        if (r->with_pieces) {
          for (engine::TokenId id : ids) pieces.push_back(tok.token_to_piece(id, true));
        }
        res->send(json_response(200, tokenize_json(ids, r->with_pieces ? &pieces : nullptr)));
      }));

  server.route("POST", "/detokenize",
               prepared([this](http::Request req, std::shared_ptr<http::Responder> res) {
                 auto body = parse_body(req.body);
                 if (!body.ok()) return void(res->send(error_response(body.status())));
                 auto r = parse_detokenize_request(*body);
                 if (!r.ok()) return void(res->send(error_response(r.status())));
                 const engine::Tokenizer& tok = model_->tokenizer();
                 for (size_t i = 0; i < r->tokens.size(); ++i) {
                   if (r->tokens[i] >= tok.n_vocab()) {
                     return void(res->send(error_response(invalid_argument_error(
                         "'tokens[" + std::to_string(i) + "]' is " + std::to_string(r->tokens[i]) +
                         ", outside the vocabulary [0, " + std::to_string(tok.n_vocab()) + ")"))));
                   }
                 }
                 res->send(json_response(200, detokenize_json(tok.detokenize(r->tokens))));
               }));

  server.route("POST", "/apply-template",
               prepared([this](http::Request req, std::shared_ptr<http::Responder> res) {
                 auto body = parse_body(req.body);
                 if (!body.ok()) return void(res->send(error_response(body.status())));
                 auto r = parse_apply_template_request(*body);
                 if (!r.ok()) return void(res->send(error_response(r.status())));
                 auto prompt =
                     template_->render(r->messages, r->add_generation_prompt, template_context());
                 if (!prompt.ok()) return void(res->send(error_response(prompt.status())));
                 res->send(json_response(200, apply_template_json(*prompt)));
               }));

  for (const char* path : {"/v1/embeddings", "/embeddings"}) {
    server.route("POST", path,
                 prepared([this](http::Request req, std::shared_ptr<http::Responder> res) {
                   handle_embeddings(std::move(req), std::move(res), false);
                 }));
  }
  server.route("POST", "/embedding",
               prepared([this](http::Request req, std::shared_ptr<http::Responder> res) {
                 handle_embeddings(std::move(req), std::move(res), true);
               }));

  server.route("POST", "/infill", guarded([](http::Request, std::shared_ptr<http::Responder> res) {
                 res->send(error_response(501, "/infill is not supported by hangar's worker yet"));
               }));

  server.route(
      "GET", "/metrics", guarded([this](http::Request, std::shared_ptr<http::Responder> res) {
        EngineStats s = engine_->stats();
        std::ostringstream o;
        auto metric = [&](const char* name, const char* type, const char* help, uint64_t v) {
          o << "# HELP hangar_worker_" << name << " " << help << "\n# TYPE hangar_worker_" << name
            << " " << type << "\nhangar_worker_" << name << " " << v << "\n";
        };
        metric("requests_total", "counter", "Generation and embedding requests finished.",
               s.requests_done);
        metric("prompt_tokens_total", "counter", "Prompt tokens of the requests finished.",
               s.prompt_tokens);
        metric("prompt_tokens_cached_total", "counter",
               "Of those, tokens read from a slot's cache rather than computed (cache_prompt).",
               s.prompt_tokens_cached);
        metric("tokens_predicted_total", "counter", "Tokens generated.", s.generated_tokens);
        metric("decode_steps_total", "counter", "Forward batches decoded.", s.decode_steps);
        metric("batch_rows_max", "gauge", "The largest batch decoded in one step.",
               s.max_batch_rows);
        metric("requests_processing", "gauge", "Slots busy.", static_cast<uint64_t>(s.slots_busy));
        metric("requests_deferred", "gauge", "Requests waiting for a slot.",
               static_cast<uint64_t>(s.queued));
        metric("slots", "gauge", "Slots (-np).", static_cast<uint64_t>(s.n_slots));
        http::Response r = http::Response::text(200, o.str());
        r.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        res->send(std::move(r));
      }));
}

void WorkerServer::handle_generate(http::Request req, std::shared_ptr<http::Responder> res,
                                   int kind_int) {
  const Kind kind = static_cast<Kind>(kind_int);
  auto body = parse_body(req.body);
  if (!body.ok()) return void(res->send(error_response(body.status())));
  const engine::Tokenizer& tok = model_->tokenizer();

  auto gen = std::make_shared<Generation>();
  gen->res = res;
  gen->kind = kind;
  gen->model = model_id();
  gen->meta = {make_response_id(kind == kChat ? "chatcmpl-" : "cmpl-"), unix_seconds_now(),
               model_id()};
  SamplingParams sampling;
  StreamParams stream;
  std::vector<std::vector<engine::TokenId>> prompts;
  if (kind == kChat) {
    auto r = parse_chat_completion_request(*body, options_.sampling);
    if (!r.ok()) return void(res->send(error_response(r.status())));
    auto prompt = template_->render(r->messages, true, template_context());
    if (!prompt.ok()) return void(res->send(error_response(prompt.status())));
    Status fits = check_prompt_bytes(*prompt, "the chat prompt");
    if (!fits.ok()) return void(res->send(error_response(fits)));
    prompts.push_back(tok.tokenize(*prompt, /*add_special=*/true, /*parse_special=*/true));
    sampling = r->sampling;
    stream = r->stream;
  } else {
    auto r = parse_completion_request(*body, kind == kNative, options_.sampling);
    if (!r.ok()) return void(res->send(error_response(r.status())));
    for (size_t i = 0; i < r->prompts.size(); ++i) {
      const Prompt& p = r->prompts[i];
      if (!p.is_tokens) {
        Status fits = check_prompt_bytes(
            p.text, r->prompts.size() == 1 ? "'prompt'" : "'prompt[" + std::to_string(i) + "]'");
        if (!fits.ok()) return void(res->send(error_response(fits)));
      }
    }
    for (const Prompt& p : r->prompts) {
      prompts.push_back(p.is_tokens ? p.tokens : tok.tokenize(p.text, true, true));
    }
    sampling = r->sampling;
    stream = r->stream;
    if (stream.stream && prompts.size() > 1) {
      return void(res->send(error_response(invalid_argument_error(
          "'prompt': streaming takes one prompt, got " + std::to_string(prompts.size())))));
    }
  }
  gen->stream = stream.stream;
  if (kind == kChat)
    gen->chat_stream = std::make_unique<ChatStream>(gen->meta, stream.include_usage);
  if (kind == kCompletions) {
    gen->completion_stream = std::make_unique<CompletionStream>(gen->meta, stream.include_usage);
  }
  gen->choices.resize(prompts.size());
  gen->logprobs = sampling.logprobs;
  gen->token_logprobs.resize(prompts.size());
  gen->pending = prompts.size();
  for (size_t i = 0; i < prompts.size(); ++i) gen->holdbacks.emplace_back(sampling.stop);

  std::vector<std::shared_ptr<Task>> tasks;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto task = std::make_shared<Task>();
    task->prompt = std::move(prompts[i]);
    task->sampling = sampling;
    Generation* g = gen.get();
    task->on_token = [g, i](engine::TokenId, std::string_view piece, const TokenLogprob* lp) {
      TextHoldback& hb = g->holdbacks[i];
      std::string text = hb.feed(piece);
      if (lp != nullptr) {
        (g->stream ? g->unsent_logprobs : g->token_logprobs[i]).push_back(*lp);
      }
      if (g->stream) {
        std::string frame = g->stream_delta(text);
        if (!frame.empty()) g->res->write(std::move(frame));
      } else {
        std::lock_guard lk(g->mu);
        g->choices[i].text += text;
      }
      return !hb.stopped();
    };
    task->on_done = [gen, i](const TaskResult& r) {
      TextHoldback& hb = gen->holdbacks[i];
      const std::string tail = hb.flush();
      const FinishReason finish = hb.stopped() ? FinishReason::kStop : r.finish;
      bool last = false;
      Status error;
      {
        std::lock_guard lk(gen->mu);
        if (!r.status.ok() && gen->error.ok()) gen->error = r.status;
        gen->choices[i].text += tail;
        gen->choices[i].finish = finish;
        if (!gen->stream) gen->choices[i].logprobs = gen->logprobs_json(gen->token_logprobs[i]);
        gen->usage.prompt_tokens += r.prompt_tokens;
        gen->usage.cached_tokens += r.cached_tokens;
        gen->usage.completion_tokens += r.completion_tokens;
        last = --gen->pending == 0;
        error = gen->error;
      }
      if (!last) return;
      if (gen->stream) {
        if (!error.ok()) {
          if (error.code() != StatusCode::kCancelled) {
            gen->res->write(sse_frame(error_body(error)));
          }
          gen->res->finish();
          return;
        }
        switch (gen->kind) {
          case kChat:
            gen->res->write(
                gen->chat_stream->finish(tail, finish, gen->usage, gen->take_unsent_logprobs()));
            break;
          case kCompletions:
            gen->res->write(gen->completion_stream->finish(tail, finish, gen->usage, 0,
                                                           gen->take_unsent_logprobs()));
            break;
          default: {
            NativeResult nr;
            nr.content = tail;
            nr.stop_type =
                hb.stopped() ? "word" : (finish == FinishReason::kLength ? "limit" : "eos");
            nr.stopping_word = hb.matched_stop();
            nr.usage = gen->usage;
            nr.truncated = r.truncated;
            nr.probabilities = gen->take_unsent_logprobs();
            gen->res->write(native_stream_finish(gen->model, nr));
          }
        }
        gen->res->finish();
        return;
      }
      if (!error.ok()) return void(gen->res->send(error_response(error)));
      switch (gen->kind) {
        case kChat:
          gen->res->send(
              json_response(200, chat_completion_json(gen->meta, gen->choices[0].text, finish,
                                                      gen->usage, gen->choices[0].logprobs)));
          break;
        case kCompletions:
          gen->res->send(
              json_response(200, text_completion_json(gen->meta, gen->choices, gen->usage)));
          break;
        default: {
          NativeResult nr;
          nr.content = gen->choices[0].text;
          nr.stop_type =
              hb.stopped() ? "word" : (finish == FinishReason::kLength ? "limit" : "eos");
          nr.stopping_word = hb.matched_stop();
          nr.usage = gen->usage;
          nr.truncated = r.truncated;
          nr.probabilities = gen->choices[0].logprobs;
          gen->res->send(json_response(200, native_completion_json(gen->model, nr)));
        }
      }
    };
    gen->tasks.push_back(task);
    tasks.push_back(std::move(task));
  }
  // A client that goes away cancels every task of its request at once.
  std::weak_ptr<Generation> weak = gen;
  SlotEngine* eng = engine_.get();
  res->on_close([weak, eng] {
    if (auto g = weak.lock()) {
      for (auto& w : g->tasks) {
        if (auto t = w.lock()) t->cancelled.store(true);
      }
      eng->notify();
    }
  });
  bool started = false;
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (gen->stream && !started) {
      // Validate first, then open the stream, so a prompt that does not fit is a plain 400.
      if (tasks[i]->prompt.empty() ||
          tasks[i]->prompt.size() + 1 > static_cast<size_t>(engine_->n_ctx_slot())) {
        Status s = engine_->submit(tasks[i]);  // gives the precise error
        if (!s.ok()) return void(res->send(error_response(s)));
      }
      http::Headers h;
      h.set("Content-Type", "text/event-stream");
      h.set("Cache-Control", "no-cache");
      res->start(200, std::move(h));
      started = true;
    }
    Status s = engine_->submit(tasks[i]);
    if (!s.ok()) {
      // Earlier tasks of this request are cancelled; their on_done sees the first error.
      {
        std::lock_guard lk(gen->mu);
        if (gen->error.ok()) gen->error = s;
      }
      for (size_t k = 0; k < i; ++k) tasks[k]->cancelled.store(true);
      engine_->notify();
      // Account for the tasks that were never submitted.
      bool last = false;
      {
        std::lock_guard lk(gen->mu);
        gen->pending -= tasks.size() - i;
        last = gen->pending == 0;
      }
      if (last) {
        if (gen->stream) {
          res->write(sse_frame(error_body(s)));
          res->finish();
        } else {
          res->send(error_response(s));
        }
      }
      return;
    }
  }
}

void WorkerServer::handle_embeddings(http::Request req, std::shared_ptr<http::Responder> res,
                                     bool native) {
  auto body = parse_body(req.body);
  if (!body.ok()) return void(res->send(error_response(body.status())));
  auto r = parse_embeddings_request(*body, native);
  if (!r.ok()) return void(res->send(error_response(r.status())));
  const engine::Tokenizer& tok = model_->tokenizer();
  for (size_t i = 0; i < r->inputs.size(); ++i) {
    if (r->inputs[i].is_tokens) continue;
    Status fits = check_prompt_bytes(r->inputs[i].text, "input " + std::to_string(i));
    if (!fits.ok()) return void(res->send(error_response(fits)));
  }

  struct Collect {
    std::mutex mu;
    std::vector<std::vector<float>> vectors;  // guarded by mu
    int64_t prompt_tokens = 0;                // guarded by mu
    size_t pending = 0;                       // guarded by mu
    Status error;                             // guarded by mu
    std::vector<std::weak_ptr<Task>> tasks;   // weak: on_done owns this Collect
  };
  auto c = std::make_shared<Collect>();
  c->vectors.resize(r->inputs.size());
  c->pending = r->inputs.size();
  const std::string model = model_id();
  std::vector<std::shared_ptr<Task>> tasks;
  for (size_t i = 0; i < r->inputs.size(); ++i) {
    auto task = std::make_shared<Task>();
    const Prompt& p = r->inputs[i];
    task->prompt = p.is_tokens ? p.tokens : tok.tokenize(p.text, true, true);
    task->embedding = true;
    task->on_done = [c, i, res, native, model](const TaskResult& tr) {
      bool last = false;
      {
        std::lock_guard lk(c->mu);
        if (!tr.status.ok() && c->error.ok()) c->error = tr.status;
        c->vectors[i] = tr.embedding;
        c->prompt_tokens += tr.prompt_tokens;
        last = --c->pending == 0;
      }
      if (!last) return;
      if (!c->error.ok()) return void(res->send(error_response(c->error)));
      res->send(json_response(200, native ? native_embeddings_json(c->vectors)
                                          : embeddings_json(model, c->vectors, c->prompt_tokens)));
    };
    c->tasks.push_back(task);
    tasks.push_back(std::move(task));
  }
  std::weak_ptr<Collect> weak = c;
  SlotEngine* eng = engine_.get();
  res->on_close([weak, eng] {
    if (auto cc = weak.lock()) {
      for (auto& w : cc->tasks) {
        if (auto t = w.lock()) t->cancelled.store(true);
      }
      eng->notify();
    }
  });
  for (size_t i = 0; i < tasks.size(); ++i) {
    Status s = engine_->submit(tasks[i]);
    if (s.ok()) continue;
    for (size_t k = 0; k < i; ++k) tasks[k]->cancelled.store(true);
    engine_->notify();
    bool last = false;
    {
      std::lock_guard lk(c->mu);
      if (c->error.ok()) c->error = s;
      c->pending -= tasks.size() - i;
      last = c->pending == 0;
    }
    if (last) res->send(error_response(s));
    return;
  }
}

}  // namespace hangar::worker
