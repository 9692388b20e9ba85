#pragma once
// Sampler: turns a logits row into the next token through a chain of stages, in llama.cpp's
// default order: penalties (repetition / presence / frequency over the last tokens) -> top-k
// -> top-p -> min-p -> temperature -> draw from a seeded RNG. temperature <= 0 is greedy (the
// highest logit, the lowest id on a tie) after the penalties. The same seed, logits and history
// give the same tokens on every machine (the RNG is std::mt19937 and its use is spelled out
// here, not left to a library distribution).
//
// The stages are free functions over a Candidates list so each can be tested alone.
// A Sampler is one sequence's state (history, RNG): one thread at a time. sample() does not
// allocate after construction.

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "engine/tokenizer.h"

namespace hangar::engine {

struct Candidate {
  TokenId id;
  float logit;
  float p;  // probability, valid after softmax_candidates()
};

// The working list of one sampling step; `sorted` says it is in descending logit order.
struct Candidates {
  std::vector<Candidate> items;
  bool sorted = false;
};

struct SamplerParams {
  float temperature = 0.8f;       // <= 0: greedy
  int top_k = 40;                 // <= 0: off
  float top_p = 0.95f;            // >= 1: off
  float min_p = 0.05f;            // <= 0: off
  float repeat_penalty = 1.0f;    // 1: off
  int penalty_last_n = 64;        // tokens of history the penalties look at
  float presence_penalty = 0.0f;  // 0: off
  float frequency_penalty = 0.0f; // 0: off
  uint32_t seed = 0;
};

// Stages (each keeps at least one candidate).
void apply_penalties(Candidates& c, const std::deque<TokenId>& history, float repeat,
                     float presence, float frequency);
void apply_top_k(Candidates& c, int k);
void softmax_candidates(Candidates& c);  // sorts, then fills p
void apply_top_p(Candidates& c, float p);
void apply_min_p(Candidates& c, float p);
void apply_temperature(Candidates& c, float t);
TokenId pick_greedy(const Candidates& c);
// Draws with probability p (softmax of the current logits) using one uniform number from rng.
TokenId pick_random(Candidates& c, std::mt19937& rng);

class Sampler {
 public:
  Sampler(const SamplerParams& params, int n_vocab);

  // Picks the next token from logits [n_vocab]. Does not record it: call accept().
  TokenId sample(const float* logits);
  // Records a token (prompt or generated) for the penalties.
  void accept(TokenId id);
  void reset();  // forgets the history and reseeds

  const SamplerParams& params() const { return params_; }

 private:
  SamplerParams params_;
  int n_vocab_;
  std::mt19937 rng_;
  std::deque<TokenId> history_;  // at most penalty_last_n
  Candidates cands_;
};

}  // namespace hangar::engine
