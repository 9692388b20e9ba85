#include "router/scheduler.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace hangar::router {
namespace {

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool holds_process(ModelState s) {
  return s == ModelState::kLoading || s == ModelState::kLoaded || s == ModelState::kUnloading;
}

}  // namespace

Scheduler::Scheduler(SchedulerOptions options, SchedulerHooks* hooks,
                     std::function<SteadyClock::time_point()> now)
    : options_(options), hooks_(hooks), now_(std::move(now)) {}

void Scheduler::run(Actions& a) {
  for (auto& [id, s] : a.states) hooks_->state_changed(id, s);
  for (const std::string& id : a.stop) hooks_->stop(id);
  for (const std::string& id : a.spawn) hooks_->spawn(id);
  for (auto& [cb, result] : a.callbacks) cb(std::move(result));
  if (a.deadline_changed) hooks_->deadline_changed();
}

void Scheduler::set_state(Entry& e, ModelState s, Actions& a) {
  if (e.state == s) return;
  e.state = s;
  a.states.emplace_back(e.id, s);
}

void Scheduler::touch(Entry& e) {
  e.last_used = now_();
  e.last_used_unix_ms = unix_ms_now();
}

int Scheduler::committed_slots() const {
  int n = 0;
  for (const auto& [id, e] : models_) {
    if (e.state == ModelState::kLoading || e.state == ModelState::kLoaded) ++n;
    if (e.state == ModelState::kUnloading && e.claimed_by.empty()) ++n;
    if (e.state == ModelState::kWaiting && !e.victims.empty()) ++n;
  }
  return n;
}

void Scheduler::start_load(Entry& e, Actions& a) {
  std::erase(fifo_, e.id);
  e.victims.clear();
  e.progress = 0;
  e.failed = false;
  e.exit_code = 0;
  e.last_error.clear();
  e.stop_sent = false;
  set_state(e, ModelState::kLoading, a);
  a.spawn.push_back(e.id);
}

void Scheduler::begin_stop(Entry& e, Actions& a) {
  if (e.stop_sent) return;
  e.stop_sent = true;
  a.stop.push_back(e.id);
}

// Design §3 step 5 with the count limit: a free slot → load now; else claim the least recently
// used idle, unpinned loaded model as a victim; else wait in FIFO order. Returns false when `e`
// has to keep waiting for room.
bool Scheduler::admit(Entry& e, Actions& a) {
  if (options_.models_max <= 0 || committed_slots() < options_.models_max) {
    start_load(e, a);
    return true;
  }
  Entry* victim = nullptr;
  for (auto& [id, c] : models_) {
    if (&c == &e || c.state != ModelState::kLoaded || c.pin || c.in_flight > 0) continue;
    if (victim == nullptr || c.last_used < victim->last_used) victim = &c;
  }
  if (victim != nullptr) {
    spdlog::info("router: evicting '{}' (least recently used) to load '{}' (models-max {})",
                 victim->id, e.id, options_.models_max);
    std::erase(fifo_, e.id);
    victim->claimed_by = e.id;
    set_state(*victim, ModelState::kUnloading, a);
    begin_stop(*victim, a);
    e.victims = {victim->id};
    set_state(e, ModelState::kWaiting, a);
    return true;
  }
  set_state(e, ModelState::kWaiting, a);
  if (std::find(fifo_.begin(), fifo_.end(), e.id) == fifo_.end()) fifo_.push_back(e.id);
  return false;
}

void Scheduler::rerun_admission(Actions& a) {
  const std::deque<std::string> order = fifo_;
  for (const std::string& id : order) {
    auto it = models_.find(id);
    if (it == models_.end() || it->second.state != ModelState::kWaiting ||
        !it->second.victims.empty()) {
      std::erase(fifo_, id);
      continue;
    }
    Entry& e = it->second;
    if (e.waiters.empty() && !e.explicit_load) {
      cancel_waiting(e, ok_status(), a);
      continue;
    }
    if (!admit(e, a)) break;  // FIFO: nobody behind it gets room first
  }
}

void Scheduler::fail_waiters(Entry& e, const Status& why, Actions& a) {
  for (Waiter& w : e.waiters) a.callbacks.emplace_back(std::move(w.callback), why);
  e.waiters.clear();
}

// A waiting model gives up: its claimed victims keep unloading, unclaimed (their slots free up
// for the FIFO).
void Scheduler::cancel_waiting(Entry& e, const Status& why, Actions& a) {
  for (const std::string& v : e.victims) {
    auto it = models_.find(v);
    if (it != models_.end() && it->second.claimed_by == e.id) it->second.claimed_by.clear();
  }
  e.victims.clear();
  e.explicit_load = false;
  std::erase(fifo_, e.id);
  if (!why.ok()) fail_waiters(e, why, a);
  set_state(e, ModelState::kUnloaded, a);
}

void Scheduler::add_model(const std::string& id, bool pin, int ttl_s) {
  std::lock_guard lock(mu_);
  Entry& e = models_[id];
  e.id = id;
  e.pin = pin;
  e.ttl_s = ttl_s;
  e.remove_after_exit = false;
}

void Scheduler::remove_model(const std::string& id) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return;
    Entry& e = it->second;
    const Status gone = not_found_error("model '" + id + "' was removed from the registry");
    if (e.state == ModelState::kUnloaded || e.state == ModelState::kWaiting) {
      cancel_waiting(e, gone, a);
      models_.erase(it);
    } else {
      e.remove_after_exit = true;
      fail_waiters(e, gone, a);
      e.explicit_load = false;
      if (e.state != ModelState::kUnloading) {
        set_state(e, ModelState::kUnloading, a);
        e.claimed_by.clear();
      }
      if (e.in_flight == 0) begin_stop(e, a);
    }
    rerun_admission(a);
  }
  run(a);
}

StatusOr<Scheduler::Acquired> Scheduler::acquire(const std::string& id, bool autoload,
                                                 Lease* lease, WaiterCallback on_ready,
                                                 uint64_t* waiter_id) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return not_found_error("model '" + id + "' not found");
    Entry& e = it->second;
    if (e.state == ModelState::kLoaded) {
      ++e.in_flight;
      touch(e);
      lease->port = e.port;
      return Acquired::kGranted;
    }
    if (e.state == ModelState::kUnloaded && !autoload) {
      return failed_precondition_error("model is not loaded");
    }
    if (e.waiters.size() >= options_.queue_max) {
      return resource_exhausted_error("model '" + id + "' has " +
                                      std::to_string(e.waiters.size()) +
                                      " requests queued (--queue-max); try again later");
    }
    Waiter w{next_waiter_id_++, now_() + options_.queue_timeout, std::move(on_ready)};
    *waiter_id = w.id;
    e.waiters.push_back(std::move(w));
    a.deadline_changed = true;
    if (e.state == ModelState::kUnloaded) admit(e, a);
  }
  run(a);
  return Acquired::kQueued;
}

void Scheduler::cancel_waiter(const std::string& id, uint64_t waiter_id) {
  std::lock_guard lock(mu_);
  auto it = models_.find(id);
  if (it == models_.end()) return;
  std::erase_if(it->second.waiters, [&](const Waiter& w) { return w.id == waiter_id; });
}

void Scheduler::release(const std::string& id) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return;
    Entry& e = it->second;
    if (e.in_flight > 0) --e.in_flight;
    touch(e);
    if (e.in_flight == 0) {
      if (e.state == ModelState::kUnloading) begin_stop(e, a);
      if (!fifo_.empty()) rerun_admission(a);
      if (e.ttl_s > 0) a.deadline_changed = true;
    }
  }
  if (!a.states.empty() || !a.stop.empty() || !a.spawn.empty() || !a.callbacks.empty() ||
      a.deadline_changed) {
    run(a);
  }
}

Status Scheduler::load(const std::string& id) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return not_found_error("model '" + id + "' not found");
    Entry& e = it->second;
    if (e.state == ModelState::kUnloaded) {
      e.explicit_load = true;
      admit(e, a);
    } else if (e.state == ModelState::kUnloading || e.state == ModelState::kWaiting) {
      e.explicit_load = true;  // reload after its process exited / keep waiting
    }
  }
  run(a);
  return ok_status();
}

Status Scheduler::unload(const std::string& id) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return not_found_error("model '" + id + "' not found");
    Entry& e = it->second;
    const Status why = unavailable_error("model '" + id + "' was unloaded before it was ready");
    switch (e.state) {
      case ModelState::kUnloaded:
      case ModelState::kDownloading:
      case ModelState::kSleeping:
        return failed_precondition_error("model '" + id + "' is not running");
      case ModelState::kWaiting:
        cancel_waiting(e, why, a);
        rerun_admission(a);
        break;
      case ModelState::kLoading:
        fail_waiters(e, why, a);
        e.explicit_load = false;
        set_state(e, ModelState::kUnloading, a);
        begin_stop(e, a);
        break;
      case ModelState::kLoaded:
        set_state(e, ModelState::kUnloading, a);
        if (e.in_flight == 0) begin_stop(e, a);  // else drained by release()
        break;
      case ModelState::kUnloading:
        fail_waiters(e, why, a);
        e.explicit_load = false;
        break;
    }
  }
  run(a);
  return ok_status();
}

void Scheduler::on_progress(const std::string& id, double progress) {
  std::lock_guard lock(mu_);
  auto it = models_.find(id);
  if (it != models_.end() && it->second.state == ModelState::kLoading) {
    it->second.progress = progress;
  }
}

void Scheduler::on_ready(const std::string& id, uint16_t port) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return;
    Entry& e = it->second;
    if (e.state != ModelState::kLoading) return;  // being stopped already
    e.port = port;
    e.progress = 1;
    e.explicit_load = false;
    touch(e);
    set_state(e, ModelState::kLoaded, a);
    for (Waiter& w : e.waiters) {
      ++e.in_flight;
      a.callbacks.emplace_back(std::move(w.callback), Lease{port});
    }
    e.waiters.clear();
    a.deadline_changed = true;
  }
  run(a);
}

void Scheduler::on_exit(const std::string& id, int exit_code, bool failed,
                        const std::string& error) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return;
    Entry& e = it->second;
    if (!holds_process(e.state)) return;
    const ModelState prev = e.state;
    e.port = 0;
    e.stop_sent = false;
    if (failed) {
      e.failed = true;
      e.exit_code = exit_code;
      e.last_error = error;
    }
    if (!e.claimed_by.empty()) {
      auto cit = models_.find(e.claimed_by);
      e.claimed_by.clear();
      if (cit != models_.end()) {
        Entry& m = cit->second;
        std::erase(m.victims, id);
        // The victim's slot passes to the model that claimed it.
        if (m.state == ModelState::kWaiting && m.victims.empty()) start_load(m, a);
      }
    }
    if (prev == ModelState::kLoading) {
      fail_waiters(e,
                   unavailable_error("model '" + id + "' failed to load" +
                                     (error.empty() ? std::string() : ": " + error)),
                   a);
      e.explicit_load = false;
    }
    set_state(e, ModelState::kUnloaded, a);
    if (e.remove_after_exit) {
      fail_waiters(e, not_found_error("model '" + id + "' was removed"), a);
      models_.erase(it);
    } else if (!e.waiters.empty() || e.explicit_load) {
      // Design §3 5e: requests that queued for a claimed victim reload it after its exit.
      admit(e, a);
    }
    rerun_admission(a);
  }
  run(a);
}

void Scheduler::tick(SteadyClock::time_point now) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, e] : models_) {
      while (!e.waiters.empty()) {
        auto w = std::find_if(e.waiters.begin(), e.waiters.end(),
                              [&](const Waiter& x) { return x.deadline <= now; });
        if (w == e.waiters.end()) break;
        a.callbacks.emplace_back(
            std::move(w->callback),
            unavailable_error("timed out after " +
                              std::to_string(options_.queue_timeout.count() / 1000.0).substr(0, 5) +
                              " s waiting for model '" + id + "' to load (--queue-timeout)"));
        e.waiters.erase(w);
      }
      if (e.state == ModelState::kLoaded && e.ttl_s > 0 && e.in_flight == 0 &&
          now - e.last_used >= std::chrono::seconds(e.ttl_s)) {
        spdlog::info("router: unloading '{}' after {} s idle (ttl)", id, e.ttl_s);
        set_state(e, ModelState::kUnloading, a);
        begin_stop(e, a);
      }
    }
    rerun_admission(a);
  }
  run(a);
}

std::optional<SteadyClock::time_point> Scheduler::next_deadline() const {
  std::lock_guard lock(mu_);
  std::optional<SteadyClock::time_point> best;
  auto consider = [&](SteadyClock::time_point t) {
    if (!best || t < *best) best = t;
  };
  for (const auto& [id, e] : models_) {
    for (const Waiter& w : e.waiters) consider(w.deadline);
    if (e.state == ModelState::kLoaded && e.ttl_s > 0 && e.in_flight == 0) {
      consider(e.last_used + std::chrono::seconds(e.ttl_s));
    }
  }
  return best;
}

ModelStatus Scheduler::to_status(const Entry& e) const {
  ModelStatus s;
  s.id = e.id;
  s.state = e.state;
  s.in_flight = e.in_flight;
  s.queued = e.waiters.size();
  s.last_used_unix_ms = e.last_used_unix_ms;
  s.pinned = e.pin;
  s.ttl_s = e.ttl_s;
  s.progress = e.progress;
  s.failed = e.failed;
  s.exit_code = e.exit_code;
  s.last_error = e.last_error;
  s.port = e.port;
  s.claimed_by = e.claimed_by;
  return s;
}

std::vector<ModelStatus> Scheduler::status() const {
  std::lock_guard lock(mu_);
  std::vector<ModelStatus> out;
  for (const auto& [id, e] : models_) out.push_back(to_status(e));
  return out;
}

std::optional<ModelStatus> Scheduler::status(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = models_.find(id);
  if (it == models_.end()) return std::nullopt;
  return to_status(it->second);
}

Status Scheduler::check_invariants() const {
  std::lock_guard lock(mu_);
  int processes = 0;
  for (const auto& [id, e] : models_) {
    if (holds_process(e.state)) ++processes;
    if (e.state == ModelState::kWaiting && e.victims.size() > 1) {
      return internal_error("model '" + id + "' claims " + std::to_string(e.victims.size()) +
                            " victims under a count limit");
    }
  }
  if (options_.models_max > 0 && processes > options_.models_max) {
    return internal_error(std::to_string(processes) + " worker processes exceed --models-max " +
                          std::to_string(options_.models_max));
  }
  if (options_.models_max > 0 && committed_slots() > options_.models_max) {
    return internal_error(std::to_string(committed_slots()) + " slots committed exceed --models-max " +
                          std::to_string(options_.models_max));
  }
  return ok_status();
}

}  // namespace hangar::router
