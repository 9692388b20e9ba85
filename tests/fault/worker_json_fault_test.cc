// Hostile request bodies against a real `hangar run` worker over HTTP (issue 16: items 1 and 11,
// the `fault` label). JSON nested 400,000 deep in every field the worker parses must get a 400
// naming the problem — it killed the worker with SIGSEGV before — and a prompt far longer in
// bytes than the context must be refused before it is tokenized. After each, the worker keeps
// serving. The model is a tiny random llama made with the test vocabulary, so no fixtures are
// needed.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "e2e/worker_harness.h"
#include "gguf/model_maker.h"

namespace hangar::e2e {
namespace {

class WorkerJsonFaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::make_temp_dir("worker-fault"));
    gguf::ModelSpec spec;
    spec.arch = "llama";
    spec.n_embd = 64;
    spec.n_layer = 1;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.n_ff = 96;
    spec.n_ctx = 256;
    spec.vocab_from = testing::test_data_dir() + "/ggml-vocab-llama-spm.gguf";
    spec.threads = 1;
    const std::string model = *dir_ + "/tiny.gguf";
    ASSERT_TRUE(gguf::write_model(spec, model).ok());
    worker_ = new WorkerProcess({"-m", model, "-c", "256", "-np", "1", "-t", "1", "-a", "tiny"});
    base_ = new std::string(worker_->wait_ready());
  }
  static void TearDownTestSuite() {
    if (worker_ != nullptr) {
      EXPECT_EQ(worker_->stop(), 0) << "the worker must exit cleanly";
    }
    delete worker_;
    worker_ = nullptr;
    if (dir_ != nullptr) std::filesystem::remove_all(*dir_);
    delete dir_;
    delete base_;
  }
  void SetUp() override {
    if (base_ == nullptr || base_->empty()) GTEST_SKIP() << "the worker did not start";
  }

  // The worker still answers: /health and a one-token completion.
  static void expect_still_serving() {
    EXPECT_EQ(get_json(*base_ + "/health").status, 200);
    const JsonReply r =
        post_json(*base_ + "/v1/completions",
                  {{"model", "tiny"}, {"prompt", "hello"}, {"max_tokens", 1}, {"temperature", 0}});
    EXPECT_EQ(r.status, 200) << r.text;
  }

  static WorkerProcess* worker_;
  static std::string* base_;
  static std::string* dir_;
};

WorkerProcess* WorkerJsonFaultTest::worker_ = nullptr;
std::string* WorkerJsonFaultTest::base_ = nullptr;
std::string* WorkerJsonFaultTest::dir_ = nullptr;

std::string deep(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST_F(WorkerJsonFaultTest, DeepJsonInEveryParsedFieldIsA400AndTheWorkerKeepsServing) {
  const std::string d = deep(400'000);  // 800 KB
  const std::string user = R"({"role":"user","content":"hi"})";
  struct Case {
    std::string path;
    std::string body;
  };
  const std::vector<Case> cases = {
      {"/v1/chat/completions", R"({"model":"tiny","messages":)" + d + "}"},
      {"/v1/chat/completions", R"({"model":"tiny","messages":[)" + d + "]}"},
      {"/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":)" + d + "}]}"},
      {"/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":[)" + d + "]}]}"},
      {"/v1/chat/completions", R"({"model":"tiny","messages":[)" + user + R"(],"stop":)" + d + "}"},
      {"/v1/chat/completions",
       R"({"model":"tiny","messages":[)" + user + R"(],"logit_bias":{"1":)" + d + "}}"},
      {"/v1/chat/completions",
       R"({"model":"tiny","messages":[)" + user + R"(],"stream":true,"stream_options":)" + d + "}"},
      {"/v1/chat/completions",
       R"({"model":"tiny","messages":[)" + user + R"(],"tools":)" + d + "}"},
      {"/v1/chat/completions", R"({"model":)" + d + R"(,"messages":[)" + user + "]}"},
      {"/v1/completions", R"({"model":"tiny","prompt":)" + d + "}"},
      {"/v1/completions", R"({"model":"tiny","prompt":["a",)" + d + "]}"},
      {"/v1/completions", R"({"model":"tiny","prompt":"a","max_tokens":)" + d + "}"},
      {"/completion", R"({"prompt":)" + d + "}"},
      {"/completion", R"({"prompt":"a","n_probs":)" + d + "}"},
      {"/tokenize", R"({"content":)" + d + "}"},
      {"/detokenize", R"({"tokens":)" + d + "}"},
      {"/detokenize", R"({"tokens":[1,)" + d + "]}"},
      {"/apply-template", R"({"messages":[)" + d + "]}"},
      {"/v1/embeddings", R"({"model":"tiny","input":)" + d + "}"},
      {"/embedding", R"({"content":[)" + d + "]}"},
      {"/v1/chat/completions", d},
  };
  for (const Case& c : cases) {
    const JsonReply r = http_call("POST", *base_ + c.path, c.body);
    EXPECT_EQ(r.status, 400) << c.path << " " << c.body.substr(0, 80) << ": "
                             << r.text.substr(0, 300);
    EXPECT_NE(r.text.find("nests arrays and objects more than 128 deep"), std::string::npos)
        << c.path << ": " << r.text.substr(0, 300);
  }
  expect_still_serving();
}

TEST_F(WorkerJsonFaultTest, AWrongTypedNestedValueIsDescribedBySizeNotEchoed) {
  // 100 deep: within the limit, so it parses; the error must not serialise it back.
  const JsonReply r = http_call("POST", *base_ + "/v1/completions",
                                R"({"model":"tiny","prompt":[)" + deep(100) + "]}");
  EXPECT_EQ(r.status, 400) << r.text;
  EXPECT_NE(r.text.find("got an array of 1 item"), std::string::npos) << r.text;
  EXPECT_EQ(r.text.find("[[["), std::string::npos) << r.text;
  expect_still_serving();
}

// Issue 16 item 11: a multi-megabyte prompt was tokenized (seconds, on an io thread) before the
// context check refused it. A slot here holds 256 tokens; 2 MB cannot fit in any vocabulary.
TEST_F(WorkerJsonFaultTest, APromptLongerInBytesThanTheContextIsRefusedBeforeTokenizing) {
  std::string big;
  while (big.size() < (2u << 20)) big += "hello world ";
  const json chat = {{"model", "tiny"},
                     {"messages", json::array({{{"role", "user"}, {"content", big}}})}};
  for (const auto& [path, body] : std::vector<std::pair<std::string, json>>{
           {"/v1/completions", {{"model", "tiny"}, {"prompt", big}}},
           {"/completion", {{"prompt", big}}},
           {"/v1/chat/completions", chat},
           {"/v1/embeddings", {{"model", "tiny"}, {"input", big}}}}) {
    const JsonReply r = post_json(*base_ + path, body);
    EXPECT_EQ(r.status, 400) << path << ": " << r.text.substr(0, 300);
    EXPECT_NE(r.text.find(" bytes: more than a slot's context of 256 tokens can hold"),
              std::string::npos)
        << path << ": " << r.text.substr(0, 300);
  }
  expect_still_serving();
}

// Issue 16 item 17: a typical llama.cpp command line passed through `serve` made every worker
// exit with "unexpected arguments". The worker honours the options with a meaning for it
// (sampling defaults, batch sizes) and accepts and ignores those without one on a CPU engine.
TEST_F(WorkerJsonFaultTest, LlamaServerOptionsAreHonouredOrIgnoredNotFatal) {
  const std::string model = *dir_ + "/tiny.gguf";
  WorkerProcess w({"-m",
                   model,
                   "-c",
                   "256",
                   "-t",
                   "1",
                   "--n-gpu-layers",
                   "99",
                   "--jinja",
                   "--flash-attn",
                   "on",
                   "--temp",
                   "0.7",
                   "--seed",
                   "42",
                   "-b",
                   "512",
                   "--ubatch-size",
                   "128",
                   "--top-k",
                   "5",
                   "--top-p",
                   "0.5",
                   "--min-p",
                   "0.1",
                   "--repeat-penalty",
                   "1.1",
                   "-n",
                   "3",
                   "--mlock",
                   "--no-mmap",
                   "--cont-batching",
                   "--split-mode",
                   "none",
                   "--main-gpu",
                   "0",
                   "--tensor-split",
                   "1"});
  const std::string base = w.wait_ready();
  ASSERT_FALSE(base.empty());
  const JsonReply props = get_json(base + "/props");
  ASSERT_EQ(props.status, 200);
  const json& p = props.body["default_generation_settings"]["params"];
  EXPECT_NEAR(p["temperature"].get<double>(), 0.7, 1e-6) << p.dump();
  EXPECT_EQ(p["top_k"], 5);
  EXPECT_NEAR(p["top_p"].get<double>(), 0.5, 1e-6);
  EXPECT_EQ(p["seed"], 42);
  EXPECT_EQ(p["n_predict"], 3);
  // -n 3 is the default length of a request that gives none.
  const JsonReply r = post_json(base + "/completion", {{"prompt", "hello"}});
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["tokens_predicted"].get<int>() <= 3, true) << r.text;
  EXPECT_EQ(w.stop(), 0);

  // An option hangar cannot apply, or a NaN, is an error at start, not a silent default.
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--lora", "x.bin"}, {"--temp", "nan"}, {"--top-p", "2"}}) {
    std::vector<std::string> args = {"-m", model, "-t", "1"};
    args.insert(args.end(), bad.begin(), bad.end());
    WorkerProcess b(args);
    EXPECT_EQ(b.wait_exit(), 2) << bad[0];
  }
}

}  // namespace
}  // namespace hangar::e2e
