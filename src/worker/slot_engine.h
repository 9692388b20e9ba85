#pragma once
// SlotEngine: -np slots over one engine Context, with continuous batching (design §8, issue 4).
//
// One engine thread owns the Context. Each step it builds ONE Batch holding the next token of
// every generating slot plus a chunk of the prompt of every slot still reading its prompt, runs
// Context::decode once, and samples for every row that asked for logits. A new request's prompt
// is therefore processed while the others keep decoding, and the engine's batch invariance
// means a sequence's tokens do not depend on its neighbours. Requests wait in FIFO order when
// every slot is busy. A cancelled task (client gone) leaves its slot before the next step.
//
// Prompt caching (llama-server's cache_prompt, on by default): a finished task leaves its tokens'
// KV in its slot. A new task goes to the free slot whose cached tokens share the longest prefix
// with its prompt when that prefix is at least half the prompt (else to the free slot idle the
// longest), keeps that prefix and computes only the rest, and at least its last prompt token.
// The engine is batch-invariant, so the answer is the same bits as from an empty slot; a chat's
// next turn reads only its new messages.
//
// Callbacks run on the engine thread and must not block (they queue bytes on a Responder).
//
// Thread-safety: submit(), cancel via Task::cancelled, stats() and shutdown() from any thread.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "engine/context.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "worker/openai_request.h"
#include "worker/openai_response.h"

namespace hangar::worker {

struct TaskResult {
  Status status;  // not OK: the task failed (the callbacks' text so far is incomplete)
  FinishReason finish = FinishReason::kStop;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // of prompt_tokens, those whose KV a previous task left in the slot
  int64_t completion_tokens = 0;
  bool truncated = false;        // stopped by the slot's context size
  std::vector<float> embedding;  // embedding tasks: mean-pooled, L2-normalised [n_embd]
};

struct Task {
  std::vector<engine::TokenId> prompt;  // non-empty
  SamplingParams sampling;
  bool embedding = false;  // only evaluate the prompt and pool its hidden states
  // Each generated token (not called for the end-of-generation token), with its
  // log-probability under the model's distribution and the sampling.top_logprobs most likely
  // alternatives when sampling.logprobs is set (nullptr otherwise). Return false to stop (a
  // stop string matched); the task then finishes with kStop.
  std::function<bool(engine::TokenId id, std::string_view piece, const TokenLogprob* logprob)>
      on_token;
  // Exactly once, last.
  std::function<void(const TaskResult& result)> on_done;
  // Set from any thread to abandon the task (the client disconnected).
  std::atomic<bool> cancelled{false};
};

struct EngineStats {
  uint64_t requests_done = 0;
  uint64_t prompt_tokens = 0;         // every task's whole prompt
  uint64_t prompt_tokens_cached = 0;  // of those, found in a slot's KV cache and not computed
  uint64_t generated_tokens = 0;
  uint64_t decode_steps = 0;
  uint64_t max_batch_rows = 0;  // the largest batch one step decoded
  int slots_busy = 0;
  int queued = 0;
  int n_slots = 0;
};

class SlotEngine {
 public:
  // `context` must have n_seq_max == n_slots and outlive the engine.
  SlotEngine(const engine::Model& model, engine::Context& context, int n_slots,
             size_t max_queue = 1024);
  ~SlotEngine();  // shutdown()
  SlotEngine(const SlotEngine&) = delete;
  SlotEngine& operator=(const SlotEngine&) = delete;

  // Queues a task. Errors: prompt empty or not fitting a slot's context (InvalidArgument), the
  // queue full or the engine shutting down (Unavailable). On error on_done is not called.
  Status submit(std::shared_ptr<Task> task);
  // Wakes the engine (after setting a task's `cancelled`).
  void notify();
  // Fails queued tasks (Unavailable), cancels running ones and joins the thread. Idempotent.
  void shutdown();
  // Tasks queued or running.
  int busy() const;

  EngineStats stats() const;
  int n_ctx_slot() const { return context_.n_ctx_seq(); }

 private:
  struct Slot {
    // Kept across tasks: the tokens whose KV is in this slot's sequence, position i holding
    // cached[i], and when the slot last took a task (for the least recently used choice).
    std::vector<engine::TokenId> cached;
    uint64_t last_used = 0;

    // One task's state.
    std::shared_ptr<Task> task;
    std::unique_ptr<engine::Sampler> sampler;
    size_t n_prompt_done = 0;   // prompt tokens already in the KV cache
    int32_t n_past = 0;         // next position
    engine::TokenId last = -1;  // the token to feed next while generating
    int64_t n_generated = 0;
    std::vector<double> embd_sum;  // embedding tasks: sum of hidden states
    int batch_row_last = -1;       // the row of this step whose logits we sample
    size_t n_cached = 0;           // prompt tokens taken from the cache at the start

    // Resets the task's state; the cache stays.
    void reset_task();
  };

  // The free slot for `task`: the longest cached prefix when it is at least half the prompt,
  // else the least recently used; -1 when every slot is busy.
  int pick_slot(const Task& task) const;
  // Forgets what the slot's sequence holds.
  void clear_cache(Slot& slot, int seq);

  // log_softmax(logits)[id] and the `n_top` most likely tokens with theirs.
  TokenLogprob token_logprob(const float* logits, engine::TokenId id, int n_top) const;

  void run();
  void start(Slot& slot, int seq, std::shared_ptr<Task> task);
  void finish(Slot& slot, int seq, TaskResult result);
  // Samples and emits one token for a slot whose row produced logits.
  void step_sampled(Slot& slot, int seq, const float* logits);

  const engine::Model& model_;
  engine::Context& context_;
  const size_t max_queue_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Task>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  bool wake_ = false;                        // guarded by mu_
  EngineStats stats_;                        // guarded by mu_

  std::vector<Slot> slots_;  // engine thread only
  uint64_t tasks_started_ = 0;  // engine thread only
  std::thread thread_;
};

}  // namespace hangar::worker
