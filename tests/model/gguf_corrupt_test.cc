// A real fixture's header, truncated at a sample of offsets or with single bytes flipped, gives
// either an error naming the problem and the byte offset or a successful parse — never a crash.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "support/test_support.h"

namespace hangar::gguf {
namespace {

std::vector<uint8_t> read_all(const std::string& path) {
  std::vector<uint8_t> bytes;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return bytes;
  std::fseek(f, 0, SEEK_END);
  bytes.resize(static_cast<size_t>(std::ftell(f)));
  std::fseek(f, 0, SEEK_SET);
  if (std::fread(bytes.data(), 1, bytes.size(), f) != bytes.size()) bytes.clear();
  std::fclose(f);
  return bytes;
}

TEST(GgufFixtureCorruption, TruncatedHeaderOfLlamaSpmF32FailsNamingTheOffset) {
  HANGAR_REQUIRE_FIXTURES();
  const std::vector<uint8_t> bytes = read_all(fixtures + "/models/llama-spm-f32.gguf");
  ASSERT_FALSE(bytes.empty());
  auto whole = GgufFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(whole.ok());
  const uint64_t header = (*whole)->data_offset();
  int checked = 0;
  // Every offset of the first 4 KB, then a stride through the rest of the ~700 KB header.
  for (uint64_t n = 0; n < header; n += (n < 4096 ? 1 : 997)) {
    auto f = GgufFile::parse(bytes.data(), n);
    ASSERT_FALSE(f.ok()) << "truncated at " << n << " parsed";
    ASSERT_NE(f.status().message().find(" at byte "), std::string::npos) << f.status().message();
    ++checked;
  }
  // Cut inside the tensor data: the error names the tensor that no longer fits.
  auto cut = GgufFile::parse(bytes.data(), bytes.size() - 1000);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("tensor 'output.weight'"), std::string::npos)
      << cut.status().message();
  EXPECT_GT(checked, 4500);
}

TEST(GgufFixtureCorruption, FlippedHeaderBytesOfLlamaSpmQ8ParseOrFailNamingTheOffset) {
  HANGAR_REQUIRE_FIXTURES();
  std::vector<uint8_t> bytes = read_all(fixtures + "/models/llama-spm-q8_0.gguf");
  ASSERT_FALSE(bytes.empty());
  auto whole = GgufFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(whole.ok());
  const uint64_t header = (*whole)->data_offset();
  int errors = 0;
  // The fixed fields and the first keys byte by byte, then a sample; the tensor infos at the end.
  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < 1024; ++i) offsets.push_back(i);
  for (uint64_t i = 1024; i < header; i += 4099) offsets.push_back(i);
  for (uint64_t i = header > 1400 ? header - 1400 : 0; i < header; ++i) offsets.push_back(i);
  for (uint64_t i : offsets) {
    for (uint8_t mask : {0xFF, 0x01}) {
      bytes[i] ^= mask;
      auto f = GgufFile::parse(bytes.data(), bytes.size());
      bytes[i] ^= mask;
      if (!f.ok()) {
        ++errors;
        ASSERT_NE(f.status().message().find(" at byte "), std::string::npos)
            << "flip at " << i << ": " << f.status().message();
      }
    }
  }
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace hangar::gguf
