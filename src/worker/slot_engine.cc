#include "worker/slot_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace hangar::worker {
namespace {

// Prompt tokens one step may take in total, so that generating slots keep a steady pace while
// a long prompt is read in pieces.
constexpr size_t kPromptTokensPerStep = 256;

engine::SamplerParams sampler_params(const SamplingParams& s) {
  engine::SamplerParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.repeat_penalty = s.repeat_penalty;
  p.penalty_last_n = s.repeat_last_n < 0 ? 64 : s.repeat_last_n;
  p.presence_penalty = s.presence_penalty;
  p.frequency_penalty = s.frequency_penalty;
  p.seed = s.seed ? static_cast<uint32_t>(*s.seed) : std::random_device{}();
  return p;
}

// How many leading tokens of `prompt` the slot's cached tokens hold.
size_t shared_prefix(const std::vector<engine::TokenId>& cached,
                     const std::vector<engine::TokenId>& prompt) {
  return static_cast<size_t>(
      std::mismatch(cached.begin(), cached.end(), prompt.begin(), prompt.end()).first -
      cached.begin());
}

}  // namespace

SlotEngine::SlotEngine(const engine::Model& model, engine::Context& context, int n_slots,
                       size_t max_queue)
    : model_(model), context_(context), max_queue_(max_queue), slots_(n_slots) {
  stats_.n_slots = n_slots;
  thread_ = std::thread([this] { run(); });
}

SlotEngine::~SlotEngine() { shutdown(); }

Status SlotEngine::submit(std::shared_ptr<Task> task) {
  if (task->prompt.empty()) return invalid_argument_error("the prompt is empty (0 tokens)");
  const size_t limit = static_cast<size_t>(context_.n_ctx_seq());
  // A generation needs room for at least one new token after the prompt.
  const size_t need = task->embedding ? task->prompt.size() : task->prompt.size() + 1;
  if (need > limit) {
    return invalid_argument_error("the prompt has " + std::to_string(task->prompt.size()) +
                                  " tokens but a slot's context holds " + std::to_string(limit) +
                                  " (-c " + std::to_string(context_.n_ctx()) + " shared by " +
                                  std::to_string(slots_.size()) + " slots)");
  }
  const int32_t n_vocab = model_.tokenizer().n_vocab();
  for (size_t i = 0; i < task->prompt.size(); ++i) {
    if (task->prompt[i] < 0 || task->prompt[i] >= n_vocab) {
      return invalid_argument_error(
          "prompt token " + std::to_string(i) + " is id " + std::to_string(task->prompt[i]) +
          ", outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
    }
  }
  std::vector<std::shared_ptr<Task>> dropped;  // cancelled while queued: answered below
  Status queued = ok_status();
  {
    std::lock_guard lk(mu_);
    if (stopping_) return unavailable_error("the worker is shutting down");
    if (queue_.size() >= max_queue_) {
      // Tasks whose clients left hold no place in the queue.
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->cancelled.load()) {
          dropped.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (queue_.size() >= max_queue_) {
      queued = unavailable_error("the request queue is full (" + std::to_string(max_queue_) +
                                 " waiting)");
    } else {
      queue_.push_back(std::move(task));
    }
    stats_.queued = static_cast<int>(queue_.size());
  }
  for (auto& t : dropped) {
    TaskResult r;
    r.status = cancelled_error("the client disconnected while queued");
    if (t->on_done) t->on_done(r);
  }
  if (queued.ok()) cv_.notify_one();
  return queued;
}

void SlotEngine::notify() {
  {
    std::lock_guard lk(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void SlotEngine::shutdown() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

int SlotEngine::busy() const {
  std::lock_guard lk(mu_);
  return stats_.slots_busy + static_cast<int>(queue_.size());
}

EngineStats SlotEngine::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void SlotEngine::Slot::reset_task() {
  task.reset();
  sampler.reset();
  n_prompt_done = 0;
  n_past = 0;
  last = -1;
  n_generated = 0;
  embd_sum.clear();
  batch_row_last = -1;
  n_cached = 0;
}

void SlotEngine::clear_cache(Slot& slot, int seq) {
  context_.seq_remove(seq, 0, -1);
  slot.cached.clear();
}

int SlotEngine::pick_slot(const Task& task) const {
  int best = -1;  // the longest shared prefix
  size_t best_n = 0;
  int oldest = -1;  // the least recently used
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.task) continue;
    if (oldest < 0 || s.last_used < slots_[static_cast<size_t>(oldest)].last_used)
      oldest = static_cast<int>(i);
    const size_t n = shared_prefix(s.cached, task.prompt);
    if (n > best_n) {
      best = static_cast<int>(i);
      best_n = n;
    }
  }
  const bool reuse = !task.embedding && task.sampling.cache_prompt && best >= 0 &&
                     2 * best_n >= task.prompt.size();
  return reuse ? best : oldest;
}

void SlotEngine::start(Slot& slot, int seq, std::shared_ptr<Task> task) {
  slot.reset_task();
  slot.task = std::move(task);
  slot.last_used = ++tasks_started_;
  const Task& t = *slot.task;
  if (t.embedding || !t.sampling.cache_prompt) {
    // Embeddings pool every prompt token's hidden state, so all of them are computed.
    clear_cache(slot, seq);
  } else {
    // Keep the shared prefix, but compute at least the last prompt token: its logits are the
    // first sample.
    const size_t keep = std::min(shared_prefix(slot.cached, t.prompt), t.prompt.size() - 1);
    context_.seq_remove(seq, static_cast<int32_t>(keep), -1);
    slot.cached.resize(keep);
    slot.n_cached = keep;
    slot.n_prompt_done = keep;
    slot.n_past = static_cast<int32_t>(keep);
  }
  if (t.embedding) {
    slot.embd_sum.assign(static_cast<size_t>(model_.hparams().n_embd), 0.0);
  } else {
    slot.sampler =
        std::make_unique<engine::Sampler>(sampler_params(t.sampling), model_.tokenizer().n_vocab());
    for (engine::TokenId id : t.prompt) slot.sampler->accept(id);
  }
}

void SlotEngine::finish(Slot& slot, int seq, TaskResult result) {
  std::shared_ptr<Task> task = std::move(slot.task);
  // What the task computed stays for the next one; an embedding's cache is not kept.
  if (task->embedding || !task->sampling.cache_prompt) clear_cache(slot, seq);
  result.prompt_tokens = static_cast<int64_t>(task->prompt.size());
  result.cached_tokens = static_cast<int64_t>(slot.n_cached);
  result.completion_tokens = slot.n_generated;
  slot.reset_task();
  {
    std::lock_guard lk(mu_);
    stats_.requests_done++;
    stats_.prompt_tokens += static_cast<uint64_t>(result.prompt_tokens);
    stats_.prompt_tokens_cached += static_cast<uint64_t>(result.cached_tokens);
    stats_.generated_tokens += static_cast<uint64_t>(result.completion_tokens);
  }
  if (task->on_done) task->on_done(result);
}

TokenLogprob SlotEngine::token_logprob(const float* logits, engine::TokenId id, int n_top) const {
  const engine::Tokenizer& tok = model_.tokenizer();
  const int n_vocab = tok.n_vocab();
  float max_logit = logits[0];
  for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
  double sum = 0.0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max_logit));
  const double log_z = static_cast<double>(max_logit) + std::log(sum);
  TokenLogprob lp;
  lp.token = tok.token_to_piece(id, false);
  lp.logprob = static_cast<float>(logits[id] - log_z);
  // The n_top largest logits, kept sorted (most likely first) by insertion: n_top <= 20.
  std::vector<std::pair<float, engine::TokenId>> top;
  const size_t k = static_cast<size_t>(std::max(0, std::min(n_top, n_vocab)));
  for (int i = 0; i < n_vocab && k > 0; ++i) {
    if (top.size() == k && logits[i] <= top.back().first) continue;
    auto pos =
        std::find_if(top.begin(), top.end(), [&](const auto& e) { return logits[i] > e.first; });
    top.insert(pos, {logits[i], i});
    if (top.size() > k) top.pop_back();
  }
  for (const auto& [logit, tid] : top) {
    lp.top.emplace_back(tok.token_to_piece(tid, false), static_cast<float>(logit - log_z));
  }
  return lp;
}

void SlotEngine::step_sampled(Slot& slot, int seq, const float* logits) {
  const engine::Tokenizer& tok = model_.tokenizer();
  const engine::TokenId id = slot.sampler->sample(logits);
  slot.sampler->accept(id);
  if (tok.is_eog(id)) {
    finish(slot, seq, {});
    return;
  }
  slot.n_generated++;
  bool go_on = true;
  if (slot.task->on_token) {
    if (slot.task->sampling.logprobs) {
      const TokenLogprob lp = token_logprob(logits, id, slot.task->sampling.top_logprobs);
      go_on = slot.task->on_token(id, lp.token, &lp);
    } else {
      go_on = slot.task->on_token(id, tok.token_to_piece(id, false), nullptr);
    }
  }
  TaskResult r;
  if (!go_on) {
    finish(slot, seq, r);
  } else if (slot.task->sampling.max_tokens >= 0 &&
             slot.n_generated >= slot.task->sampling.max_tokens) {
    r.finish = FinishReason::kLength;
    finish(slot, seq, r);
  } else if (slot.n_past >= context_.n_ctx_seq()) {
    r.finish = FinishReason::kLength;
    r.truncated = true;
    finish(slot, seq, r);
  } else {
    slot.last = id;
  }
}

void SlotEngine::run() {
  engine::Batch batch;
  for (;;) {
    bool active = false;
    for (const Slot& s : slots_) active = active || s.task != nullptr;
    {
      std::unique_lock lk(mu_);
      // The gauges say what is true while the engine sleeps too (the last finished task has
      // freed its slot by now).
      stats_.slots_busy = 0;
      for (const Slot& s : slots_) stats_.slots_busy += s.task ? 1 : 0;
      stats_.queued = static_cast<int>(queue_.size());
      // Idle: sleep until a task arrives or shutdown. Busy: never wait.
      if (!active) cv_.wait(lk, [&] { return stopping_ || wake_ || !queue_.empty(); });
      wake_ = false;
      if (stopping_) break;
      while (!queue_.empty()) {
        const int i = pick_slot(*queue_.front());
        if (i < 0) break;  // every slot is busy
        std::shared_ptr<Task> t = std::move(queue_.front());
        queue_.pop_front();
        lk.unlock();
        if (t->cancelled.load()) {
          TaskResult r;
          r.status = cancelled_error("the client disconnected while queued");
          if (t->on_done) t->on_done(r);
        } else {
          start(slots_[static_cast<size_t>(i)], i, std::move(t));
        }
        lk.lock();
      }
      int busy = 0;
      for (const Slot& s : slots_) busy += s.task ? 1 : 0;
      stats_.slots_busy = busy;
      stats_.queued = static_cast<int>(queue_.size());
    }

    // A client that went away frees its slot before this step.
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].task && slots_[i].task->cancelled.load()) {
        TaskResult r;
        r.status = cancelled_error("the client disconnected");
        finish(slots_[i], static_cast<int>(i), r);
      }
    }

    // One batch: the next token of every generating slot, then prompt chunks.
    batch.clear();
    std::vector<std::pair<int, int>> embd_rows;  // (slot, row) of embedding prompt rows
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      s.batch_row_last = -1;
      if (!s.task || s.task->embedding || s.n_prompt_done < s.task->prompt.size()) continue;
      s.batch_row_last = static_cast<int>(batch.size());
      s.cached.push_back(s.last);
      batch.add(s.last, s.n_past++, static_cast<int32_t>(i), true);
    }
    size_t prompt_budget = kPromptTokensPerStep;
    for (size_t i = 0; i < slots_.size() && prompt_budget > 0; ++i) {
      Slot& s = slots_[i];
      if (!s.task || s.n_prompt_done >= s.task->prompt.size()) continue;
      const size_t n = std::min(prompt_budget, s.task->prompt.size() - s.n_prompt_done);
      for (size_t k = 0; k < n; ++k) {
        const bool last = s.n_prompt_done + 1 == s.task->prompt.size();
        const bool want = last || s.task->embedding;
        if (s.task->embedding) embd_rows.emplace_back(static_cast<int>(i), batch.size());
        if (last) s.batch_row_last = static_cast<int>(batch.size());
        s.cached.push_back(s.task->prompt[s.n_prompt_done]);
        batch.add(s.task->prompt[s.n_prompt_done], s.n_past++, static_cast<int32_t>(i), want);
        s.n_prompt_done++;
      }
      prompt_budget -= n;
    }
    if (batch.size() == 0) continue;

    Status st = context_.decode(batch);
    {
      std::lock_guard lk(mu_);
      stats_.decode_steps++;
      stats_.max_batch_rows = std::max<uint64_t>(stats_.max_batch_rows, batch.size());
    }
    if (!st.ok()) {
      spdlog::error("worker: decode of a {}-row batch failed: {}", batch.size(), st.to_string());
      for (size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].task) {
          TaskResult r;
          r.status = internal_error("decode failed: " + st.message());
          finish(slots_[i], static_cast<int>(i), r);
        }
        clear_cache(slots_[i], static_cast<int>(i));  // what the batch wrote is unknown
      }
      continue;
    }
    for (const auto& [si, row] : embd_rows) {
      const float* e = context_.embedding(row);
      Slot& s = slots_[static_cast<size_t>(si)];
      if (e == nullptr || !s.task) continue;
      for (size_t d = 0; d < s.embd_sum.size(); ++d) s.embd_sum[d] += e[d];
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (!s.task || s.batch_row_last < 0) continue;
      if (s.task->embedding) {
        // Mean over the prompt's tokens, then L2-normalised (llama-server's default).
        TaskResult r;
        double norm = 0.0;
        const double n = static_cast<double>(s.task->prompt.size());
        r.embedding.resize(s.embd_sum.size());
        for (size_t d = 0; d < s.embd_sum.size(); ++d)
          norm += (s.embd_sum[d] / n) * (s.embd_sum[d] / n);
        norm = std::sqrt(norm);
        for (size_t d = 0; d < s.embd_sum.size(); ++d) {
          r.embedding[d] = static_cast<float>(norm > 0 ? (s.embd_sum[d] / n) / norm : 0.0);
        }
        finish(s, static_cast<int>(i), std::move(r));
        continue;
      }
      if (s.task->sampling.max_tokens == 0) {
        TaskResult r;
        r.finish = FinishReason::kLength;
        finish(s, static_cast<int>(i), r);
        continue;
      }
      const float* logits = context_.logits(s.batch_row_last);
      if (logits == nullptr) {
        TaskResult r;
        r.status = internal_error("no logits for batch row " + std::to_string(s.batch_row_last));
        finish(s, static_cast<int>(i), r);
        continue;
      }
      step_sampled(s, static_cast<int>(i), logits);
    }
  }

  // Shutting down: fail what is queued, end what runs.
  std::deque<std::shared_ptr<Task>> left;
  {
    std::lock_guard lk(mu_);
    left.swap(queue_);
  }
  for (auto& t : left) {
    TaskResult r;
    r.status = unavailable_error("the worker is shutting down");
    if (t->on_done) t->on_done(r);
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].task) continue;
    TaskResult r;
    r.status = unavailable_error("the worker is shutting down");
    finish(slots_[i], static_cast<int>(i), r);
  }
}

}  // namespace hangar::worker
