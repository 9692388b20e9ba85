// The admission decision (design §3 step 5, issue 12): one table test per branch, and 10,000
// random sequences of loads, finishes, crashes, unloads and pins over 1-3 devices that check the
// invariants after every step.
#include "router/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace hangar::router {
namespace {

using Kind = AdmissionDecision::Kind;
using Phase = AdmissionModel::Phase;
constexpr uint64_t kMiB = 1 << 20;

AdmissionModel loaded(std::string id, std::vector<uint64_t> holds_mib, uint64_t last_used) {
  AdmissionModel m;
  m.id = std::move(id);
  m.phase = Phase::kLoaded;
  for (uint64_t h : holds_mib) m.holds.push_back(h * kMiB);
  m.last_used = last_used;
  return m;
}

AdmissionState two_gpus(uint64_t cuda0_mib, uint64_t cuda1_mib, int models_max = 0) {
  AdmissionState s;
  s.devices = {{"CUDA0", cuda0_mib * kMiB}, {"CUDA1", cuda1_mib * kMiB}};
  s.models_max = models_max;
  return s;
}

AdmissionRequest want(std::string id, std::vector<uint64_t> need_mib) {
  AdmissionRequest r{std::move(id), {}};
  for (uint64_t n : need_mib) r.need.push_back(n * kMiB);
  return r;
}

TEST(Admission, FitsNowIsAdmitted) {
  AdmissionState s = two_gpus(1000, 1000);
  s.models = {loaded("a", {400, 0}, 1)};
  EXPECT_EQ(decide_admission(s, want("b", {600, 1000})).kind, Kind::kAdmit);
}

TEST(Admission, NeedAboveTheBudgetNeverFitsAndNamesDeviceNeedAndBudget) {
  AdmissionState s = two_gpus(1000, 500);
  s.models = {loaded("a", {100, 100}, 1)};
  AdmissionDecision d = decide_admission(s, want("b", {10, 600}));
  EXPECT_EQ(d.kind, Kind::kNeverFits);
  EXPECT_TRUE(d.victims.empty());
  EXPECT_NE(d.reason.find("CUDA1"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("600 MiB"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("500 MiB"), std::string::npos) << d.reason;
}

TEST(Admission, PinnedModelsInTheWayNeverFitAndAreNamed) {
  AdmissionState s = two_gpus(1000, 1000);
  s.models = {loaded("p", {700, 0}, 1), loaded("idle", {200, 0}, 0)};
  s.models[0].pinned = true;
  AdmissionDecision d = decide_admission(s, want("b", {400, 0}));
  EXPECT_EQ(d.kind, Kind::kNeverFits);
  EXPECT_NE(d.reason.find("'p'"), std::string::npos) << d.reason;
}

TEST(Admission, PinnedModelsFillingTheCountNeverFit) {
  AdmissionState s = two_gpus(1000, 1000, 1);
  s.models = {loaded("p", {1, 0}, 1)};
  s.models[0].pinned = true;
  EXPECT_EQ(decide_admission(s, want("b", {1, 0})).kind, Kind::kNeverFits);
}

TEST(Admission, EvictsLruOnlyOnOverBudgetDevice) {
  AdmissionState s = two_gpus(1000, 1000);
  // "old" is the least recently used overall but holds only CUDA0; CUDA1 is short.
  s.models = {loaded("old", {800, 0}, 1), loaded("mid", {0, 600}, 2),
              loaded("new", {0, 300}, 3)};
  AdmissionDecision d = decide_admission(s, want("b", {100, 500}));
  EXPECT_EQ(d.kind, Kind::kEvict);
  EXPECT_EQ(d.victims, std::vector<std::string>{"mid"});
  EXPECT_NE(d.reason.find("device CUDA1"), std::string::npos) << d.reason;
}

TEST(Admission, StopsEvictingAsSoonAsTheRestFits) {
  AdmissionState s = two_gpus(1000, 1000);
  s.models = {loaded("a", {300, 0}, 1), loaded("b", {300, 0}, 2), loaded("c", {300, 0}, 3)};
  AdmissionDecision d = decide_admission(s, want("x", {500, 0}));
  EXPECT_EQ(d.kind, Kind::kEvict);
  EXPECT_EQ(d.victims, (std::vector<std::string>{"a", "b"}));
}

TEST(Admission, CountLimitEvictsAnyLruIdleModel) {
  AdmissionState s = two_gpus(1000, 1000, 2);
  s.models = {loaded("a", {0, 0}, 5), loaded("b", {0, 0}, 2)};
  AdmissionDecision d = decide_admission(s, want("x", {0, 0}));
  EXPECT_EQ(d.kind, Kind::kEvict);
  EXPECT_EQ(d.victims, std::vector<std::string>{"b"});
}

TEST(Admission, BusyCandidatesMakeTheRequestWaitAndEvictNothing) {
  AdmissionState s = two_gpus(1000, 1000);
  s.models = {loaded("busy", {600, 0}, 1), loaded("idle", {200, 0}, 2)};
  s.models[0].busy = true;
  AdmissionDecision d = decide_admission(s, want("x", {500, 0}));
  EXPECT_EQ(d.kind, Kind::kWait);
  EXPECT_TRUE(d.victims.empty());
  EXPECT_NE(d.reason.find("'busy'"), std::string::npos) << d.reason;
}

TEST(Admission, ModelsAlreadyLeavingForTheRequestMeanWaitWithoutNewVictims) {
  AdmissionState s = two_gpus(1000, 1000);
  s.models = {loaded("v", {600, 0}, 1), loaded("other", {300, 0}, 2)};
  s.models[0].phase = Phase::kUnloading;
  s.models[0].claimed_by = "x";
  EXPECT_EQ(decide_admission(s, want("x", {600, 0})).kind, Kind::kWait);
  // Room claimed by another model is not ours: "other" has to go.
  s.models[0].claimed_by = "y";
  AdmissionDecision d = decide_admission(s, want("x", {600, 0}));
  EXPECT_EQ(d.kind, Kind::kWait);  // evicting "other" alone would not free 600 MiB
  s.models[1].holds[0] = 100 * kMiB;
  s.models.push_back(loaded("third", {250, 0}, 3));
  d = decide_admission(s, want("x", {100, 0}));
  EXPECT_EQ(d.kind, Kind::kEvict);
  EXPECT_EQ(d.victims, std::vector<std::string>{"other"});
}

TEST(Admission, NoBudgetMeansNoMemoryCheck) {
  AdmissionState s;
  s.devices = {{"CPU", std::nullopt}};
  s.models = {loaded("a", {100000}, 1)};
  EXPECT_EQ(decide_admission(s, want("b", {100000})).kind, Kind::kAdmit);
}

// --- Random sequences ---------------------------------------------------------------------

// A little world the decisions are carried out in, as the scheduler would.
struct World {
  AdmissionState state;
  std::map<std::string, std::vector<uint64_t>> need;
  std::map<std::string, bool> wants;  // a request is waiting for the model
  std::vector<std::string> fifo;
  uint64_t clock = 0;

  AdmissionModel& model(const std::string& id) {
    for (auto& m : state.models) {
      if (m.id == id) return m;
    }
    std::abort();
  }

  // Runs admission for every waiting model in FIFO order, as the scheduler does.
  void rerun() {
    for (size_t i = 0; i < fifo.size();) {
      AdmissionModel& m = model(fifo[i]);
      AdmissionDecision d = decide_admission(state, {m.id, need[m.id]});
      if (d.kind == Kind::kNeverFits) {  // a pin since it queued: its requests fail
        ASSERT_TRUE(d.victims.empty());
        m.phase = Phase::kIdle;
        fifo.erase(fifo.begin() + static_cast<long>(i));
        continue;
      }
      if (d.kind == Kind::kAdmit) {
        m.phase = Phase::kLoading;
        m.holds = need[m.id];
        fifo.erase(fifo.begin() + static_cast<long>(i));
        continue;
      }
      for (const std::string& v : d.victims) {
        AdmissionModel& victim = model(v);
        ASSERT_FALSE(victim.busy) << v;
        ASSERT_FALSE(victim.pinned) << v;
        victim.phase = Phase::kUnloading;
        victim.claimed_by = m.id;
      }
      ++i;
    }
  }
  std::string holders() const {
    std::string out;
    for (const auto& m : state.models) {
      out += m.id + ":" + std::to_string(static_cast<int>(m.phase)) + " ";
    }
    return out;
  }
};

TEST(Admission, RandomSequencesKeepEveryInvariant) {
  std::mt19937_64 rng(12);
  for (int seq = 0; seq < 10000; ++seq) {
    World w;
    const int devices = 1 + static_cast<int>(rng() % 3);
    for (int d = 0; d < devices; ++d) {
      w.state.devices.push_back({"D" + std::to_string(d), (500 + rng() % 2000) * kMiB});
    }
    w.state.models_max = static_cast<int>(rng() % 4);  // 0 = no count limit
    const int models = 2 + static_cast<int>(rng() % 5);
    for (int i = 0; i < models; ++i) {
      AdmissionModel m;
      m.id = "m" + std::to_string(i);
      m.pinned = rng() % 8 == 0;
      m.holds.assign(static_cast<size_t>(devices), 0);
      w.state.models.push_back(m);
      std::vector<uint64_t> need;
      for (int d = 0; d < devices; ++d) need.push_back((rng() % 3 == 0 ? 0 : rng() % 1200) * kMiB);
      w.need[m.id] = need;
    }
    for (int step = 0; step < 40; ++step) {
      AdmissionModel& m = w.state.models[rng() % w.state.models.size()];
      switch (rng() % 6) {
        case 0:
        case 1: {  // a request for m
          if (m.phase != Phase::kIdle) {
            if (m.phase == Phase::kLoaded) m.busy = true, m.last_used = ++w.clock;
            break;
          }
          AdmissionDecision d = decide_admission(w.state, {m.id, w.need[m.id]});
          if (d.kind == Kind::kNeverFits) {
            // Evicts nothing, and really cannot fit now even with every unpinned model gone.
            ASSERT_TRUE(d.victims.empty());
            break;
          }
          m.phase = Phase::kWaiting;
          w.fifo.push_back(m.id);
          w.rerun();
          break;
        }
        case 2:  // the loading model becomes ready / requests finish
          if (m.phase == Phase::kLoading) m.phase = Phase::kLoaded;
          if (m.busy) m.busy = false;
          w.rerun();
          break;
        case 3:  // a process exits (an unloading one, or a crash)
          if (m.phase == Phase::kUnloading || (m.phase == Phase::kLoaded && rng() % 3 == 0) ||
              m.phase == Phase::kLoading) {
            m.phase = Phase::kIdle;
            m.busy = false;
            m.claimed_by.clear();
            m.holds.assign(m.holds.size(), 0);
          }
          w.rerun();
          break;
        case 4:  // an explicit unload of an idle loaded model
          if (m.phase == Phase::kLoaded && !m.busy) m.phase = Phase::kUnloading;
          w.rerun();
          break;
        case 5:  // pin or unpin
          m.pinned = !m.pinned;
          w.rerun();
          break;
      }
      ASSERT_EQ(admission_invariant_violation(w.state), "") << "sequence " << seq << " step "
                                                            << step << ": " << w.holders();
    }
    // Quiesce: everything finishes and every process that is leaving exits; then every waiting
    // model must be served.
    for (int round = 0; round < 50 && !w.fifo.empty(); ++round) {
      for (auto& m : w.state.models) {
        m.busy = false;
        if (m.phase == Phase::kLoading) m.phase = Phase::kLoaded;
        if (m.phase == Phase::kUnloading) {
          m.phase = Phase::kIdle;
          m.claimed_by.clear();
          m.holds.assign(m.holds.size(), 0);
        }
      }
      w.rerun();
      ASSERT_EQ(admission_invariant_violation(w.state), "");
    }
    // A waiting model left over can only be one that pinned models now keep out.
    for (const std::string& id : w.fifo) {
      EXPECT_EQ(decide_admission(w.state, {id, w.need[id]}).kind, Kind::kNeverFits)
          << "sequence " << seq << ": '" << id << "' was never served; " << w.holders();
    }
  }
}

}  // namespace
}  // namespace hangar::router
