// Reading each fixture GGUF (vocab/*.gguf and models/*.gguf) and writing it back with our writer
// gives the same bytes: the reader misses nothing and the writer lays out files as gguf-py does.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "support/test_support.h"

namespace hangar::gguf {
namespace {

TEST(GgufRoundTrip, EveryFixtureFileWritesBackByteForByte) {
  HANGAR_REQUIRE_FIXTURES();
  const std::vector<std::string> files = testing::fixture_gguf_files(fixtures);
  ASSERT_GE(files.size(), 15u);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    auto f = GgufFile::open(path);
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    GgufWriter w;
    for (const auto& [key, value] : (*f)->metadata()) w.set(key, value);
    for (const TensorInfo& t : (*f)->tensors()) {
      ASSERT_TRUE(w.add_tensor(t.name, t.type, t.shape,
                               std::vector<uint8_t>(t.data, t.data + t.bytes))
                      .ok());
    }
    auto bytes = w.to_bytes();
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    ASSERT_EQ(bytes->size(), (*f)->file_size());
    // The original bytes, through the mapping of the first tensor or by reading the file.
    std::FILE* in = std::fopen(path.c_str(), "rb");
    ASSERT_NE(in, nullptr);
    std::vector<uint8_t> orig((*f)->file_size());
    ASSERT_EQ(std::fread(orig.data(), 1, orig.size(), in), orig.size());
    std::fclose(in);
    const auto mismatch = std::mismatch(orig.begin(), orig.end(), bytes->begin());
    EXPECT_TRUE(mismatch.first == orig.end())
        << "first difference at byte " << (mismatch.first - orig.begin());
  }
}

}  // namespace
}  // namespace hangar::gguf
