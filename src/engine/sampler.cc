#include "engine/sampler.h"

#include <algorithm>
#include <cmath>

namespace hangar::engine {
namespace {

bool by_logit_desc(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

void sort_desc(Candidates& c) {
  if (!c.sorted) {
    std::sort(c.items.begin(), c.items.end(), by_logit_desc);
    c.sorted = true;
  }
}

}  // namespace

void apply_penalties(Candidates& c, const std::deque<TokenId>& history, float repeat,
                     float presence, float frequency) {
  if (history.empty() || (repeat == 1.0f && presence == 0.0f && frequency == 0.0f)) return;
  for (Candidate& cand : c.items) {
    int count = 0;
    for (TokenId t : history) count += t == cand.id;
    if (count == 0) continue;
    // As llama.cpp: a positive logit is divided, a negative one multiplied, so the penalty
    // always lowers it.
    cand.logit = cand.logit <= 0.0f ? cand.logit * repeat : cand.logit / repeat;
    cand.logit -= static_cast<float>(count) * frequency + presence;
  }
  c.sorted = false;
}

void apply_top_k(Candidates& c, int k) {
  if (k <= 0 || static_cast<size_t>(k) >= c.items.size()) return;
  if (!c.sorted) {
    std::partial_sort(c.items.begin(), c.items.begin() + k, c.items.end(), by_logit_desc);
  }
  c.items.resize(k);
  c.sorted = true;
}

void softmax_candidates(Candidates& c) {
  sort_desc(c);
  const float mx = c.items[0].logit;
  double sum = 0.0;
  for (Candidate& cand : c.items) {
    cand.p = std::exp(cand.logit - mx);
    sum += cand.p;
  }
  for (Candidate& cand : c.items) cand.p = static_cast<float>(cand.p / sum);
}

void apply_top_p(Candidates& c, float p) {
  if (p >= 1.0f) return;
  softmax_candidates(c);
  double cum = 0.0;
  size_t keep = c.items.size();
  for (size_t i = 0; i < c.items.size(); ++i) {
    cum += c.items[i].p;
    if (cum >= p) {
      keep = i + 1;
      break;
    }
  }
  c.items.resize(keep);
}

void apply_min_p(Candidates& c, float p) {
  if (p <= 0.0f) return;
  sort_desc(c);
  // p_i >= p * p_max  <=>  logit_i >= logit_max + log(p)
  const float threshold = c.items[0].logit + std::log(p);
  size_t keep = 1;
  while (keep < c.items.size() && c.items[keep].logit >= threshold) ++keep;
  c.items.resize(keep);
}

void apply_temperature(Candidates& c, float t) {
  if (t <= 0.0f) return;
  for (Candidate& cand : c.items) cand.logit /= t;
}

TokenId pick_greedy(const Candidates& c) {
  const Candidate* best = &c.items[0];
  for (const Candidate& cand : c.items) {
    if (by_logit_desc(cand, *best)) best = &cand;
  }
  return best->id;
}

TokenId pick_random(Candidates& c, std::mt19937& rng) {
  softmax_candidates(c);
  // A uniform float in [0, 1) from the top 24 bits of one draw.
  const double u = static_cast<double>(rng() >> 8) / 16777216.0;
  double cum = 0.0;
  for (const Candidate& cand : c.items) {
    cum += cand.p;
    if (u < cum) return cand.id;
  }
  return c.items.back().id;  // rounding left u above the last sum
}

Sampler::Sampler(const SamplerParams& params, int n_vocab)
    : params_(params), n_vocab_(n_vocab), rng_(params.seed) {
  cands_.items.reserve(n_vocab);
}

void Sampler::reset() {
  history_.clear();
  rng_.seed(params_.seed);
}

void Sampler::accept(TokenId id) {
  if (params_.penalty_last_n <= 0) return;
  history_.push_back(id);
  while (history_.size() > static_cast<size_t>(params_.penalty_last_n)) history_.pop_front();
}

TokenId Sampler::sample(const float* logits) {
  cands_.items.clear();
  for (int i = 0; i < n_vocab_; ++i) cands_.items.push_back({i, logits[i], 0.0f});
  cands_.sorted = false;
  apply_penalties(cands_, history_, params_.repeat_penalty, params_.presence_penalty,
                  params_.frequency_penalty);
  if (params_.temperature <= 0.0f) return pick_greedy(cands_);
  apply_top_k(cands_, params_.top_k);
  apply_top_p(cands_, params_.top_p);
  apply_min_p(cands_, params_.min_p);
  apply_temperature(cands_, params_.temperature);
  return pick_random(cands_, rng_);
}

}  // namespace hangar::engine
