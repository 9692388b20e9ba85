// The forward pass on small random models made in-process: batch invariance (a sequence's
// logits do not depend on what else is in the batch, how the batch is split, or the thread
// count), sequence removal, and clear errors for bad batches and bad model files.
#include "engine/context.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/model.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "gguf/model_maker.h"
#include "support/test_support.h"

namespace hangar::engine {
namespace {

std::string make_model_file(const gguf::ModelSpec& spec, const std::string& name) {
  static const std::string dir = hangar::testing::make_temp_dir("engine-context");
  const std::string path = dir + "/" + name + ".gguf";
  Status s = gguf::write_model(spec, path);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return path;
}

gguf::ModelSpec small_spec(const std::string& arch, gguf::GgmlType type) {
  gguf::ModelSpec spec;
  spec.arch = arch;
  spec.n_embd = 64;
  spec.n_layer = 2;
  spec.n_head = 4;
  spec.n_head_kv = 2;
  spec.n_ff = 96;
  spec.n_ctx = 128;
  spec.n_vocab = 300;
  spec.type = type;
  spec.seed = 7;
  spec.threads = 1;
  return spec;
}

std::unique_ptr<Model> load(const std::string& path) {
  auto m = Model::load(path, LoadOptions{.load_tokenizer = false});
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return m.ok() ? std::move(*m) : nullptr;
}

std::vector<int32_t> tokens_a() { return {1, 17, 250, 3, 99, 42, 7, 7, 120}; }
std::vector<int32_t> tokens_b() { return {5, 200, 11, 64, 299}; }

// Logits of every position of `tokens` in sequence `seq`, decoded in one prompt batch.
std::vector<float> decode_alone(Context& ctx, const std::vector<int32_t>& tokens, int seq) {
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], static_cast<int32_t>(i), seq, true);
  EXPECT_TRUE(ctx.decode(b).ok());
  const int nv = ctx.model().hparams().n_vocab;
  std::vector<float> out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const float* l = ctx.logits(static_cast<int32_t>(i));
    out.insert(out.end(), l, l + nv);
  }
  return out;
}

class BatchInvarianceTest : public ::testing::TestWithParam<std::pair<const char*, gguf::GgmlType>> {};

TEST_P(BatchInvarianceTest, SequenceLogitsDoNotDependOnTheRestOfTheBatch) {
  const auto [arch, type] = GetParam();
  auto model = load(make_model_file(small_spec(arch, type), std::string(arch) + "-" + std::to_string(static_cast<int>(type))));
  ASSERT_TRUE(model);
  const int nv = model->hparams().n_vocab;

  auto alone_ctx = Context::create(*model, {.n_ctx = 64, .n_seq_max = 2, .n_threads = 1});
  ASSERT_TRUE(alone_ctx.ok());
  const auto alone = decode_alone(**alone_ctx, tokens_a(), 0);

  // A and B interleaved in one batch, A in sequence 1, split in steps of 4 tokens, 2 threads.
  auto ctx = Context::create(*model, {.n_ctx = 64, .n_seq_max = 2, .n_batch = 4, .n_threads = 2});
  ASSERT_TRUE(ctx.ok());
  const auto a = tokens_a();
  const auto bt = tokens_b();
  Batch b;
  std::vector<int32_t> row_of_a;
  for (size_t i = 0; i < std::max(a.size(), bt.size()); ++i) {
    if (i < bt.size()) b.add(bt[i], static_cast<int32_t>(i), 0, i % 2 == 0);
    if (i < a.size()) {
      row_of_a.push_back(static_cast<int32_t>(b.size()));
      b.add(a[i], static_cast<int32_t>(i), 1, true);
    }
  }
  ASSERT_TRUE((*ctx)->decode(b).ok());
  for (size_t i = 0; i < a.size(); ++i) {
    const float* l = (*ctx)->logits(row_of_a[i]);
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(0, std::memcmp(l, &alone[i * nv], nv * sizeof(float))) << "position " << i;
  }

  // One more token each, A alone vs A with B in the same batch.
  Batch next_alone;
  next_alone.add(77, static_cast<int32_t>(a.size()), 0, true);
  ASSERT_TRUE((*alone_ctx)->decode(next_alone).ok());
  Batch next_both;
  next_both.add(12, static_cast<int32_t>(bt.size()), 0, true);
  next_both.add(77, static_cast<int32_t>(a.size()), 1, true);
  ASSERT_TRUE((*ctx)->decode(next_both).ok());
  EXPECT_EQ(0, std::memcmp((*ctx)->logits(1), (*alone_ctx)->logits(0), nv * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Archs, BatchInvarianceTest,
                         ::testing::Values(std::make_pair("llama", gguf::GgmlType::kF16),
                                           std::make_pair("qwen2", gguf::GgmlType::kQ4_1),
                                           std::make_pair("qwen3", gguf::GgmlType::kQ8_0),
                                           std::make_pair("llama", gguf::GgmlType::kQ5_0)),
                         [](const auto& info) {
                           return std::string(info.param.first) + "_type" +
                                  std::to_string(static_cast<int>(info.param.second));
                         });

// Generation shares each weight's rows out in chunks of about 256 KiB that threads claim as they
// go (and take from each other's ranges); a prompt gives each thread one share. Matrices of
// many chunks (the output has 17 with these sizes), 1 to 3 threads and token-by-token decoding
// against one prompt batch: the logits are the same bits.
TEST(ContextTest, LogitsDoNotDependOnHowThreadsShareTheRows) {
  for (const auto type : {gguf::GgmlType::kQ8_0, gguf::GgmlType::kQ4_K}) {
    gguf::ModelSpec spec = small_spec("llama", type);
    spec.n_embd = 512;
    spec.n_head = 8;
    spec.n_head_kv = 4;
    spec.n_ff = 1536;
    spec.n_vocab = 8000;
    auto model = load(make_model_file(spec, "chunks-" + std::to_string(static_cast<int>(type))));
    ASSERT_TRUE(model);
    const int nv = model->hparams().n_vocab;
    auto one = Context::create(*model, {.n_ctx = 32, .n_seq_max = 1, .n_threads = 1});
    ASSERT_TRUE(one.ok());
    const auto a = tokens_a();
    const auto whole = decode_alone(**one, a, 0);
    for (int threads : {1, 2, 3}) {
      auto ctx = Context::create(*model, {.n_ctx = 32, .n_seq_max = 1, .n_threads = threads});
      ASSERT_TRUE(ctx.ok());
      for (size_t i = 0; i < a.size(); ++i) {
        Batch b;
        b.add(a[i], static_cast<int32_t>(i), 0, true);
        ASSERT_TRUE((*ctx)->decode(b).ok());
        EXPECT_EQ(0, std::memcmp((*ctx)->logits(0), &whole[i * nv], nv * sizeof(float)))
            << "type " << static_cast<int>(type) << ", " << threads << " threads, position " << i;
      }
    }
  }
}

TEST(ContextTest, SeqRemoveForgetsPositionsSoRedecodingGivesTheSameLogits) {
  auto model = load(make_model_file(small_spec("llama", gguf::GgmlType::kF32), "llama-f32"));
  ASSERT_TRUE(model);
  auto ctx = Context::create(*model, {.n_ctx = 32, .n_seq_max = 1, .n_threads = 1});
  ASSERT_TRUE(ctx.ok());
  const auto first = decode_alone(**ctx, tokens_a(), 0);
  EXPECT_EQ((*ctx)->seq_pos_max(0), static_cast<int32_t>(tokens_a().size()) - 1);
  (*ctx)->seq_remove(0, 0, -1);
  EXPECT_EQ((*ctx)->seq_pos_max(0), -1);
  // Different tokens at the same positions, then the originals again: the stale entries of
  // the second pass must not leak into the third.
  decode_alone(**ctx, tokens_b(), 0);
  (*ctx)->seq_remove(0, 0, -1);
  EXPECT_EQ(decode_alone(**ctx, tokens_a(), 0), first);
  // Trimming the tail and re-decoding it also reproduces the logits.
  (*ctx)->seq_remove(0, 4, -1);
  EXPECT_EQ((*ctx)->seq_pos_max(0), 3);
  Batch b;
  const auto a = tokens_a();
  for (size_t i = 4; i < a.size(); ++i) b.add(a[i], static_cast<int32_t>(i), 0, true);
  ASSERT_TRUE((*ctx)->decode(b).ok());
  const int nv = (*model).hparams().n_vocab;
  EXPECT_EQ(0, std::memcmp((*ctx)->logits(0), &first[4 * nv], nv * sizeof(float)));
}

TEST(ContextTest, LogitsOnlyForRequestedRowsAndEmbeddingIsNormalised) {
  auto model = load(make_model_file(small_spec("llama", gguf::GgmlType::kF32), "llama-f32b"));
  ASSERT_TRUE(model);
  auto ctx = Context::create(*model, {.n_ctx = 32, .n_seq_max = 1, .n_threads = 1});
  ASSERT_TRUE(ctx.ok());
  Batch b;
  b.add(3, 0, 0, false);
  b.add(4, 1, 0, true);
  b.add(5, 2, 0, false);
  ASSERT_TRUE((*ctx)->decode(b).ok());
  EXPECT_EQ((*ctx)->logits(0), nullptr);
  EXPECT_NE((*ctx)->logits(1), nullptr);
  EXPECT_EQ((*ctx)->logits(2), nullptr);
  EXPECT_EQ((*ctx)->logits(-1), (*ctx)->logits(1));
  EXPECT_NE((*ctx)->embedding(1), nullptr);
}

TEST(ContextTest, BadBatchesAreErrorsNamingTheRowAndValue) {
  auto model = load(make_model_file(small_spec("llama", gguf::GgmlType::kF32), "llama-f32c"));
  ASSERT_TRUE(model);
  auto ctx = Context::create(*model, {.n_ctx = 32, .n_seq_max = 2, .n_threads = 1});
  ASSERT_TRUE(ctx.ok());
  EXPECT_EQ((*ctx)->n_ctx_seq(), 16);
  Batch empty;
  EXPECT_FALSE((*ctx)->decode(empty).ok());
  Batch b;
  b.add(300, 0, 0, true);  // n_vocab is 300
  Status s = (*ctx)->decode(b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token id 300"), std::string::npos) << s.message();
  b.clear();
  b.add(1, 16, 0, true);
  s = (*ctx)->decode(b);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("position 16"), std::string::npos) << s.message();
  b.clear();
  b.add(1, 0, 2, true);
  s = (*ctx)->decode(b);
  EXPECT_NE(s.message().find("sequence id 2"), std::string::npos) << s.message();
  EXPECT_FALSE(Context::create(*model, {.n_ctx = 1, .n_seq_max = 2}).ok());
}

// Writes a copy of `src` with `drop` left out and, when given, the architecture replaced.
std::string rewrite(const std::string& src, const std::string& dst, const std::string& drop,
                    const std::string& arch = "") {
  auto f = gguf::GgufFile::open(src);
  EXPECT_TRUE(f.ok());
  gguf::GgufWriter w;
  for (const auto& [k, v] : (*f)->metadata()) w.set(k, v);
  if (!arch.empty()) w.set("general.architecture", gguf::Value::str(arch));
  for (const auto& t : (*f)->tensors()) {
    if (t.name == drop) continue;
    EXPECT_TRUE(w.add_tensor(t.name, t.type, t.shape, std::vector<uint8_t>(t.data, t.data + t.bytes)).ok());
  }
  EXPECT_TRUE(w.write(dst).ok());
  return dst;
}

TEST(ModelTest, MissingTensorAndUnsupportedArchitectureAreClearErrors) {
  const std::string path = make_model_file(small_spec("qwen2", gguf::GgmlType::kF16), "qwen2-base");
  auto m = Model::load(rewrite(path, path + ".nobias.gguf", "blk.1.attn_k.bias"), LoadOptions{.load_tokenizer = false});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("blk.1.attn_k.bias"), std::string::npos) << m.status().message();
  m = Model::load(rewrite(path, path + ".mamba.gguf", "", "mamba"), LoadOptions{.load_tokenizer = false});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(m.status().message().find("'mamba'"), std::string::npos) << m.status().message();
}

TEST(ModelTest, HyperParametersAndTiedOutputAreRead) {
  auto spec = small_spec("qwen3", gguf::GgmlType::kF16);
  spec.head_dim = 32;  // key_length != n_embd / n_head
  spec.tie_embeddings = true;
  auto model = load(make_model_file(spec, "qwen3-tied"));
  ASSERT_TRUE(model);
  const HParams& hp = model->hparams();
  EXPECT_EQ(hp.family, Arch::kQwen3);
  EXPECT_EQ(hp.head_dim_k, 32);
  EXPECT_EQ(hp.n_embd_q(), 128);
  EXPECT_EQ(hp.n_vocab, 300);
  EXPECT_EQ(hp.rope_mode, RopeMode::kNeox);
  EXPECT_EQ(model->weights().output.data, model->weights().tok_embd.data);
  EXPECT_NE(model->weights().layers[0].q_norm, nullptr);
}

}  // namespace
}  // namespace hangar::engine
