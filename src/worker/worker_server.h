#pragma once
// WorkerServer: `hangar run`'s HTTP API over one model (design §7, worker part): /health,
// /v1/models, /props, /v1/chat/completions, /v1/completions, /completion, /tokenize,
// /detokenize, /apply-template, /v1/embeddings, /embedding, /infill (501), /metrics.
//
// The routes are registered before the model loads, so the port is bound and /health answers
// 503 {"status":"loading"} while load() runs; every other endpoint answers 503 until ready.
// Generation goes through a SlotEngine (continuous batching over -np slots); a client that
// disconnects cancels its task at once. --api-key guards everything but /health.
//
// Loading maps the weights, prefaults every page of them and runs one warm-up decode, so the
// footprint measured then (/props "memory": plan, measured Pss, RSS growth over the load) is
// the one the worker holds while serving (design §5).
//
// Thread-safety: register_routes() before the server listens; load() once from one thread;
// the cheap handlers run on the server's io threads; those that read a body (parse, render the
// template, tokenize) run on a RequestPool, never on an io thread. A prompt longer in bytes than
// a slot's context could hold in tokens is refused before it is tokenized. shutdown_engine()
// after the HTTP server has drained.

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "engine/context.h"
#include "engine/model.h"
#include "http/server.h"
#include "worker/chat_template.h"
#include "worker/footprint.h"
#include "worker/openai_request.h"
#include "worker/request_pool.h"
#include "worker/slot_engine.h"

namespace hangar::worker {

struct WorkerOptions {
  std::string model_path;
  std::string alias;   // the model's id in /v1/models; default: the file name
  int n_ctx = 4096;    // total KV positions shared by the slots (llama-server's -c)
  int n_parallel = 1;  // slots
  int n_threads = 1;
  std::string api_key;        // empty: no auth
  std::string chat_template;  // a name overriding the model's template; empty: detect
  // What a request's omitted sampling fields take (`--temp`, `--top-k`, `--seed`, `-n`...).
  SamplingParams sampling;
  int n_batch = 512;  // tokens per forward step (`-b`/`-ub`: the smaller of the two)
};

class WorkerServer {
 public:
  explicit WorkerServer(WorkerOptions options);
  ~WorkerServer();

  void register_routes(http::Server& server);
  // Loads the model, makes the context and the slot engine, then serves. `progress` gets
  // values in [0, 1].
  Status load(const std::function<void(float)>& progress);
  bool ready() const { return ready_.load(); }
  // {"id","path","n_ctx","n_parallel","chat_template"} and {"CPU": bytes} for the ready event.
  nlohmann::json model_info() const;
  static nlohmann::json memory_info();
  // Requests in flight or queued.
  int busy() const;
  void shutdown_engine();

  std::string model_id() const;

 private:
  struct Generation;
  void handle_generate(http::Request req, std::shared_ptr<http::Responder> res, int kind);
  void handle_embeddings(http::Request req, std::shared_ptr<http::Responder> res, bool native);
  ChatTemplateContext template_context() const;
  // InvalidArgument when `text` has more bytes than a slot's context could hold as tokens.
  Status check_prompt_bytes(std::string_view text, std::string_view what) const;
  // Decodes one token in sequence 0 and forgets it.
  Status warm_up();

  WorkerOptions options_;
  int64_t created_ = 0;
  std::atomic<bool> ready_{false};
  // Set once by load() before ready_ turns true; read-only afterwards.
  std::unique_ptr<engine::Model> model_;
  std::unique_ptr<engine::Context> context_;
  std::unique_ptr<SlotEngine> engine_;
  std::unique_ptr<ChatTemplate> template_;
  // Set once by load() before ready_ turns true: the plan for these options (bytes per part),
  // and the process memory before the load and after the warm-up decode.
  nlohmann::json plan_json_;
  // Set once by load(): the longest token text in bytes. A token never stands for more input
  // bytes than its text has (byte-level BPE maps each byte to one or two, SentencePiece writes a
  // space as the 3-byte U+2581, an unknown character of up to 4 bytes becomes one UNK token), so
  // a text of B bytes has at least B / kMaxBytesPerToken tokens.
  size_t max_token_bytes_ = 0;
  ProcessMemory before_load_;
  ProcessMemory after_load_;
  // Declared last: destroyed (and joined) first, before anything its jobs use.
  std::unique_ptr<RequestPool> pool_;
};

}  // namespace hangar::worker
