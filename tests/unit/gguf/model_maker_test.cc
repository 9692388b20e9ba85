// Random test models: names, shapes, types and keys per architecture; seeds reproduce; the
// vocabulary is copied from --vocab-from.
#include "gguf/model_maker.h"

#include <gtest/gtest.h>

#include <cmath>

#include "gguf/gguf.h"
#include "gguf/quantize.h"
#include "support/test_support.h"

namespace hangar::gguf {
namespace {

std::unique_ptr<GgufFile> build(const ModelSpec& spec, std::vector<uint8_t>* storage) {
  auto w = make_model(spec);
  EXPECT_TRUE(w.ok()) << w.status().to_string();
  if (!w.ok()) return nullptr;
  *storage = *w->to_bytes();
  auto f = GgufFile::parse(storage->data(), storage->size());
  EXPECT_TRUE(f.ok()) << f.status().to_string();
  return f.ok() ? std::move(*f) : nullptr;
}

TEST(ModelMaker, LlamaHasTheConverterTensorLayout) {
  ModelSpec spec;
  spec.n_vocab = 300;
  std::vector<uint8_t> bytes;
  auto f = build(spec, &bytes);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->tensors().size(), 21u);
  EXPECT_EQ(f->find_tensor("token_embd.weight")->shape, (std::vector<int64_t>{64, 300}));
  EXPECT_EQ(f->find_tensor("blk.1.attn_k.weight")->shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(f->find_tensor("blk.0.ffn_down.weight")->shape, (std::vector<int64_t>{192, 64}));
  EXPECT_EQ(f->find_tensor("output.weight")->shape, (std::vector<int64_t>{64, 300}));
  EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f->get_int("llama.vocab_size"), 300);
  EXPECT_EQ(f->get_int("general.file_type"), 0);
  EXPECT_EQ(f->get_array("tokenizer.ggml.tokens")->items.size(), 300u);
}

TEST(ModelMaker, QwenArchitecturesHaveBiasesAndQkNorms) {
  ModelSpec spec;
  spec.arch = "qwen2";
  spec.n_vocab = 300;
  spec.type = GgmlType::kF16;
  std::vector<uint8_t> bytes;
  auto f = build(spec, &bytes);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->find_tensor("blk.0.attn_q.bias")->type, GgmlType::kF32);
  EXPECT_EQ(f->find_tensor("blk.1.attn_v.bias")->shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->type, GgmlType::kF16);
  EXPECT_EQ(f->get_int("general.file_type"), 1);

  spec.arch = "qwen3";
  spec.n_embd = 32;
  spec.head_dim = 16;
  spec.n_ff = 96;
  spec.type = GgmlType::kQ8_0;
  auto g = build(spec, &bytes);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->find_tensor("blk.0.attn_q.weight")->shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(g->find_tensor("blk.0.attn_output.weight")->shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(g->find_tensor("blk.1.attn_k_norm.weight")->shape, (std::vector<int64_t>{16}));
  EXPECT_EQ(g->get_int("qwen3.attention.key_length"), 16);
  EXPECT_EQ(g->find_tensor("blk.1.ffn_up.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(g->find_tensor("blk.1.ffn_norm.weight")->type, GgmlType::kF32);
}

TEST(ModelMaker, WeightsHaveTheRequestedScaleAndTheSeedReproducesThem) {
  ModelSpec spec;
  spec.n_vocab = 1000;
  spec.threads = 2;
  std::vector<uint8_t> a, b, c;
  auto fa = build(spec, &a);
  spec.threads = 1;
  auto fb = build(spec, &b);
  spec.seed = 2;
  auto fc = build(spec, &c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const TensorInfo* t = fa->find_tensor("token_embd.weight");
  const float* x = reinterpret_cast<const float*>(t->data);
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < t->n_elements(); ++i) sum += x[i], sq += x[i] * x[i];
  const double n = static_cast<double>(t->n_elements());
  EXPECT_NEAR(sum / n, 0.0, 0.02);
  EXPECT_NEAR(std::sqrt(sq / n), 1.0, 0.02);
  const TensorInfo* norm = fa->find_tensor("output_norm.weight");
  EXPECT_NEAR(reinterpret_cast<const float*>(norm->data)[0], 1.0, 0.5);
}

TEST(ModelMaker, EveryTypeQuantizesTheMatrices) {
  for (GgmlType type : {GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                        GgmlType::kQ5_1}) {
    ModelSpec spec;
    spec.n_vocab = 300;
    spec.n_layer = 1;
    spec.type = type;
    std::vector<uint8_t> bytes;
    auto f = build(spec, &bytes);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->find_tensor("blk.0.attn_v.weight")->type, type);
    EXPECT_EQ(f->get_int("general.file_type"), *file_type_of(type));
  }
}

TEST(ModelMaker, CopiesEveryTokenizerKeyFromVocabFrom) {
  ModelSpec spec;
  spec.vocab_from = testing::test_data_dir() + "/ggml-vocab-llama-spm.gguf";
  spec.n_layer = 1;
  std::vector<uint8_t> bytes;
  auto f = build(spec, &bytes);
  ASSERT_NE(f, nullptr);
  auto vocab = GgufFile::open(spec.vocab_from);
  ASSERT_TRUE(vocab.ok());
  int copied = 0;
  for (const auto& [key, value] : (*vocab)->metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    ASSERT_NE(f->find(key), nullptr) << key;
    EXPECT_TRUE(*f->find(key) == value) << key;
    ++copied;
  }
  EXPECT_GE(copied, 8);
  EXPECT_EQ(f->find_tensor("token_embd.weight")->shape[1], 32000);
}

TEST(ModelMaker, RejectsBadShapesWithTheOptionName) {
  ModelSpec spec;
  spec.n_head_kv = 3;
  auto w = make_model(spec);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("--n-head-kv 3"), std::string::npos);
  spec = ModelSpec();
  spec.arch = "gpt9";
  EXPECT_FALSE(make_model(spec).ok());
  spec = ModelSpec();
  spec.n_embd = 48;
  spec.n_head = 4;
  spec.type = GgmlType::kQ8_0;
  auto q = make_model(spec);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("block size 32"), std::string::npos);
}

// A shape whose every matrix row is whole 256-element blocks, as the fixtures' K-quant models.
ModelSpec k_shape(int64_t n_layer) {
  ModelSpec spec;
  spec.n_embd = 256;
  spec.n_ff = 512;
  spec.n_layer = n_layer;
  spec.n_vocab = 300;
  EXPECT_TRUE(set_model_type("Q4_K_M", &spec));
  return spec;
}

TEST(ModelMaker, Q4KMGivesQ6KToTheOutputAndToAttnVAndFfnDownOfUseMoreBitsLayers) {
  std::vector<uint8_t> bytes;
  auto f = build(k_shape(8), &bytes);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->get_int("general.file_type"), 15);
  EXPECT_EQ(f->find_tensor("output.weight")->type, GgmlType::kQ6_K);
  EXPECT_EQ(f->find_tensor("token_embd.weight")->type, GgmlType::kQ4_K);
  // use_more_bits(i, 8): i < 1, i >= 7, (i - 1) % 3 == 2.
  for (int i = 0; i < 8; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    const bool more_bits = i == 0 || i == 3 || i == 6 || i == 7;
    const GgmlType more = more_bits ? GgmlType::kQ6_K : GgmlType::kQ4_K;
    EXPECT_EQ(f->find_tensor(b + "attn_v.weight")->type, more) << i;
    EXPECT_EQ(f->find_tensor(b + "ffn_down.weight")->type, more) << i;
    for (const char* name : {"attn_q.weight", "attn_k.weight", "attn_output.weight",
                             "ffn_gate.weight", "ffn_up.weight"}) {
      EXPECT_EQ(f->find_tensor(b + name)->type, GgmlType::kQ4_K) << b + name;
    }
    EXPECT_EQ(f->find_tensor(b + "attn_norm.weight")->type, GgmlType::kF32);
  }
}

TEST(ModelMaker, Q4KMOfTheFixtureShapeHasThreeQ6KTensorsAndKeepsTheWeightScale) {
  // As llama-spm-k-q4_k_m.gguf (fixtures README §6): 2 layers, tied: q4_K x12, q6_K x3.
  ModelSpec spec = k_shape(2);
  spec.tie_embeddings = true;
  std::vector<uint8_t> bytes;
  auto f = build(spec, &bytes);
  ASSERT_NE(f, nullptr);
  int q4 = 0, q6 = 0;
  for (const TensorInfo& t : f->tensors()) {
    if (t.shape.size() != 2) continue;
    q4 += t.type == GgmlType::kQ4_K;
    q6 += t.type == GgmlType::kQ6_K;
  }
  EXPECT_EQ(q4, 12);
  EXPECT_EQ(q6, 3);
  EXPECT_EQ(f->find_tensor("token_embd.weight")->type, GgmlType::kQ6_K);
  EXPECT_EQ(f->find_tensor("blk.1.attn_v.weight")->type, GgmlType::kQ6_K);
  EXPECT_EQ(f->find_tensor("blk.1.ffn_down.weight")->type, GgmlType::kQ6_K);
  // The quantized embedding still holds N(0, 1) weights.
  const TensorInfo* t = f->find_tensor("token_embd.weight");
  std::vector<float> x(static_cast<size_t>(t->n_elements()));
  ASSERT_TRUE(dequantize(t->type, t->data, x.data(), t->n_elements()).ok());
  double sq = 0;
  for (float v : x) sq += static_cast<double>(v) * v;
  EXPECT_NEAR(std::sqrt(sq / static_cast<double>(x.size())), 1.0, 0.03);
}

TEST(ModelMaker, Q4KMFallsBackForRowsThatAreNotWholeSuperBlocks) {
  ModelSpec spec;
  spec.n_vocab = 300;
  ASSERT_TRUE(set_model_type("q4_k_m", &spec));
  std::vector<uint8_t> bytes;
  auto f = build(spec, &bytes);  // n_embd 64, n_ff 192
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->type, GgmlType::kQ5_0);
  EXPECT_EQ(f->find_tensor("blk.1.ffn_down.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(f->find_tensor("output.weight")->type, GgmlType::kQ8_0);
}

TEST(ModelMaker, SetModelTypeReadsTypeNamesAndTheMixture) {
  ModelSpec spec;
  ASSERT_TRUE(set_model_type("q4_k_m", &spec));
  EXPECT_EQ(spec.mixture, Mixture::kQ4_K_M);
  ASSERT_TRUE(set_model_type("Q6_K", &spec));
  EXPECT_EQ(spec.mixture, Mixture::kNone);
  EXPECT_EQ(spec.type, GgmlType::kQ6_K);
  EXPECT_FALSE(set_model_type("q4_k_x", &spec));
}

}  // namespace
}  // namespace hangar::gguf
