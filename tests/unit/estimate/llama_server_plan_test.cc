// The llama-server (--backend) memory plan: argument parsing, layer placement over 0–3 GPUs by
// -ngl / -ts / -sm, the output layer, KV cache placement and types, context padding, compute
// buffers and per-process overhead (docs/estimate.md), checked against figures llama.cpp
// printed where they can be derived.
#include "estimate/llama_server_plan.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <tuple>

#include "gguf/model_maker.h"
#include "support/test_support.h"

namespace hangar::estimate {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

// A model written by model_maker into a temporary folder, opened.
class MadeModel {
 public:
  explicit MadeModel(gguf::ModelSpec spec) {
    dir_ = testing::make_temp_dir("hangar-lsp");
    path_ = dir_ + "/m.gguf";
    spec.threads = 1;
    Status st = gguf::write_model(spec, path_);
    EXPECT_TRUE(st.ok()) << st.message();
    auto f = gguf::GgufFile::open(path_);
    EXPECT_TRUE(f.ok()) << f.status().message();
    if (f.ok()) file_ = std::move(*f);
  }
  ~MadeModel() { std::filesystem::remove_all(dir_); }
  const gguf::GgufFile& file() const { return *file_; }

  uint64_t bytes_where(const std::function<bool(const std::string&)>& pred) const {
    uint64_t b = 0;
    for (const auto& t : file_->tensors()) {
      if (pred(t.name)) b += t.bytes;
    }
    return b;
  }
  uint64_t layer_bytes(int il) const {
    const std::string prefix = "blk." + std::to_string(il) + ".";
    return bytes_where([&](const std::string& n) { return n.starts_with(prefix); });
  }
  uint64_t layers_bytes(int from, int to) const {  // [from, to)
    uint64_t b = 0;
    for (int il = from; il < to; ++il) b += layer_bytes(il);
    return b;
  }
  uint64_t tensor_bytes(const std::string& name) const {
    return bytes_where([&](const std::string& n) { return n == name; });
  }
  uint64_t all_bytes() const {
    return bytes_where([](const std::string&) { return true; });
  }

 private:
  std::string dir_;
  std::string path_;
  std::unique_ptr<gguf::GgufFile> file_;
};

gguf::ModelSpec spec_with_layers(int n_layer, bool tied = false) {
  gguf::ModelSpec s;
  s.arch = "llama";
  s.n_embd = 64;
  s.n_layer = n_layer;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_ff = 128;
  s.n_ctx = 1024;
  s.n_vocab = 4096;
  s.type = gguf::GgmlType::kF16;
  s.tie_embeddings = tied;
  return s;
}

LlamaServerArgs args_of(const std::vector<std::string>& argv) {
  auto a = parse_llama_server_args(argv);
  EXPECT_TRUE(a.ok()) << a.status().message();
  return a.ok() ? *a : LlamaServerArgs{};
}

std::map<std::string, DevicePlan> plan_of(const gguf::GgufFile& f, const LlamaServerArgs& a,
                                          int n_gpus) {
  auto p = plan_llama_server_devices(f, a, n_gpus);
  EXPECT_TRUE(p.ok()) << p.status().message();
  std::map<std::string, DevicePlan> out;
  if (p.ok()) {
    for (const auto& d : p->devices) out[d.device] = d;
  }
  return out;
}

uint64_t sum_weights(const std::map<std::string, DevicePlan>& p) {
  uint64_t b = 0;
  for (const auto& [name, d] : p) b += d.weights;
  return b;
}

// ------------------------------------------------------------------------------------------
// Arguments

TEST(ParseLlamaServerArgsTest, ReadsShortAndLongFormsAndIgnoresOthers) {
  const LlamaServerArgs a = args_of({"-m",
                                     "x.gguf",
                                     "-c",
                                     "8192",
                                     "--parallel=2",
                                     "-ngl",
                                     "all",
                                     "-ts",
                                     "3,1",
                                     "-mg",
                                     "1",
                                     "-sm",
                                     "row",
                                     "-ctk",
                                     "q8_0",
                                     "--cache-type-v",
                                     "q4_0",
                                     "-b",
                                     "1024",
                                     "-ub",
                                     "256",
                                     "-nkvo",
                                     "-fa",
                                     "on",
                                     "--host",
                                     "0.0.0.0",
                                     "--no-op-offload",
                                     "-ncmoe",
                                     "3",
                                     "-kvu"});
  EXPECT_EQ(a.ctx_size, 8192);
  EXPECT_EQ(a.parallel, 2);
  EXPECT_GT(a.n_gpu_layers, 10000);
  EXPECT_EQ(a.tensor_split, (std::vector<float>{3, 1}));
  EXPECT_EQ(a.main_gpu, 1);
  EXPECT_EQ(a.split_mode, "row");
  EXPECT_EQ(a.cache_type_k, "q8_0");
  EXPECT_EQ(a.cache_type_v, "q4_0");
  EXPECT_EQ(a.batch, 1024);
  EXPECT_EQ(a.ubatch, 256);
  EXPECT_FALSE(a.kv_offload);
  EXPECT_EQ(a.flash_attn, "on");
  EXPECT_FALSE(a.op_offload);
  EXPECT_EQ(a.n_cpu_moe, 3);
  EXPECT_EQ(a.kv_unified, std::optional<bool>(true));
}

TEST(ParseLlamaServerArgsTest, DefaultsAreLlamaServersOwn) {
  const LlamaServerArgs a = args_of({});
  EXPECT_EQ(a.ctx_size, 0);       // the training context
  EXPECT_EQ(a.parallel, -1);      // auto: 4 unified slots
  EXPECT_EQ(a.n_gpu_layers, -1);  // auto: planned as all
  EXPECT_EQ(a.cache_type_k, "f16");
  EXPECT_EQ(a.ubatch, 512);
  EXPECT_EQ(a.flash_attn, "auto");
  EXPECT_TRUE(a.kv_offload);
}

TEST(ParseLlamaServerArgsTest, NglAutoAllAndNegativeMeanAllAndBareFaMeansOn) {
  EXPECT_EQ(args_of({"-ngl", "auto"}).n_gpu_layers, -1);
  EXPECT_EQ(args_of({"--n-gpu-layers", "-1"}).n_gpu_layers, -1);
  EXPECT_EQ(args_of({"--gpu-layers=99"}).n_gpu_layers, 99);
  EXPECT_EQ(args_of({"-fa", "-c", "512"}).flash_attn, "on");
  EXPECT_EQ(args_of({"-fa", "-c", "512"}).ctx_size, 512);
  EXPECT_EQ(args_of({"--flash-attn", "off"}).flash_attn, "off");
  EXPECT_EQ(args_of({"-ts", "1/2/1"}).tensor_split, (std::vector<float>{1, 2, 1}));
}

TEST(ParseLlamaServerArgsTest, NamesTheArgumentOfABadValue) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-c", "big"}, "'-c'"},
      {{"-sm", "rows"}, "'-sm'"},
      {{"-ctk", "q3_k"}, "'-ctk'"},
      {{"-ts", "1,-1"}, "'-ts'"},
      {{"-ts", "1,,1"}, "'-ts'"},
      {{"--ctx-size"}, "'--ctx-size' needs a value"},
      {{"-fa=on"}, ""},  // not a --long form: an unknown argument, ignored
  };
  for (const auto& [argv, what] : cases) {
    auto a = parse_llama_server_args(argv);
    if (what.empty()) {
      EXPECT_TRUE(a.ok()) << argv[0];
      continue;
    }
    ASSERT_FALSE(a.ok()) << argv[0];
    EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(a.status().message().find(what), std::string::npos) << a.status().message();
  }
}

// ------------------------------------------------------------------------------------------
// Placement of weights

TEST(LlamaServerPlanTest, NoGpusPutsEverythingOnTheHostWhateverNgl) {
  MadeModel m(spec_with_layers(4));
  const auto p = plan_of(m.file(), args_of({"-ngl", "99"}), 0);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p.at("CPU").weights, m.all_bytes());
  EXPECT_EQ(p.at("CPU").overhead, kLlamaServerHostBytes + header_heap_bytes(m.file()));
}

TEST(LlamaServerPlanTest, NglZeroKeepsWeightsAndKvOnTheHostButTheGpuPaysItsContext) {
  MadeModel m(spec_with_layers(4));
  const auto p = plan_of(m.file(), args_of({"-ngl", "0", "-c", "1024", "-np", "1"}), 1);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p.at("CPU").weights, m.all_bytes());
  EXPECT_EQ(p.at("CUDA0").weights, 0u);
  EXPECT_EQ(p.at("CUDA0").kv_cache, 0u);
  EXPECT_GT(p.at("CPU").kv_cache, 0u);
  EXPECT_EQ(p.at("CUDA0").overhead, kCudaContextBytes);
  EXPECT_EQ(p.at("CPU").overhead,
            kLlamaServerHostBytes + kCudaHostBytes + header_heap_bytes(m.file()));
}

TEST(LlamaServerPlanTest, SomeLayersOffloadTheLastOnesAndKeepTheOutputOnTheHost) {
  MadeModel m(spec_with_layers(4));
  const auto p = plan_of(m.file(), args_of({"-ngl", "2"}), 1);
  EXPECT_EQ(p.at("CUDA0").weights, m.layers_bytes(2, 4));
  EXPECT_EQ(p.at("CPU").weights, m.all_bytes() - m.layers_bytes(2, 4));
  // -ngl n_layer: every repeating layer, but not the output layer.
  const auto q = plan_of(m.file(), args_of({"-ngl", "4"}), 1);
  EXPECT_EQ(q.at("CUDA0").weights, m.layers_bytes(0, 4));
  EXPECT_EQ(q.at("CPU").weights, m.tensor_bytes("token_embd.weight") +
                                     m.tensor_bytes("output.weight") +
                                     m.tensor_bytes("output_norm.weight"));
}

TEST(LlamaServerPlanTest, OutputGoesToTheLastGpuOnlyWhenAllLayersAreOffloaded) {
  MadeModel m(spec_with_layers(4));
  const uint64_t output = m.tensor_bytes("output.weight") + m.tensor_bytes("output_norm.weight");
  for (const char* ngl : {"5", "99", "all", "-1"}) {
    const auto p = plan_of(m.file(), args_of({"-ngl", ngl}), 1);
    EXPECT_EQ(p.at("CUDA0").weights, m.layers_bytes(0, 4) + output) << ngl;
    EXPECT_EQ(p.at("CPU").weights, m.tensor_bytes("token_embd.weight")) << ngl;
  }
  const auto p = plan_of(m.file(), {}, 1);  // auto
  EXPECT_EQ(p.at("CPU").weights, m.tensor_bytes("token_embd.weight"));
}

TEST(LlamaServerPlanTest, TwoGpusSplitEquallyByDefaultWithTheOutputOnTheLast) {
  // 4 layers + output = 5 slots at 0, .2, .4, .6, .8 against splits .5, 1.
  MadeModel m(spec_with_layers(4));
  const auto p = plan_of(m.file(), args_of({"-ngl", "99"}), 2);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p.at("CUDA0").weights, m.layers_bytes(0, 3));
  EXPECT_EQ(p.at("CUDA1").weights, m.layers_bytes(3, 4) + m.tensor_bytes("output.weight") +
                                       m.tensor_bytes("output_norm.weight"));
  EXPECT_EQ(p.at("CUDA0").overhead, kCudaContextBytes);
  EXPECT_EQ(p.at("CUDA1").overhead, kCudaContextBytes);
}

TEST(LlamaServerPlanTest, TensorSplitProportionsPlaceLayersAsLlamaCpp) {
  // 7 layers + output = 8 slots at il / 8.
  MadeModel m(spec_with_layers(7));
  const uint64_t output = m.tensor_bytes("output.weight") + m.tensor_bytes("output_norm.weight");
  {  // 3,1 → splits .75, 1: slots 0–5 on GPU 0, slot 6 (.75) and the output on GPU 1.
    const auto p = plan_of(m.file(), args_of({"-ts", "3,1"}), 2);
    EXPECT_EQ(p.at("CUDA0").weights, m.layers_bytes(0, 6));
    EXPECT_EQ(p.at("CUDA1").weights, m.layers_bytes(6, 7) + output);
  }
  {  // 1,1,2 over 3 GPUs → splits .25, .5, 1.
    const auto p = plan_of(m.file(), args_of({"-ts", "1,1,2"}), 3);
    EXPECT_EQ(p.at("CUDA0").weights, m.layers_bytes(0, 2));
    EXPECT_EQ(p.at("CUDA1").weights, m.layers_bytes(2, 4));
    EXPECT_EQ(p.at("CUDA2").weights, m.layers_bytes(4, 7) + output);
  }
  {  // 0,1: GPU 0 gets nothing but still holds a CUDA context.
    const auto p = plan_of(m.file(), args_of({"-ts", "0,1"}), 2);
    EXPECT_EQ(p.at("CUDA0").weights, 0u);
    EXPECT_EQ(p.at("CUDA0").kv_cache, 0u);
    EXPECT_EQ(p.at("CUDA0").overhead, kCudaContextBytes);
    EXPECT_EQ(p.at("CUDA1").weights, m.layers_bytes(0, 7) + output);
  }
  {  // Partial offload over 2 GPUs: the last 4 layers, split 2/2; the output stays on the host.
    const auto p = plan_of(m.file(), args_of({"-ngl", "4"}), 2);
    EXPECT_EQ(p.at("CUDA0").weights, m.layers_bytes(3, 5));
    EXPECT_EQ(p.at("CUDA1").weights, m.layers_bytes(5, 7));
    EXPECT_EQ(p.at("CPU").weights,
              m.layers_bytes(0, 3) + output + m.tensor_bytes("token_embd.weight"));
  }
  {  // -sm row is planned as layer.
    const auto p = plan_of(m.file(), args_of({"-ts", "3,1", "-sm", "row"}), 2);
    EXPECT_EQ(p.at("CUDA0").weights, m.layers_bytes(0, 6));
  }
}

TEST(LlamaServerPlanTest, SplitModeNoneUsesOnlyTheMainGpu) {
  MadeModel m(spec_with_layers(4));
  const auto p = plan_of(m.file(), args_of({"-sm", "none", "-mg", "1"}), 3);
  ASSERT_EQ(p.size(), 2u);
  ASSERT_TRUE(p.count("CUDA1"));
  EXPECT_EQ(p.at("CUDA1").weights, m.all_bytes() - m.tensor_bytes("token_embd.weight"));
  auto bad = plan_llama_server(m.file(), args_of({"-sm", "none", "-mg", "3"}), 3);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("-mg 3"), std::string::npos);
}

TEST(LlamaServerPlanTest, TiedEmbeddingsAreCopiedToTheOutputGpu) {
  MadeModel m(spec_with_layers(4, /*tied=*/true));
  const uint64_t embd = m.tensor_bytes("token_embd.weight");
  const auto all = plan_of(m.file(), args_of({"-ngl", "99"}), 1);
  EXPECT_EQ(all.at("CPU").weights, embd);
  EXPECT_EQ(all.at("CUDA0").weights, m.all_bytes() - embd + embd);  // layers, norm, the copy
  EXPECT_EQ(sum_weights(all), m.all_bytes() + embd);
  const auto part = plan_of(m.file(), args_of({"-ngl", "2"}), 1);
  EXPECT_EQ(sum_weights(part), m.all_bytes());  // the output reads the host's mapping
}

TEST(LlamaServerPlanTest, CpuMoeKeepsExpertTensorsOnTheHost) {
  // No MoE maker: the rule is by name, so an ordinary model places nothing differently.
  MadeModel m(spec_with_layers(4));
  const auto a = plan_of(m.file(), args_of({"-cmoe"}), 1);
  const auto b = plan_of(m.file(), {}, 1);
  EXPECT_EQ(a.at("CUDA0").weights, b.at("CUDA0").weights);
}

// ------------------------------------------------------------------------------------------
// KV cache

TEST(LlamaServerPlanTest, KvCacheFollowsItsLayersDevice) {
  MadeModel m(spec_with_layers(4));
  // Per layer: 1024 cells × (32 + 32) F16 values.
  const uint64_t per_layer = 1024ull * 64 * 2;
  const auto p = plan_of(m.file(), args_of({"-c", "1024", "-np", "1", "-ngl", "3"}), 2);
  EXPECT_EQ(p.at("CPU").kv_cache, 1 * per_layer);    // layer 0
  EXPECT_EQ(p.at("CUDA0").kv_cache, 2 * per_layer);  // layers 1, 2
  EXPECT_EQ(p.at("CUDA1").kv_cache, 1 * per_layer);  // layer 3
  const auto n = plan_of(m.file(), args_of({"-c", "1024", "-np", "1", "-nkvo"}), 2);
  EXPECT_EQ(n.at("CPU").kv_cache, 4 * per_layer);
  EXPECT_EQ(n.at("CUDA0").kv_cache, 0u);
  EXPECT_EQ(n.at("CUDA1").kv_cache, 0u);
}

TEST(LlamaServerPlanTest, CacheTypesSizeTheKvRows) {
  MadeModel m(spec_with_layers(4));
  auto kv = [&](std::vector<std::string> argv) {
    argv.insert(argv.end(), {"-c", "1024", "-np", "1"});
    return plan_of(m.file(), args_of(argv), 0).at("CPU").kv_cache;
  };
  const uint64_t cells = 4ull * 1024;  // layers × cells; K and V rows of 32 values each
  EXPECT_EQ(kv({}), cells * (64 + 64));
  EXPECT_EQ(kv({"-ctk", "f32", "-ctv", "f32"}), cells * (128 + 128));
  EXPECT_EQ(kv({"-ctk", "q8_0", "-ctv", "q8_0"}), cells * (34 + 34));
  EXPECT_EQ(kv({"-ctk", "q4_0", "-ctv", "q4_0"}), cells * (18 + 18));
  EXPECT_EQ(kv({"-ctk", "q8_0"}), cells * (34 + 64));
  // llama-server refuses a quantized V cache without flash attention.
  auto bad = plan_llama_server(m.file(), args_of({"-ctv", "q4_0", "-fa", "off"}), 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("flash attention"), std::string::npos);
}

TEST(LlamaServerPlanTest, ContextIsPaddedAndSplitOverSlotsAsLlamaCpp) {
  MadeModel m(spec_with_layers(1));
  const uint64_t per_cell = 64 * 2;  // K + V F16 rows of 32
  auto cells = [&](std::vector<std::string> argv) {
    return plan_of(m.file(), args_of(argv), 0).at("CPU").kv_cache / per_cell;
  };
  EXPECT_EQ(cells({"-c", "1000", "-np", "1"}), 1024u);
  EXPECT_EQ(cells({"-c", "1000", "-np", "4"}), 1024u);  // 250 → 256 per slot
  EXPECT_EQ(cells({"-c", "4096", "-np", "3"}), 4608u);  // 1365 → 1536 per slot
  EXPECT_EQ(cells({"-c", "4096", "-np", "3", "-kvu"}), 4096u);
  EXPECT_EQ(cells({"-c", "4096"}), 4096u);  // auto slots share one unified cache
  EXPECT_EQ(cells({}), 1024u);              // -c 0: the training context
}

// ------------------------------------------------------------------------------------------
// Compute buffers and totals

TEST(LlamaServerPlanTest, TheOutputGpusComputeBufferHoldsTheLogitsOfAWholeUbatch) {
  MadeModel m(spec_with_layers(4));
  const auto p = plan_of(m.file(), args_of({"-c", "1024", "-np", "1", "-ub", "512"}), 2);
  // [n_embd + n_vocab, n_ubatch] F32 dominates this model's graph.
  EXPECT_EQ(p.at("CUDA1").compute, 512ull * (64 + 4096) * 4);
  EXPECT_LT(p.at("CUDA0").compute, p.at("CUDA1").compute);
  // The host: embeddings and the KQ mask of a ubatch, and one logits row per slot.
  EXPECT_EQ(p.at("CPU").compute, 512ull * 64 * 4 + 512ull * 1024 * 4 + 4096ull * 4);
}

TEST(LlamaServerPlanTest, WithoutFlashAttentionTheScoresGrowWithContextAndHeads) {
  MadeModel m(spec_with_layers(4));
  const auto fa = plan_of(m.file(), args_of({"-c", "8192", "-np", "1", "-fa", "on"}), 2);
  const auto no = plan_of(m.file(), args_of({"-c", "8192", "-np", "1", "-fa", "off"}), 2);
  // KQ: F32 [8192 cells, 512 tokens, 4 heads] = 64 MiB on each GPU holding layers.
  EXPECT_GE(no.at("CUDA0").compute, 64 * kMiB);
  EXPECT_LT(fa.at("CUDA0").compute, 16 * kMiB);
  EXPECT_EQ(no.at("CUDA0").compute - fa.at("CUDA0").compute,
            8192ull * 512 * 4 * 4 - 8192ull * 512 * 2);
}

TEST(LlamaServerPlanTest, MapFormSumsEachDevice) {
  MadeModel m(spec_with_layers(4));
  const LlamaServerArgs a = args_of({"-ngl", "3", "-c", "2048"});
  auto devices = plan_llama_server_devices(m.file(), a, 2);
  auto totals = plan_llama_server(m.file(), a, 2);
  ASSERT_TRUE(devices.ok() && totals.ok());
  ASSERT_EQ(totals->size(), 3u);
  for (const auto& d : devices->devices) EXPECT_EQ(totals->at(d.device), d.total());
}

TEST(LlamaServerPlanTest, RefusesOutOfRangeArguments) {
  MadeModel m(spec_with_layers(2));
  for (const LlamaServerArgs& a : {args_of({"-np", "0"}), args_of({"-c", "-5"}),
                                   args_of({"-ub", "0"}), args_of({"-c", "999999999"})}) {
    auto p = plan_llama_server(m.file(), a, 1);
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(plan_llama_server(m.file(), {}, -1).ok());
}

// ------------------------------------------------------------------------------------------
// Fixture models and llama.cpp's own figures

TEST(LlamaServerPlanTest, WeightsOverDevicesSumToTheFilesTensorBytesForEveryFixture) {
  HANGAR_REQUIRE_FIXTURES();
  std::vector<std::string> models;
  for (const char* sub : {"/models", "/models/kquant", "/models/arch"}) {
    if (!std::filesystem::is_directory(fixtures + sub)) continue;
    for (const auto& e : std::filesystem::directory_iterator(fixtures + sub)) {
      if (e.path().extension() == ".gguf") models.push_back(e.path().string());
    }
  }
  ASSERT_GE(models.size(), 10u);
  for (const std::string& path : models) {
    auto f = gguf::GgufFile::open(path);
    ASSERT_TRUE(f.ok()) << f.status().message();
    uint64_t file_bytes = 0;
    for (const auto& t : (*f)->tensors()) file_bytes += t.bytes;
    const gguf::TensorInfo* embd = (*f)->find_tensor("token_embd.weight");
    ASSERT_NE(embd, nullptr) << path;
    const bool tied = (*f)->find_tensor("output.weight") == nullptr;
    for (int gpus = 0; gpus <= 3; ++gpus) {
      for (const char* ngl : {"0", "1", "2", "99"}) {
        const auto p = plan_of(**f, args_of({"-ngl", ngl, "-c", "512", "-np", "1"}), gpus);
        const bool output_on_gpu = gpus > 0 && std::string(ngl) == "99";
        EXPECT_EQ(sum_weights(p), file_bytes + (tied && output_on_gpu ? embd->bytes : 0))
            << path << " -ngl " << ngl << " over " << gpus << " GPUs";
        EXPECT_GE(p.at("CPU").weights, embd->bytes) << path;
      }
    }
  }
}

// fixtures README §4.1: for llama-spm-q4_0 llama.cpp printed "CPU_REPACK model buffer size =
// 1.15 MiB": every 2-D tensor but token_embd, repacked. The host weights hangar plans are the
// same tensor bytes: the repacked ones plus token_embd and the norms in CPU_Mapped.
TEST(LlamaServerPlanTest, HostWeightsMatchLlamaCppsBuffersForTheQ4_0Fixture) {
  HANGAR_REQUIRE_FIXTURES();
  auto f = gguf::GgufFile::open(fixtures + "/models/llama-spm-q4_0.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  uint64_t repacked = 0;
  uint64_t mapped = 0;
  for (const auto& t : (*f)->tensors()) {
    (t.shape.size() == 2 && t.name != "token_embd.weight" ? repacked : mapped) += t.bytes;
  }
  EXPECT_EQ(repacked, 1'207'296u);
  char printed[32];
  std::snprintf(printed, sizeof printed, "%.2f", static_cast<double>(repacked) / kMiB);
  EXPECT_STREQ(printed, "1.15");
  const auto p = plan_of(**f, args_of({"-c", "256", "-np", "1"}), 0);
  EXPECT_EQ(p.at("CPU").weights, repacked + mapped);
}

// A GGUF header written by hand with sparse (unwritten) tensor data: the shapes of a model too
// big to make in a unit test, whose figures llama.cpp printed in a public log.
void write_sparse_gguf(
    const std::string& path, const std::vector<std::pair<std::string, int64_t>>& ints,
    const std::vector<std::tuple<std::string, std::vector<int64_t>, gguf::GgmlType>>& tensors) {
  std::string h;
  auto u32 = [&](uint32_t v) { h.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { h.append(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    h += s;
  };
  h += "GGUF";
  u32(3);
  u64(tensors.size());
  u64(ints.size() + 1);
  str("general.architecture");
  u32(8);
  str("llama");
  for (const auto& [k, v] : ints) {
    str(k);
    u32(4);  // uint32
    u32(static_cast<uint32_t>(v));
  }
  uint64_t offset = 0;
  for (const auto& [name, shape, type] : tensors) {
    str(name);
    u32(static_cast<uint32_t>(shape.size()));
    for (int64_t d : shape) u64(static_cast<uint64_t>(d));
    u32(static_cast<uint32_t>(type));
    u64(offset);
    uint64_t rows = 1;
    for (size_t i = 1; i < shape.size(); ++i) rows *= static_cast<uint64_t>(shape[i]);
    offset += (*gguf::row_bytes(type, shape[0]) * rows + 31) / 32 * 32;
  }
  h.resize((h.size() + 31) / 32 * 32, '\0');
  std::ofstream(path, std::ios::binary).write(h.data(), static_cast<std::streamsize>(h.size()));
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(h.size() + offset)), 0);
}

// A public llama.cpp log of a Llama-3-8B Q4_K model fully offloaded to one CUDA GPU with
// n_ctx 512, n_ubatch 512, flash_attn 0 printed:
//   CPU buffer size = 281.81 MiB; CUDA0 KV buffer size = 64.00 MiB;
//   CUDA_Host output buffer size = 0.49 MiB; CUDA0 compute buffer size = 258.50 MiB;
//   CUDA_Host compute buffer size = 9.01 MiB.
TEST(LlamaServerPlanTest, ReproducesLlamaCppsPrintedBuffersForLlama3_8B) {
  const std::string dir = testing::make_temp_dir("hangar-lsp8b");
  const std::string path = dir + "/llama3-8b-shape.gguf";
  std::vector<std::tuple<std::string, std::vector<int64_t>, gguf::GgmlType>> tensors = {
      {"token_embd.weight", {4096, 128256}, gguf::GgmlType::kQ4_K},
      {"output_norm.weight", {4096}, gguf::GgmlType::kF32},
      {"output.weight", {4096, 128256}, gguf::GgmlType::kQ6_K}};
  for (int il = 0; il < 32; ++il) {
    tensors.push_back(
        {"blk." + std::to_string(il) + ".attn_norm.weight", {4096}, gguf::GgmlType::kF32});
  }
  write_sparse_gguf(path,
                    {{"llama.context_length", 8192},
                     {"llama.embedding_length", 4096},
                     {"llama.block_count", 32},
                     {"llama.feed_forward_length", 14336},
                     {"llama.attention.head_count", 32},
                     {"llama.attention.head_count_kv", 8},
                     {"llama.rope.dimension_count", 128}},
                    tensors);
  auto f = gguf::GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const auto p =
      plan_of(**f, args_of({"-c", "512", "-np", "1", "-ub", "512", "-fa", "off", "-ngl", "99"}), 1);
  std::filesystem::remove_all(dir);
  auto mib = [](uint64_t b) { return static_cast<double>(b) / kMiB; };
  EXPECT_NEAR(mib(p.at("CPU").weights), 281.81, 0.005);
  EXPECT_EQ(p.at("CUDA0").kv_cache, 64 * kMiB);
  EXPECT_EQ(p.at("CPU").kv_cache, 0u);
  EXPECT_NEAR(mib(p.at("CUDA0").compute), 258.50, 0.005);
  // Host compute 9.01 MiB + output buffer 0.49 MiB.
  EXPECT_NEAR(mib(p.at("CPU").compute), 9.01 + 0.49, 0.02);
}

}  // namespace
}  // namespace hangar::estimate
