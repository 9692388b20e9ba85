#include "router/admission.h"

#include <algorithm>

#include <fmt/format.h>

namespace hangar::router {
namespace {

using Phase = AdmissionModel::Phase;

bool holds_process(Phase p) {
  return p == Phase::kLoading || p == Phase::kLoaded || p == Phase::kUnloading;
}

uint64_t at(const std::vector<uint64_t>& v, size_t d) { return d < v.size() ? v[d] : 0; }

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out;
}

// What is held now, and what a set of models leaving would give back.
struct Ledger {
  const AdmissionState& state;
  const AdmissionRequest& request;
  std::vector<uint64_t> reserved;  // per device, every process but the request's own
  int processes = 0;

  Ledger(const AdmissionState& s, const AdmissionRequest& r)
      : state(s), request(r), reserved(s.devices.size(), 0) {
    for (const AdmissionModel& m : s.models) {
      if (m.id == r.id || !holds_process(m.phase)) continue;
      ++processes;
      for (size_t d = 0; d < reserved.size(); ++d) reserved[d] += at(m.holds, d);
    }
  }

  // Whether the request fits once models holding `freed` (per device) and `freed_processes`
  // are gone.
  bool fits(const std::vector<uint64_t>& freed, int freed_processes) const {
    if (state.models_max > 0 && processes - freed_processes + 1 > state.models_max) return false;
    for (size_t d = 0; d < state.devices.size(); ++d) {
      if (!short_on(d, freed)) continue;
      return false;
    }
    return true;
  }
  bool short_on(size_t d, const std::vector<uint64_t>& freed) const {
    const auto& budget = state.devices[d].budget;
    if (!budget) return false;
    const uint64_t after = reserved[d] - std::min(reserved[d], at(freed, d));
    return after + at(request.need, d) > *budget;
  }
  bool count_short(int freed_processes) const {
    return state.models_max > 0 && processes - freed_processes + 1 > state.models_max;
  }
  // "device CPU: reserved=… need=… budget=… MiB" for every device that is short.
  std::string shortage(const std::vector<uint64_t>& freed, int freed_processes) const {
    std::string out;
    for (size_t d = 0; d < state.devices.size(); ++d) {
      if (!short_on(d, freed)) continue;
      const uint64_t after = reserved[d] - std::min(reserved[d], at(freed, d));
      out += fmt::format("{}device {}: reserved={} need={} budget={}", out.empty() ? "" : "; ",
                         state.devices[d].name, mib(after), mib(at(request.need, d)),
                         mib(*state.devices[d].budget));
    }
    if (count_short(freed_processes)) {
      out += fmt::format("{}{} models running (--models-max {})", out.empty() ? "" : "; ",
                         processes - freed_processes, state.models_max);
    }
    return out;
  }
};

std::optional<std::string> never_fits(const AdmissionState& state,
                                      const AdmissionRequest& request) {
  for (size_t d = 0; d < state.devices.size(); ++d) {
    const auto& budget = state.devices[d].budget;
    const uint64_t need = at(request.need, d);
    if (!budget) continue;
    if (need > *budget) {
      return fmt::format("model '{}' needs {} on device {} but its budget is {} (free at start "
                         "minus --models-memory-margin): it can never fit",
                         request.id, mib(need), state.devices[d].name, mib(*budget));
    }
    uint64_t pinned = 0;
    std::vector<std::string> names;
    for (const AdmissionModel& m : state.models) {
      if (m.id == request.id || !m.pinned || at(m.holds, d) == 0) continue;
      if (m.phase != Phase::kLoading && m.phase != Phase::kLoaded) continue;
      pinned += at(m.holds, d);
      names.push_back(m.id);
    }
    if (pinned + need > *budget) {
      return fmt::format("model '{}' needs {} on device {}, whose budget is {}, and pinned models "
                         "{} hold {} there: it cannot fit while they are loaded",
                         request.id, mib(need), state.devices[d].name, mib(*budget), join(names),
                         mib(pinned));
    }
  }
  if (state.models_max > 0) {
    std::vector<std::string> names;
    for (const AdmissionModel& m : state.models) {
      if (m.id != request.id && m.pinned &&
          (m.phase == Phase::kLoading || m.phase == Phase::kLoaded)) {
        names.push_back(m.id);
      }
    }
    if (static_cast<int>(names.size()) >= state.models_max) {
      return fmt::format("model '{}' cannot load: pinned models {} fill --models-max {}",
                         request.id, join(names), state.models_max);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string mib(uint64_t bytes) {
  return fmt::format("{} MiB", (bytes + (1u << 20) - 1) >> 20);
}

AdmissionDecision decide_admission(const AdmissionState& state, const AdmissionRequest& request) {
  AdmissionDecision out;
  if (auto why = never_fits(state, request)) {
    out.kind = AdmissionDecision::Kind::kNeverFits;
    out.reason = *why;
    return out;
  }
  const Ledger ledger(state, request);
  std::vector<uint64_t> freed(state.devices.size(), 0);
  int freed_processes = 0;
  if (ledger.fits(freed, freed_processes)) {
    out.kind = AdmissionDecision::Kind::kAdmit;
    return out;
  }
  // Models already on their way out for this request (or for nobody) give their room back.
  std::vector<std::string> leaving;
  for (const AdmissionModel& m : state.models) {
    if (m.id == request.id || m.phase != Phase::kUnloading) continue;
    if (!m.claimed_by.empty() && m.claimed_by != request.id) continue;
    leaving.push_back(m.id);
    ++freed_processes;
    for (size_t d = 0; d < freed.size(); ++d) freed[d] += at(m.holds, d);
  }
  if (ledger.fits(freed, freed_processes)) {
    out.kind = AdmissionDecision::Kind::kWait;
    out.reason = "waiting for " + join(leaving) + " to exit";
    return out;
  }
  // Victims: least recently used first among idle, unpinned, unclaimed loaded models that
  // hold something short.
  std::vector<const AdmissionModel*> candidates;
  for (const AdmissionModel& m : state.models) {
    if (m.id == request.id || m.phase != Phase::kLoaded || m.pinned || m.busy) continue;
    if (!m.claimed_by.empty()) continue;
    candidates.push_back(&m);
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const AdmissionModel* a, const AdmissionModel* b) {
                     return a->last_used < b->last_used;
                   });
  const std::string before = ledger.shortage(freed, freed_processes);
  for (const AdmissionModel* c : candidates) {
    bool helps = ledger.count_short(freed_processes);
    for (size_t d = 0; d < freed.size() && !helps; ++d) {
      helps = at(c->holds, d) > 0 && ledger.short_on(d, freed);
    }
    if (!helps) continue;
    out.victims.push_back(c->id);
    ++freed_processes;
    for (size_t d = 0; d < freed.size(); ++d) freed[d] += at(c->holds, d);
    if (ledger.fits(freed, freed_processes)) {
      out.kind = AdmissionDecision::Kind::kEvict;
      out.reason = before + " → evict " + join(out.victims);
      return out;
    }
  }
  out.victims.clear();
  std::vector<std::string> busy;
  for (const AdmissionModel& m : state.models) {
    if (m.id != request.id && m.phase == Phase::kLoaded && m.busy) busy.push_back(m.id);
  }
  out.kind = AdmissionDecision::Kind::kWait;
  out.reason = before + (busy.empty() ? std::string(" → waiting for room")
                                      : " → waiting for busy models " + join(busy));
  return out;
}

std::string admission_invariant_violation(const AdmissionState& state) {
  std::vector<uint64_t> reserved(state.devices.size(), 0);
  int processes = 0;
  for (const AdmissionModel& m : state.models) {
    if (!holds_process(m.phase)) continue;
    ++processes;
    for (size_t d = 0; d < reserved.size(); ++d) reserved[d] += at(m.holds, d);
  }
  for (size_t d = 0; d < state.devices.size(); ++d) {
    const auto& budget = state.devices[d].budget;
    if (budget && reserved[d] > *budget) {
      return fmt::format("device {}: reserved {} B > budget {} B", state.devices[d].name,
                         reserved[d], *budget);
    }
  }
  if (state.models_max > 0 && processes > state.models_max) {
    return fmt::format("{} processes > --models-max {}", processes, state.models_max);
  }
  return "";
}

}  // namespace hangar::router
