// `hangar inspect`: on every fixture .gguf, --json reports every metadata key with its full value
// and every tensor, equal to what the reader parses; known values from the fixtures README; bad
// files exit 1 with the problem and the offset on stderr.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "support/test_support.h"

namespace hangar::gguf {
namespace {

using nlohmann::json;

// True when the JSON value `j` holds exactly `v` (floats as the same float; arrays in full).
bool same(const json& j, const Value& v) {
  switch (v.type) {
    case ValueType::kString: return j.is_string() && j.get<std::string>() == *v.as_string();
    case ValueType::kBool: return j.is_boolean() && j.get<bool>() == *v.as_bool();
    case ValueType::kFloat32:
      return j.is_number() && static_cast<float>(j.get<double>()) == std::get<float>(v.data);
    case ValueType::kFloat64: return j.is_number() && j.get<double>() == std::get<double>(v.data);
    case ValueType::kUint64:
      return j.is_number_unsigned() && j.get<uint64_t>() == std::get<uint64_t>(v.data);
    case ValueType::kArray: {
      const Array& a = *v.as_array();
      if (!j.is_array() || j.size() != a.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i) {
        if (!same(j[i], a.items[i])) return false;
      }
      return true;
    }
    default: return j.is_number_integer() && j.get<int64_t>() == *v.as_int();
  }
}

json inspect_json(const std::string& path) {
  const testing::CommandResult r =
      testing::run_command({testing::hangar_binary(), "inspect", path, "--json"});
  EXPECT_EQ(r.exit_code, 0) << path << ": " << r.err;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << path;
  return j;
}

TEST(HangarInspect, JsonReportsEveryKeyAndTensorOfEveryFixture) {
  HANGAR_REQUIRE_FIXTURES();
  const std::vector<std::string> files = testing::fixture_gguf_files(fixtures);
  ASSERT_GE(files.size(), 15u);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    auto f = GgufFile::open(path);
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    const json j = inspect_json(path);
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j["version"], (*f)->version());
    EXPECT_EQ(j["alignment"], (*f)->alignment());
    EXPECT_EQ(j["data_offset"], (*f)->data_offset());
    ASSERT_EQ(j["metadata"].size(), (*f)->metadata().size());
    for (const auto& [key, value] : (*f)->metadata()) {
      ASSERT_TRUE(j["metadata"].contains(key)) << key;
      EXPECT_TRUE(same(j["metadata"][key], value)) << key;
    }
    ASSERT_EQ(j["tensors"].size(), (*f)->tensors().size());
    for (size_t i = 0; i < (*f)->tensors().size(); ++i) {
      const TensorInfo& t = (*f)->tensors()[i];
      const json& jt = j["tensors"][i];
      EXPECT_EQ(jt["name"], t.name);
      EXPECT_EQ(jt["type"], std::string(type_traits(t.type).name));
      EXPECT_EQ(jt["shape"], json(t.shape));
      EXPECT_EQ(jt["offset"], t.offset);
      EXPECT_EQ(jt["bytes"], t.bytes);
    }
  }
}

TEST(HangarInspect, JsonHasTheKnownValuesOfLlamaSpmF32) {
  HANGAR_REQUIRE_FIXTURES();
  const json j = inspect_json(fixtures + "/models/llama-spm-f32.gguf");
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["alignment"], 32);
  EXPECT_EQ(j["tensors"].size(), 21u);
  EXPECT_EQ(j["tensors"][0]["name"], "token_embd.weight");
  EXPECT_EQ(j["tensors"][0]["shape"], json({64, 32000}));
  EXPECT_EQ(j["tensors"][0]["type"], "f32");
  EXPECT_EQ(j["metadata"]["llama.embedding_length"], 64);
  EXPECT_EQ(j["metadata"]["llama.block_count"], 2);
  EXPECT_EQ(j["metadata"]["general.architecture"], "llama");
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"].size(), 32000u);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"][1], "<s>");
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.add_bos_token"], true);
  EXPECT_FLOAT_EQ(j["metadata"]["llama.attention.layer_norm_rms_epsilon"].get<float>(), 1e-5f);
  const json q = inspect_json(fixtures + "/models/llama-spm-q4_0.gguf");
  EXPECT_EQ(q["tensors"][0]["type"], "q4_0");
  EXPECT_EQ(q["metadata"]["general.file_type"], 2);
}

TEST(HangarInspect, TextModeShowsHeaderTensorsAndTotalsWithArraysSummarized) {
  HANGAR_REQUIRE_FIXTURES();
  const testing::CommandResult r = testing::run_command(
      {testing::hangar_binary(), "inspect", fixtures + "/models/llama-spm-q8_0.gguf"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("version:     3"), std::string::npos);
  EXPECT_NE(r.out.find("tokenizer.ggml.tokens"), std::string::npos);
  EXPECT_NE(r.out.find("[string × 32000]"), std::string::npos);
  EXPECT_NE(r.out.find("blk.1.ffn_down.weight"), std::string::npos);
  EXPECT_NE(r.out.find("q8_0"), std::string::npos);
  EXPECT_NE(r.out.find("tensors (21)"), std::string::npos);
  EXPECT_LT(r.out.size(), 20000u);  // 32000-entry arrays are summarized, not printed
}

TEST(HangarInspect, BadFilesExitOneWithTheProblemAndOffset) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string dir = testing::make_temp_dir("gguf-inspect");
  std::FILE* in = std::fopen((fixtures + "/models/llama-spm-q4_0.gguf").c_str(), "rb");
  ASSERT_NE(in, nullptr);
  std::vector<uint8_t> head(4096);
  ASSERT_EQ(std::fread(head.data(), 1, head.size(), in), head.size());
  std::fclose(in);
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string expect;
  };
  std::vector<Case> cases;
  cases.push_back({"truncated.gguf", head, "at byte"});
  std::vector<uint8_t> magic = head;
  magic[1] = 'X';
  cases.push_back({"magic.gguf", magic, "bad magic"});
  std::vector<uint8_t> version = head;
  version[4] = 9;
  cases.push_back(
      {"version.gguf", version, "unsupported GGUF version 9 (only 2 and 3 are read) at byte 4"});
  cases.push_back({"empty.gguf", {}, "too short"});
  for (const Case& c : cases) {
    const std::string path = dir + "/" + c.name;
    std::FILE* out = std::fopen(path.c_str(), "wb");
    ASSERT_NE(out, nullptr);
    if (!c.bytes.empty()) std::fwrite(c.bytes.data(), 1, c.bytes.size(), out);
    std::fclose(out);
    for (bool as_json : {false, true}) {
      std::vector<std::string> argv = {testing::hangar_binary(), "inspect", path};
      if (as_json) argv.push_back("--json");
      const testing::CommandResult r = testing::run_command(argv);
      EXPECT_EQ(r.exit_code, 1) << c.name;
      EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
      EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
      EXPECT_TRUE(r.out.empty()) << r.out;
    }
    std::remove(path.c_str());
  }
  const testing::CommandResult missing =
      testing::run_command({testing::hangar_binary(), "inspect", dir + "/missing.gguf"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("missing.gguf"), std::string::npos);
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace hangar::gguf
