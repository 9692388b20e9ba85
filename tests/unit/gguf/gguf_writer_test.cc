// The GGUF writer: layout rules, key replacement, input checks, and writing a file atomically.
#include "gguf/gguf_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "support/test_support.h"

namespace hangar::gguf {
namespace {

TEST(GgufWriter, SettingAKeyTwiceKeepsItsPositionAndTakesTheNewValue) {
  GgufWriter w;
  w.set("a", Value::u32(1));
  w.set("b", Value::u32(2));
  w.set("a", Value::str("x"));
  auto bytes = *w.to_bytes();
  auto f = GgufFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok());
  ASSERT_EQ((*f)->metadata().size(), 2u);
  EXPECT_EQ((*f)->metadata()[0].first, "a");
  EXPECT_EQ(*(*f)->get_string("a"), "x");
}

TEST(GgufWriter, RejectsDataOfTheWrongSizeAndDuplicateNames) {
  GgufWriter w;
  Status s = w.add_tensor("t", GgmlType::kQ8_0, {64, 2}, std::vector<uint8_t>(100));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("needs 136 bytes"), std::string::npos) << s.message();
  EXPECT_FALSE(w.add_tensor("t", GgmlType::kQ8_0, {33}, std::vector<uint8_t>(34)).ok());
  ASSERT_TRUE(w.add_tensor("t", GgmlType::kQ8_0, {32}, std::vector<uint8_t>(34)).ok());
  EXPECT_EQ(w.add_tensor("t", GgmlType::kF32, {1}, std::vector<uint8_t>(4)).code(),
            StatusCode::kAlreadyExists);
}

TEST(GgufWriter, RejectsAnArrayWhoseItemsDoNotMatchItsElementType) {
  GgufWriter w;
  w.set("bad", Value::array(ValueType::kInt32, {Value::i32(1), Value::str("x")}));
  auto bytes = w.to_bytes();
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(bytes.status().message().find("'bad'"), std::string::npos);
}

TEST(GgufWriter, PadsEachTensorToTheAlignmentAndFileWithoutTensorsHasNoPadding) {
  GgufWriter w;
  w.set("k", Value::u8(1));
  auto empty = *w.to_bytes();
  EXPECT_EQ(empty.size(), 24u + 8 + 1 + 4 + 1);
  ASSERT_TRUE(w.add_tensor("a", GgmlType::kF16, {3}, std::vector<uint8_t>(6, 1)).ok());
  ASSERT_TRUE(w.add_tensor("b", GgmlType::kF16, {3}, std::vector<uint8_t>(6, 2)).ok());
  auto bytes = *w.to_bytes();
  EXPECT_EQ(bytes.size() % 32, 0u);
  auto f = GgufFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->tensors()[0].offset, 0u);
  EXPECT_EQ((*f)->tensors()[1].offset, 32u);
  EXPECT_EQ(bytes.size(), (*f)->data_offset() + 64);
}

TEST(GgufWriter, WriteProducesTheSameBytesAsToBytesAndLeavesNoPartialFile) {
  GgufWriter w;
  w.set("general.architecture", Value::str("llama"));
  ASSERT_TRUE(w.add_tensor("a", GgmlType::kF32, {5, 2}, std::vector<uint8_t>(40, 3)).ok());
  const std::string dir = testing::make_temp_dir("gguf-writer");
  const std::string path = dir + "/m.gguf";
  ASSERT_TRUE(w.write(path).ok());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  auto bytes = *w.to_bytes();
  EXPECT_EQ((*f)->file_size(), bytes.size());
  EXPECT_EQ(std::memcmp((*f)->tensors()[0].data, bytes.data() + (*f)->data_offset(), 40), 0);
  struct stat st;
  EXPECT_NE(stat((path + ".partial").c_str(), &st), 0);
  EXPECT_FALSE(w.write(dir + "/no/such/dir/m.gguf").ok());
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace hangar::gguf
