#pragma once
// The engine oracle's reference files (../shared/fixtures/models/*.ref.json, fixtures README):
// per prompt, llama.cpp's prompt tokens, greedy tokens and top-5 logits at every position; and
// the two comparisons the model tests make against them. Shared by the engine oracle tests.

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hangar::engine::testing {

struct TopEntry {
  int id;
  double logit;
};

struct PromptRef {
  std::vector<int> prompt_tokens;
  std::vector<int> generated;
  std::vector<std::vector<TopEntry>> top;  // [n_prompt + 32][5]
};

inline std::vector<PromptRef> load_ref(const std::string& path) {
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  std::vector<PromptRef> out;
  if (j.is_discarded()) return out;
  for (const auto& p : j["prompts"]) {
    PromptRef r;
    r.prompt_tokens = p["prompt_tokens"].get<std::vector<int>>();
    r.generated = p["generated"].get<std::vector<int>>();
    for (const auto& row : p["top"]) {
      std::vector<TopEntry> e;
      for (const auto& x : row) e.push_back({x["id"].get<int>(), x["logit"].get<double>()});
      r.top.push_back(std::move(e));
    }
    out.push_back(std::move(r));
  }
  return out;
}

inline int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;  // lowest id wins a tie, as the reference
  }
  return best;
}

// Largest |(ours[id_k] - ours[id_0]) - (ref_k - ref_0)| over the reference's top-5 ids.
inline double top5_diff(const float* logits, const std::vector<TopEntry>& ref) {
  double worst = 0.0;
  for (const auto& e : ref) {
    const double ours = static_cast<double>(logits[e.id]) - logits[ref[0].id];
    worst = std::max(worst, std::fabs(ours - (e.logit - ref[0].logit)));
  }
  return worst;
}

}  // namespace hangar::engine::testing
