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
#if !defined(NDEBUG) || defined(HANGAR_CHECK_INVARIANTS)
  // The debug invariant (design §3): abort with the arithmetic the moment it breaks.
  if (Status s = check_invariants(); !s.ok()) {
    spdlog::critical("router: scheduler invariant broken: {}", s.message());
    std::abort();
  }
#endif
  for (auto& [id, s] : a.states) hooks_->state_changed(id, s);
  for (const std::string& id : a.stop) hooks_->stop(id);
  for (const std::string& id : a.spawn) hooks_->spawn(id);
  for (const std::string& id : a.download) hooks_->download(id);
  for (const std::string& id : a.cancel_download) hooks_->cancel_download(id);
  for (auto& [cb, result] : a.callbacks) cb(std::move(result));
  if (a.deadline_changed) hooks_->deadline_changed();
}

void Scheduler::set_state(Entry& e, ModelState s, Actions& a) {
  if (e.state == s) return;
  e.state = s;
  if (s == ModelState::kUnloading) {
    e.drain_deadline = now_() + e.drain_timeout;
    a.deadline_changed = true;
  }
  a.states.emplace_back(e.id, s);
}

void Scheduler::touch(Entry& e) {
  e.last_used = now_();
  e.last_used_unix_ms = unix_ms_now();
  e.use_order = ++use_clock_;
}

AdmissionState Scheduler::admission_state() const {
  AdmissionState st;
  st.devices = options_.devices;
  st.models_max = options_.models_max;
  for (const auto& [id, e] : models_) {
    AdmissionModel m;
    m.id = id;
    switch (e.state) {
      case ModelState::kLoading: m.phase = AdmissionModel::Phase::kLoading; break;
      case ModelState::kLoaded: m.phase = AdmissionModel::Phase::kLoaded; break;
      case ModelState::kUnloading: m.phase = AdmissionModel::Phase::kUnloading; break;
      case ModelState::kWaiting: m.phase = AdmissionModel::Phase::kWaiting; break;
      default: m.phase = AdmissionModel::Phase::kIdle; break;
    }
    m.holds = e.holds;
    m.pinned = e.pin;
    m.busy = e.in_flight > 0;
    m.claimed_by = e.claimed_by;
    m.last_used = e.use_order;
    st.models.push_back(std::move(m));
  }
  return st;
}

void Scheduler::start_load(Entry& e, Actions& a) {
  std::erase(fifo_, e.id);
  e.victims.clear();
  e.progress = 0;
  e.failed = false;
  e.exit_code = 0;
  e.last_error.clear();
  e.stop_sent = false;
  e.holds = e.need;
  e.holds.resize(options_.devices.size(), 0);
  set_state(e, ModelState::kLoading, a);
  a.spawn.push_back(e.id);
}

void Scheduler::start_download(Entry& e, Actions& a) {
  e.progress = 0;
  e.failed = false;
  e.exit_code = 0;
  e.last_error.clear();
  set_state(e, ModelState::kDownloading, a);
  a.download.push_back(e.id);
}

void Scheduler::set_needs_download(const std::string& id, bool needs) {
  std::lock_guard lock(mu_);
  auto it = models_.find(id);
  if (it != models_.end()) it->second.needs_download = needs;
}

void Scheduler::on_downloaded(const std::string& id, const Status& result) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end() || it->second.state != ModelState::kDownloading) return;
    Entry& e = it->second;
    set_state(e, ModelState::kUnloaded, a);
    if (result.ok()) {
      e.needs_download = false;
      e.progress = 0;
      if (!e.waiters.empty() || e.explicit_load) admit(e, a);
    } else {
      e.failed = result.code() != StatusCode::kCancelled;
      e.exit_code = 0;
      e.last_error = result.message();
      e.explicit_load = false;
      fail_waiters(e, unavailable_error("model '" + id + "' could not be downloaded: " +
                                        result.message()),
                   a);
    }
    rerun_admission(a);
  }
  run(a);
}

void Scheduler::begin_stop(Entry& e, Actions& a) {
  if (e.stop_sent) return;
  e.stop_sent = true;
  a.stop.push_back(e.id);
}

// Design §3 step 5: decide_admission() on the current state, carried out here.
bool Scheduler::admit(Entry& e, Actions& a, Status* never_fits) {
  Status cannot;
  // Without an estimate the model cannot be admitted against a budget; with no budget at all
  // (--models-memory-margin 0) the estimate is not needed.
  const bool budgeted = std::any_of(options_.devices.begin(), options_.devices.end(),
                                    [](const DeviceLimit& d) { return d.budget.has_value(); });
  if (!e.need_error.empty() && budgeted) {
    cannot = out_of_range_error(e.need_error);
  } else {
    AdmissionRequest request{e.id, e.need};
    request.need.resize(options_.devices.size(), 0);
    const AdmissionDecision d = decide_admission(admission_state(), request);
    switch (d.kind) {
      case AdmissionDecision::Kind::kAdmit:
        start_load(e, a);
        return true;
      case AdmissionDecision::Kind::kEvict:
        spdlog::info("router: to load '{}': {}", e.id, d.reason);
        for (const std::string& v : d.victims) {
          Entry& victim = models_.at(v);
          victim.claimed_by = e.id;
          set_state(victim, ModelState::kUnloading, a);
          begin_stop(victim, a);
          e.victims.push_back(v);
        }
        set_state(e, ModelState::kWaiting, a);
        if (std::find(fifo_.begin(), fifo_.end(), e.id) == fifo_.end()) fifo_.push_back(e.id);
        return true;
      case AdmissionDecision::Kind::kWait:
        spdlog::debug("router: '{}' waits: {}", e.id, d.reason);
        set_state(e, ModelState::kWaiting, a);
        if (std::find(fifo_.begin(), fifo_.end(), e.id) == fifo_.end()) fifo_.push_back(e.id);
        return false;
      case AdmissionDecision::Kind::kNeverFits:
        cannot = out_of_range_error(d.reason);
        break;
    }
  }
  spdlog::warn("router: {}", cannot.message());
  if (never_fits != nullptr) *never_fits = cannot;
  cancel_waiting(e, cannot, a);
  return false;
}

void Scheduler::rerun_admission(Actions& a) {
  const std::deque<std::string> order = fifo_;
  for (const std::string& id : order) {
    auto it = models_.find(id);
    if (it == models_.end() || it->second.state != ModelState::kWaiting) {
      std::erase(fifo_, id);
      continue;
    }
    Entry& e = it->second;
    if (e.waiters.empty() && !e.explicit_load) {
      cancel_waiting(e, ok_status(), a);
      continue;
    }
    admit(e, a);  // FIFO order: the first in line decides first
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

void Scheduler::add_model(const std::string& id, bool pin, int ttl_s,
                          std::chrono::milliseconds drain_timeout) {
  std::lock_guard lock(mu_);
  Entry& e = models_[id];
  e.id = id;
  e.pin = pin;
  e.ttl_s = ttl_s;
  e.drain_timeout = drain_timeout;
  e.remove_after_exit = false;
  e.need.resize(options_.devices.size(), 0);
  e.holds.resize(options_.devices.size(), 0);
}

void Scheduler::set_need(const std::string& id, const std::map<std::string, uint64_t>& need,
                         const std::string& error) {
  std::lock_guard lock(mu_);
  auto it = models_.find(id);
  if (it == models_.end()) return;
  Entry& e = it->second;
  e.need.assign(options_.devices.size(), 0);
  e.need_error = error;
  for (const auto& [device, bytes] : need) {
    auto d = std::find_if(options_.devices.begin(), options_.devices.end(),
                          [&](const DeviceLimit& l) { return l.name == device; });
    if (d == options_.devices.end()) {
      if (bytes == 0) continue;
      std::string known;
      for (const DeviceLimit& l : options_.devices) known += (known.empty() ? "" : ", ") + l.name;
      e.need_error = "model '" + id + "' needs " + mib(bytes) + " on device " + device +
                     ", which this machine does not have (devices: " + known + ")";
      continue;
    }
    e.need[static_cast<size_t>(d - options_.devices.begin())] = bytes;
  }
}

void Scheduler::on_measured(const std::string& id, const std::map<std::string, uint64_t>& measured) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end() || it->second.state != ModelState::kLoaded) return;
    Entry& e = it->second;
    for (size_t d = 0; d < options_.devices.size(); ++d) {
      auto m = measured.find(options_.devices[d].name);
      if (m == measured.end() || m->second <= e.holds[d]) continue;
      const uint64_t others = device_reserved_locked(d) - e.holds[d];
      const auto& budget = options_.devices[d].budget;
      // Larger than estimated: the reservation follows, up to what the budget leaves (the
      // memory is in use either way; the invariant is about what admission promised).
      uint64_t held = m->second;
      if (budget && others + held > *budget) held = *budget > others ? *budget - others : 0;
      if (held > e.holds[d]) {
        spdlog::info("router: '{}' measured {} on {} (estimate {})", id, mib(m->second),
                     options_.devices[d].name, mib(e.need[d]));
        e.holds[d] = held;
      }
    }
  }
  run(a);
}

uint64_t Scheduler::device_reserved_locked(size_t d) const {
  uint64_t sum = 0;
  for (const auto& [id, e] : models_) {
    if (holds_process(e.state) && d < e.holds.size()) sum += e.holds[d];
  }
  return sum;
}

void Scheduler::set_budgets(const std::vector<std::optional<uint64_t>>& budgets) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    for (size_t d = 0; d < options_.devices.size() && d < budgets.size(); ++d) {
      if (!budgets[d]) {
        options_.devices[d].budget.reset();
        continue;
      }
      options_.devices[d].budget = std::max(*budgets[d], device_reserved_locked(d));
    }
    rerun_admission(a);
  }
  run(a);
}

std::vector<Scheduler::DeviceUse> Scheduler::device_use() const {
  std::lock_guard lock(mu_);
  std::vector<DeviceUse> out;
  for (size_t d = 0; d < options_.devices.size(); ++d) {
    out.push_back({options_.devices[d].name, options_.devices[d].budget,
                   device_reserved_locked(d)});
  }
  return out;
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
  Status never_fits;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return not_found_error("model '" + id + "' not found");
    Entry& e = it->second;
    if (e.state == ModelState::kLoaded) {
      ++e.in_flight;
      touch(e);
      lease->address = e.address;
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
    if (e.state == ModelState::kUnloaded && e.needs_download) {
      start_download(e, a);
    } else if (e.state == ModelState::kUnloaded) {
      admit(e, a, &never_fits);
    }
    if (never_fits.ok()) {
      Waiter w{next_waiter_id_++, now_() + options_.queue_timeout, std::move(on_ready)};
      *waiter_id = w.id;
      e.waiters.push_back(std::move(w));
      a.deadline_changed = true;
    }
  }
  run(a);
  if (!never_fits.ok()) return never_fits;
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
  Status never_fits;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return not_found_error("model '" + id + "' not found");
    Entry& e = it->second;
    if (e.state == ModelState::kUnloaded && e.needs_download) {
      e.explicit_load = true;
      start_download(e, a);
    } else if (e.state == ModelState::kUnloaded) {
      e.explicit_load = true;
      admit(e, a, &never_fits);
    } else if (e.state == ModelState::kUnloading || e.state == ModelState::kWaiting ||
               e.state == ModelState::kDownloading) {
      e.explicit_load = true;  // reload after its process exited / keep waiting
    }
  }
  run(a);
  return never_fits;
}

Status Scheduler::fetch(const std::string& id) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return not_found_error("model '" + id + "' not found");
    Entry& e = it->second;
    if (e.state == ModelState::kUnloaded && e.needs_download) start_download(e, a);
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
      case ModelState::kSleeping:
        return failed_precondition_error("model '" + id + "' is not running");
      case ModelState::kDownloading:
        // Cancelled: the download reports back (Cancelled) and the model returns to unloaded.
        fail_waiters(e, unavailable_error("model '" + id + "' was unloaded while downloading"),
                     a);
        e.explicit_load = false;
        a.cancel_download.push_back(id);
        break;
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
  if (it != models_.end() && (it->second.state == ModelState::kLoading ||
                              it->second.state == ModelState::kDownloading)) {
    it->second.progress = progress;
  }
}

void Scheduler::on_ready(const std::string& id, const http::Address& address) {
  Actions a;
  {
    std::lock_guard lock(mu_);
    auto it = models_.find(id);
    if (it == models_.end()) return;
    Entry& e = it->second;
    if (e.state != ModelState::kLoading) return;  // being stopped already
    e.address = address;
    e.progress = 1;
    e.explicit_load = false;
    touch(e);
    set_state(e, ModelState::kLoaded, a);
    for (Waiter& w : e.waiters) {
      ++e.in_flight;
      a.callbacks.emplace_back(std::move(w.callback), Lease{address});
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
    e.address = {};
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
        std::erase(m.victims, id);  // its room goes to `m`: admission re-runs below
      }
    }
    e.holds.assign(options_.devices.size(), 0);
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
      if (e.state == ModelState::kUnloading && !e.stop_sent && now >= e.drain_deadline) {
        spdlog::warn("router: '{}' still has {} requests in flight {} ms after its unload "
                     "began; stopping it anyway",
                     id, e.in_flight, e.drain_timeout.count());
        begin_stop(e, a);
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
    if (e.state == ModelState::kUnloading && !e.stop_sent) consider(e.drain_deadline);
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
  s.address = e.address;
  s.claimed_by = e.claimed_by;
  s.need_error = e.need_error;
  for (size_t d = 0; d < options_.devices.size(); ++d) {
    const std::string& name = options_.devices[d].name;
    if (d < e.need.size() && e.need[d] > 0) s.need[name] = e.need[d];
    if (holds_process(e.state) && d < e.holds.size() && e.holds[d] > 0) s.reserved[name] = e.holds[d];
  }
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
  const std::string broken = admission_invariant_violation(admission_state());
  if (!broken.empty()) return internal_error(broken);
  return ok_status();
}

}  // namespace hangar::router
