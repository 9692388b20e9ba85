// Hostile GGUF files against the `hangar` commands that read them (issue 16: items 2 and 9, the
// `fault` label): overflowing shapes, huge arrays, huge counts. Each command must exit with a
// clear error naming the problem — never crash, never abort on an allocation, never plan or
// compute with a wrapped size. Files are made with our writer (or by hand for what the writer
// refuses) in a temporary folder; the large ones are sparse.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "support/test_support.h"

namespace hangar::gguf {
namespace {

class GgufFaultTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("gguf-fault"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `hangar <args>` and checks that it exited (no signal) with code 1 and `expect` in its
  // stderr.
  void expect_clean_error(const std::vector<std::string>& args, const std::string& expect) {
    std::vector<std::string> argv = {testing::hangar_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    const testing::CommandResult r = testing::run_command(argv);
    std::string cmd;
    for (const std::string& a : args) cmd += " " + a;
    EXPECT_EQ(r.exit_code, 1) << "hangar" << cmd << " (-1: killed by a signal)\n" << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << "hangar" << cmd << ":\n" << r.err;
  }

  std::string dir_;
};

// A one-layer llama with every tensor the engine binds, the given attention shape and the test
// vocabulary (32000 SentencePiece tokens). Tensors are F16 zeros ([n_embd, rows] for 2-D); with
// head_count 65536 and key_length 65538 the 32-bit products wrap to 131072 rows, which is what
// the tensors are given, so a loader that multiplies in `int` finds every shape "right".
std::string write_attention_model(const std::string& path, uint32_t n_head, uint32_t n_head_kv,
                                  uint32_t key_length, uint32_t value_length, int64_t q_rows,
                                  int64_t k_rows, int64_t v_rows, uint32_t block_count = 1) {
  constexpr int64_t kEmbd = 32, kFf = 64;
  GgufWriter w;
  w.set("general.architecture", Value::str("llama"));
  w.set("llama.context_length", Value::u32(256));
  w.set("llama.embedding_length", Value::u32(kEmbd));
  w.set("llama.block_count", Value::u32(block_count));
  w.set("llama.feed_forward_length", Value::u32(kFf));
  w.set("llama.attention.head_count", Value::u32(n_head));
  w.set("llama.attention.head_count_kv", Value::u32(n_head_kv));
  w.set("llama.attention.key_length", Value::u32(key_length));
  w.set("llama.attention.value_length", Value::u32(value_length));
  w.set("llama.rope.dimension_count", Value::u32(2));
  w.set("llama.attention.layer_norm_rms_epsilon", Value::f32(1e-5f));
  auto vocab = GgufFile::open(testing::test_data_dir() + "/ggml-vocab-llama-spm.gguf");
  EXPECT_TRUE(vocab.ok());
  if (!vocab.ok()) return path;
  int64_t n_vocab = 0;
  for (const auto& [key, value] : (*vocab)->metadata()) {
    if (key.starts_with("tokenizer.")) w.set(key, value);
  }
  n_vocab = static_cast<int64_t>((*vocab)->get_array("tokenizer.ggml.tokens")->items.size());
  auto f16 = [&](const std::string& name, int64_t ne0, int64_t ne1) {
    EXPECT_TRUE(w.add_tensor(name, GgmlType::kF16, {ne0, ne1},
                             std::vector<uint8_t>(static_cast<size_t>(ne0 * ne1 * 2)))
                    .ok());
  };
  auto f32 = [&](const std::string& name, int64_t n) {
    EXPECT_TRUE(
        w.add_tensor(name, GgmlType::kF32, {n}, std::vector<uint8_t>(static_cast<size_t>(n * 4)))
            .ok());
  };
  f16("token_embd.weight", kEmbd, n_vocab);
  f32("output_norm.weight", kEmbd);
  f32("blk.0.attn_norm.weight", kEmbd);
  f16("blk.0.attn_q.weight", kEmbd, q_rows);
  f16("blk.0.attn_k.weight", kEmbd, k_rows);
  f16("blk.0.attn_v.weight", kEmbd, v_rows);
  f16("blk.0.attn_output.weight", static_cast<int64_t>(n_head) * value_length, kEmbd);
  f32("blk.0.ffn_norm.weight", kEmbd);
  f16("blk.0.ffn_gate.weight", kEmbd, kFf);
  f16("blk.0.ffn_up.weight", kEmbd, kFf);
  f16("blk.0.ffn_down.weight", kFf, kEmbd);
  EXPECT_TRUE(w.write(path).ok());
  return path;
}

// Issue 16 item 2: 65536 heads of 65538 wrapped to 131072 in `int`; generate overflowed the heap.
TEST_F(GgufFaultTest, HeadProductsThatWrapIn32BitsAreRefusedByEveryCommand) {
  const std::string path =
      write_attention_model(dir_ + "/wrap.gguf", 65536, 65536, 65538, 2, 131072, 131072, 131072);
  const std::string expect = "head_count × key_length is 4295098368";
  expect_clean_error({"estimate", "-m", path, "-c", "256"}, expect);
  expect_clean_error({"generate", "-m", path, "-p", "hello", "-n", "2", "-t", "1"}, expect);
  const testing::CommandResult inspect =
      testing::run_command({testing::hangar_binary(), "inspect", path});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.err;  // the file itself is well-formed
}

// Issue 16 item 2: 65536 × 65536 wrapped to 0 and estimate planned a KV cache of 0 B.
TEST_F(GgufFaultTest, EstimateNeverPlansAKvCacheFromAWrappedProduct) {
  const std::string path =
      write_attention_model(dir_ + "/zero.gguf", 65536, 65536, 65536, 2, 64, 64, 64);
  expect_clean_error({"estimate", "-m", path, "-c", "256"},
                     "head_count × key_length is 4294967296");
  expect_clean_error({"estimate", "-m", path, "--json"}, "head_count × key_length");
}

// A block_count far above the tensors present sized the engine's layer table (bad_alloc).
TEST_F(GgufFaultTest, ABlockCountAboveTheTensorCountIsRefusedBeforeAnyAllocation) {
  const std::string path =
      write_attention_model(dir_ + "/layers.gguf", 4, 4, 8, 8, 32, 32, 32, (1u << 30) - 1);
  expect_clean_error({"generate", "-m", path, "-p", "hello", "-n", "2", "-t", "1"},
                     "block_count 1073741823");
}

// Writes `header` and extends the file, sparsely, to `size` bytes.
std::string sparse_file(const std::string& path, const std::vector<uint8_t>& header,
                        uint64_t size) {
  std::FILE* out = std::fopen(path.c_str(), "wb");
  EXPECT_NE(out, nullptr);
  if (out == nullptr) return path;
  std::fwrite(header.data(), 1, header.size(), out);
  std::fclose(out);
  EXPECT_EQ(truncate(path.c_str(), static_cast<off_t>(size)), 0);
  return path;
}

// A GGUF v3 header: `tensor_count` tensors declared, one key "big" holding an array of `count`
// elements of type `elem` (the elements are the file's zero bytes).
std::vector<uint8_t> array_header(uint32_t elem, uint64_t count, uint64_t tensor_count = 0) {
  std::vector<uint8_t> b;
  auto put = [&b](const void* p, size_t n) {
    const size_t at = b.size();
    b.resize(at + n);
    std::memcpy(b.data() + at, p, n);
  };
  const uint32_t version = 3, array_type = 9;
  const uint64_t kv_count = 1, key_len = 3;
  put("GGUF", 4);
  put(&version, 4);
  put(&tensor_count, 8);
  put(&kv_count, 8);
  put(&key_len, 8);
  put("big", 3);
  put(&array_type, 4);
  put(&elem, 4);
  put(&count, 8);
  return b;
}

// Issue 16 item 9: a large sparse file aborted every reader with an uncaught std::bad_alloc.
TEST_F(GgufFaultTest, HugeArraysAndCountsInASparseFileAreACleanError) {
  constexpr uint64_t kSize = uint64_t{1} << 37;  // 128 GiB on paper, a few bytes on disk
  const std::string arrays = sparse_file(dir_ + "/arrays.gguf", array_header(0, kSize - 64), kSize);
  const std::string strings =
      sparse_file(dir_ + "/strings.gguf", array_header(8, (kSize - 64) / 8), kSize);
  const std::string tensors =
      sparse_file(dir_ + "/tensors.gguf", array_header(0, 1, uint64_t{1} << 32), kSize);
  for (const std::string& path : {arrays, strings}) {
    for (const char* cmd : {"inspect", "estimate", "generate"}) {
      std::vector<std::string> args = {cmd};
      if (std::string(cmd) != "inspect") args.push_back("-m");
      args.push_back(path);
      if (std::string(cmd) == "generate") args.insert(args.end(), {"-p", "hi", "-n", "1"});
      expect_clean_error(args, "the header may use at most 512 MiB");
    }
  }
  expect_clean_error({"inspect", tensors}, "tensor count 4294967296 is above the limit");
}

// Issue 16 item 21: key and tensor names were printed raw, so a file could move the terminal's
// cursor, clear the screen or fake lines of the listing. They are quoted like the values.
TEST_F(GgufFaultTest, InspectQuotesKeyAndTensorNamesLikeValues) {
  GgufWriter w;
  w.set("general.architecture", Value::str("llama"));
  w.set("evil\nkey\x1b[2J", Value::u8(1));
  ASSERT_TRUE(
      w.add_tensor("t\rname\x1b]0;title\x07", GgmlType::kF32, {1}, std::vector<uint8_t>(4)).ok());
  const std::string path = dir_ + "/names.gguf";
  ASSERT_TRUE(w.write(path).ok());
  const testing::CommandResult r =
      testing::run_command({testing::hangar_binary(), "inspect", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"general.architecture\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"evil\\nkey\\u001b[2J\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"t\\rname\\u001b]0;title\\u0007\""), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  EXPECT_EQ(r.out.find("evil\nkey"), std::string::npos);
}

}  // namespace
}  // namespace hangar::gguf
