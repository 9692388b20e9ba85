// The engine against llama.cpp's references (fixtures README §4, rules 2 and 3): greedy ids,
// and teacher-forced top-5 logits (as differences to the top-1) at every prompt and generated
// position. Uses the references' prompt_tokens directly, so the tokenizer is not involved.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "engine/context.h"
#include "engine/model.h"
#include "model/oracle_ref.h"
#include "support/test_support.h"

namespace hangar::engine {
namespace {

using testing::argmax;
using testing::load_ref;
using testing::PromptRef;
using testing::top5_diff;
using testing::TopEntry;

// Teacher-forced logits at every position of prompt + generated: the prompt in one batch with
// logits everywhere, then one token at a time.
std::vector<std::vector<float>> teacher_forced(Context& ctx, const PromptRef& r) {
  const int n_vocab = ctx.model().hparams().n_vocab;
  std::vector<std::vector<float>> rows;
  ctx.seq_remove(0, 0, -1);
  Batch b;
  for (size_t i = 0; i < r.prompt_tokens.size(); ++i) b.add(r.prompt_tokens[i], static_cast<int32_t>(i), 0, true);
  Status s = ctx.decode(b);
  EXPECT_TRUE(s.ok()) << s.to_string();
  if (!s.ok()) return rows;
  for (size_t i = 0; i < r.prompt_tokens.size(); ++i) {
    const float* l = ctx.logits(static_cast<int32_t>(i));
    rows.emplace_back(l, l + n_vocab);
  }
  int32_t pos = static_cast<int32_t>(r.prompt_tokens.size());
  for (int id : r.generated) {
    b.clear();
    b.add(id, pos++, 0, true);
    s = ctx.decode(b);
    EXPECT_TRUE(s.ok()) << s.to_string();
    if (!s.ok()) return rows;
    const float* l = ctx.logits(0);
    rows.emplace_back(l, l + n_vocab);
  }
  return rows;
}

std::vector<int> greedy(Context& ctx, const PromptRef& r, int n) {
  const int n_vocab = ctx.model().hparams().n_vocab;
  std::vector<int> out;
  ctx.seq_remove(0, 0, -1);
  Batch b;
  for (size_t i = 0; i < r.prompt_tokens.size(); ++i) {
    b.add(r.prompt_tokens[i], static_cast<int32_t>(i), 0, i + 1 == r.prompt_tokens.size());
  }
  int32_t pos = static_cast<int32_t>(r.prompt_tokens.size());
  for (int j = 0; j < n; ++j) {
    Status s = ctx.decode(b);
    EXPECT_TRUE(s.ok()) << s.to_string();
    if (!s.ok()) break;
    out.push_back(argmax(ctx.logits(-1), n_vocab));
    b.clear();
    b.add(out.back(), pos++, 0, true);
  }
  return out;
}

struct OracleCase {
  const char* model;
  bool exact;  // rule 2 (F32/F16) or rule 3 (quantized)
};

class EngineOracleTest : public ::testing::TestWithParam<OracleCase> {};

TEST_P(EngineOracleTest, MatchesLlamaCppReference) {
  HANGAR_REQUIRE_FIXTURES();
  const OracleCase c = GetParam();
  const std::string base = fixtures + "/models/" + c.model;
  auto model = Model::load(base + ".gguf", LoadOptions{.load_tokenizer = false});
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  auto ctx = Context::create(**model, ContextParams{.n_ctx = 256, .n_seq_max = 1, .n_threads = 2});
  ASSERT_TRUE(ctx.ok()) << ctx.status().to_string();
  const auto refs = load_ref(base + ".ref.json");
  ASSERT_EQ(refs.size(), 4u);

  double max_diff = 0.0;
  int checked = 0, top1_match = 0, positions = 0, greedy_equal = 0;
  for (size_t pi = 0; pi < refs.size(); ++pi) {
    const PromptRef& r = refs[pi];
    const int n_prompt = static_cast<int>(r.prompt_tokens.size());
    const auto rows = teacher_forced(**ctx, r);
    ASSERT_EQ(rows.size(), r.top.size());
    const auto gen = greedy(**ctx, r, static_cast<int>(r.generated.size()));
    int first_div = static_cast<int>(gen.size());
    for (size_t j = 0; j < gen.size(); ++j) {
      if (gen[j] != r.generated[j]) {
        first_div = static_cast<int>(j);
        break;
      }
    }
    if (first_div == static_cast<int>(gen.size())) ++greedy_equal;
    // Positions compared: all for the exact rule; up to the first divergence otherwise.
    const int n_pos = c.exact ? static_cast<int>(rows.size()) : n_prompt + first_div;
    for (int i = 0; i < n_pos; ++i) {
      const auto& ref = r.top[i];
      const double margin = ref[0].logit - ref[1].logit;
      const int ours = argmax(rows[i].data(), static_cast<int>(rows[i].size()));
      ++positions;
      if (ours == ref[0].id) ++top1_match;
      if (margin <= 0.05) continue;
      const double d = top5_diff(rows[i].data(), ref);
      max_diff = std::max(max_diff, d);
      ++checked;
      if (c.exact) {
        EXPECT_LE(d, 0.03) << c.model << " prompt " << pi << " position " << i;
        EXPECT_EQ(ours, ref[0].id) << c.model << " prompt " << pi << " position " << i;
      } else {
        EXPECT_LE(d, 0.35) << c.model << " prompt " << pi << " position " << i;
      }
    }
    if (c.exact) {
      EXPECT_EQ(gen, r.generated) << c.model << " prompt " << pi << " diverges at step " << first_div;
    }
    std::printf("[oracle] %s prompt %zu: greedy equal for %d of %zu steps\n", c.model, pi, first_div,
                r.generated.size());
  }
  const double match = 100.0 * top1_match / std::max(positions, 1);
  std::printf("[oracle] %s: max top-5 diff %.4f nats over %d positions (margin > 0.05); top-1 match %.1f%% of %d; greedy identical %d/4\n",
              c.model, max_diff, checked, match, positions, greedy_equal);
  if (!c.exact) {
    EXPECT_GE(match, 95.0) << c.model;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, EngineOracleTest,
    ::testing::Values(OracleCase{"llama-spm-f32", true}, OracleCase{"llama-spm-f16", true},
                      OracleCase{"llama3-bpe-f16", true}, OracleCase{"qwen2-f16", true},
                      OracleCase{"qwen3-f16", true}, OracleCase{"llama-spm-q8_0", false},
                      OracleCase{"llama-spm-q4_0", false}, OracleCase{"llama-spm-q4_1", false},
                      OracleCase{"llama-spm-q5_0", false}, OracleCase{"llama-spm-q5_1", false}),
    [](const ::testing::TestParamInfo<OracleCase>& info) {
      std::string n = info.param.model;
      std::replace(n.begin(), n.end(), '-', '_');
      return n;
    });

}  // namespace
}  // namespace hangar::engine
