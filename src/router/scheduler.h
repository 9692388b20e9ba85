#pragma once
// Scheduler: which models run, which one is evicted, and who waits (design §3 steps 2, 5, 6
// with the count limit; issue 5). Pure logic: it never spawns or signals anything itself. It asks
// its owner through SchedulerHooks (spawn a worker, stop one) and hears back through on_ready() /
// on_exit(). Time comes in through tick(now) so tests drive it without sleeping.
//
// Resources: the count limit and each device's memory. A model holds its reservation (its
// estimate, raised to what it measured once ready) and a process while `loading`, `loaded` or
// `unloading`. Admission is decide_admission() (admission.h) run in the critical section; a
// claimed victim's room goes to the `waiting` model that claimed it (admission re-runs for the
// waiting models in FIFO order whenever a process exits or a request finishes). Invariant
// (check_invariants(), and after every change in debug builds): reserved <= budget on every
// device with a budget, processes <= models_max.
//
// Request pins: acquire() on a `loaded` model takes a pin (in_flight + 1) that release() drops
// after the request's last byte. A model with requests in flight is never chosen as a victim;
// an explicit unload of a busy model drains it (stop() only once in_flight reaches 0).
//
// Thread-safety: every public method may be called from any thread; state is guarded by mu_.
// Victim choice and slot reservation happen in one critical section. Hooks and waiter callbacks
// run after mu_ is released, on the calling thread, in the order the decisions were made.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "http/address.h"
#include "router/admission.h"
#include "router/model_state.h"

namespace hangar::router {

using SteadyClock = std::chrono::steady_clock;

struct SchedulerOptions {
  int models_max = 4;    // 0 = no count limit
  // Devices and their budgets (design §4); admission keeps reserved <= budget on each.
  std::vector<DeviceLimit> devices;
  size_t queue_max = 64;  // waiting requests per model
  std::chrono::milliseconds queue_timeout{300'000};
};

// What a granted request holds: the worker to send it to. Release with Scheduler::release().
struct Lease {
  http::Address address;
};

// Called once per queued request: a Lease (the pin is already taken) or why not.
using WaiterCallback = std::function<void(StatusOr<Lease>)>;

class SchedulerHooks {
 public:
  virtual ~SchedulerHooks() = default;
  // Start a worker for `id` (state is now `loading`). Report back with on_ready()/on_exit().
  virtual void spawn(const std::string& id) = 0;
  // Stop the worker of `id` (drained: no request in flight): SIGTERM, SIGKILL after its
  // stop-timeout. Report back with on_exit().
  virtual void stop(const std::string& id) = 0;
  // `id` moved to `state` (for /models/sse).
  virtual void state_changed(const std::string& id, ModelState state) = 0;
  // next_deadline() may have become earlier: re-arm the timer.
  virtual void deadline_changed() = 0;
  // Fetch `id`'s missing files (state is now `downloading`); report with on_downloaded().
  virtual void download(const std::string& /*id*/) {}
  // Give up `id`'s download (it still reports through on_downloaded(), Cancelled).
  virtual void cancel_download(const std::string& /*id*/) {}
};

// One model's scheduling state, for /models.
struct ModelStatus {
  std::string id;
  ModelState state = ModelState::kUnloaded;
  int in_flight = 0;
  size_t queued = 0;
  int64_t last_used_unix_ms = 0;  // 0 = never
  bool pinned = false;
  int ttl_s = 0;
  double progress = 0;
  bool failed = false;
  int exit_code = 0;
  std::string last_error;
  http::Address address;  // where the worker serves (empty unless ready)
  std::string claimed_by;  // unloading victim: the model that takes its slot
  std::map<std::string, uint64_t> need;      // estimate per device (bytes)
  std::map<std::string, uint64_t> reserved;  // held now per device (bytes)
  std::string need_error;                    // why there is no estimate
};

class Scheduler {
 public:
  enum class Acquired { kGranted, kQueued };

  Scheduler(SchedulerOptions options, SchedulerHooks* hooks,
            std::function<SteadyClock::time_point()> now = SteadyClock::now);

  // Adds a model or updates its pin/ttl. `drain_timeout`: how long an unload waits for the
  // requests in flight before it stops the worker anyway (a hung worker never finishes them).
  void add_model(const std::string& id, bool pin, int ttl_s,
                 std::chrono::milliseconds drain_timeout = std::chrono::seconds(10));
  // The model's memory need per device name (its estimate, design §5), or why it has none: a
  // load of a model whose estimate failed fails with `error`. A device name the inventory does
  // not have makes every load fail, naming it.
  void set_need(const std::string& id, const std::map<std::string, uint64_t>& need,
                const std::string& error = "");
  // Whether `id`'s files must be downloaded before it can load (design §5: files → estimate →
  // admission). A request or load for such a model starts one download (`downloading`), and its
  // requests wait in the model's queue meanwhile; a download holds no slot and no memory.
  void set_needs_download(const std::string& id, bool needs);
  // The download's outcome: OK → admission (call set_need() first); an error fails the waiters.
  void on_downloaded(const std::string& id, const Status& result);
  // Measured footprint per device of a loaded model: its reservation becomes the larger of
  // the estimate and this.
  void on_measured(const std::string& id, const std::map<std::string, uint64_t>& measured);
  // New budgets (--memory-refresh), indexed like SchedulerOptions::devices. A budget never
  // drops below what is reserved now (the models hold it; no new load fits until it is back).
  // Room that appeared is offered to waiting models.
  void set_budgets(const std::vector<std::optional<uint64_t>>& budgets);
  // Per device: name, budget, reserved now (bytes).
  struct DeviceUse {
    std::string name;
    std::optional<uint64_t> budget;
    uint64_t reserved = 0;
  };
  std::vector<DeviceUse> device_use() const;
  // Forgets a model; a running one is unloaded first and forgotten after its process exited.
  void remove_model(const std::string& id);

  // A request for `id`. kGranted: *lease is set and the pin taken (fast path; `on_ready` is
  // not called). kQueued: `on_ready` runs later, exactly once, unless cancel_waiter() ran first;
  // *waiter_id names the entry. Errors: NotFound (unknown id), FailedPrecondition (not running
  // and autoload off), ResourceExhausted (queue full), OutOfRange (can never fit: the message
  // names device, need and budget; nothing was evicted). A queued request fails with
  // OutOfRange too when its model turns out never to fit.
  StatusOr<Acquired> acquire(const std::string& id, bool autoload, Lease* lease,
                             WaiterCallback on_ready, uint64_t* waiter_id);
  // Drops a queued request (its client went away). No callback runs.
  void cancel_waiter(const std::string& id, uint64_t waiter_id);
  // Ends a request pin taken by acquire().
  void release(const std::string& id);

  // POST /models/load: loads `id` unless it is running. NotFound for unknown ids; OutOfRange
  // when it can never fit (nothing evicted).
  Status load(const std::string& id);
  // POST /models: downloads `id`'s missing files without loading it. NotFound; OK when there
  // is nothing to download or it is already downloading.
  Status fetch(const std::string& id);
  // POST /models/unload. NotFound; FailedPrecondition when it is not running.
  Status unload(const std::string& id);

  // Worker reports.
  void on_progress(const std::string& id, double progress);
  void on_ready(const std::string& id, const http::Address& address);
  // The worker's process is gone. `failed`: it exited on its own or was killed for a stall, not
  // because we stopped it. `error` is kept as last_error.
  void on_exit(const std::string& id, int exit_code, bool failed, const std::string& error);

  // Expires queued requests and ttl-idle models due at `now`.
  void tick(SteadyClock::time_point now);
  // The earliest time tick() has work, or nullopt.
  std::optional<SteadyClock::time_point> next_deadline() const;

  std::vector<ModelStatus> status() const;
  std::optional<ModelStatus> status(const std::string& id) const;
  // Internal error when an invariant does not hold.
  Status check_invariants() const;

 private:
  struct Waiter {
    uint64_t id = 0;
    SteadyClock::time_point deadline;
    WaiterCallback callback;
  };
  struct Entry {
    std::string id;
    ModelState state = ModelState::kUnloaded;
    bool pin = false;
    int ttl_s = 0;
    int in_flight = 0;
    SteadyClock::time_point last_used{};
    int64_t last_used_unix_ms = 0;
    std::string claimed_by;            // unloading victim → the waiting model it frees room for
    std::vector<std::string> victims;  // waiting model → the victims it claimed
    std::vector<uint64_t> need;        // estimate, indexed like options_.devices
    std::vector<uint64_t> holds;       // reservation while it has a process
    std::string need_error;            // no estimate: loads fail with this
    bool needs_download = false;       // files missing: a load starts with a download
    uint64_t use_order = 0;            // larger = more recently used (LRU for admission)
    bool stop_sent = false;            // unloading: hooks->stop() issued
    std::chrono::milliseconds drain_timeout{10'000};
    SteadyClock::time_point drain_deadline{};  // unloading: stop even with requests in flight
    bool explicit_load = false;        // /models/load: keep waiting even with no request queued
    bool remove_after_exit = false;
    std::deque<Waiter> waiters;
    http::Address address;
    double progress = 0;
    bool failed = false;
    int exit_code = 0;
    std::string last_error;
  };
  // Side effects decided under mu_, run after it is released.
  struct Actions {
    std::vector<std::string> spawn;
    std::vector<std::string> stop;
    std::vector<std::pair<std::string, ModelState>> states;
    std::vector<std::pair<WaiterCallback, StatusOr<Lease>>> callbacks;
    std::vector<std::string> download;
    std::vector<std::string> cancel_download;
    bool deadline_changed = false;
  };

  void run(Actions& actions);
  void set_state(Entry& e, ModelState s, Actions& a);
  AdmissionState admission_state() const;
  uint64_t device_reserved_locked(size_t device) const;
  // Admission for `e` (design §3 step 5). Returns false when `e` keeps waiting; a never-fits
  // model fails its waiters with OutOfRange and is returned to `unloaded` (*never_fits set).
  bool admit(Entry& e, Actions& a, Status* never_fits = nullptr);
  void start_load(Entry& e, Actions& a);
  void start_download(Entry& e, Actions& a);
  void begin_stop(Entry& e, Actions& a);
  void rerun_admission(Actions& a);
  void fail_waiters(Entry& e, const Status& why, Actions& a);
  void cancel_waiting(Entry& e, const Status& why, Actions& a);
  void touch(Entry& e);
  ModelStatus to_status(const Entry& e) const;

  SchedulerOptions options_;  // devices' budgets change under mu_ (set_budgets)
  SchedulerHooks* const hooks_;
  const std::function<SteadyClock::time_point()> now_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> models_;  // guarded by mu_
  std::deque<std::string> fifo_;         // guarded by mu_: waiting models without a victim
  uint64_t next_waiter_id_ = 1;          // guarded by mu_
  uint64_t use_clock_ = 0;               // guarded by mu_: orders last uses
};

}  // namespace hangar::router
