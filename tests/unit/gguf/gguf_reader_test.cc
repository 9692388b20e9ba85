// The GGUF reader: files made by our writer read back identically (every value type, nested
// arrays, every tensor type); each kind of corruption gives an error naming the problem and the
// byte offset; truncation at every offset and single-byte flips of a whole small file never crash.
#include "gguf/gguf.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"
#include "support/test_support.h"

namespace hangar::gguf {
namespace {

// Every value type, nested arrays (an array of arrays of arrays, an empty array) and edge values.
std::vector<std::pair<std::string, Value>> all_value_types() {
  std::vector<std::pair<std::string, Value>> kv;
  kv.emplace_back("general.architecture", Value::str("llama"));
  kv.emplace_back("t.u8", Value::u8(200));
  kv.emplace_back("t.i8", Value::i8(-100));
  kv.emplace_back("t.u16", Value::u16(65000));
  kv.emplace_back("t.i16", Value::i16(-32000));
  kv.emplace_back("t.u32", Value::u32(4000000000u));
  kv.emplace_back("t.i32", Value::i32(-2000000000));
  kv.emplace_back("t.f32", Value::f32(1e-5f));
  kv.emplace_back("t.f32_nan", Value::f32(std::numeric_limits<float>::quiet_NaN()));
  kv.emplace_back("t.bool_true", Value::boolean(true));
  kv.emplace_back("t.bool_false", Value::boolean(false));
  kv.emplace_back("t.string", Value::str(std::string("h\xC3\xA9llo\0world", 12)));
  kv.emplace_back("t.empty_string", Value::str(""));
  kv.emplace_back("t.u64", Value::u64(std::numeric_limits<uint64_t>::max()));
  kv.emplace_back("t.i64", Value::i64(std::numeric_limits<int64_t>::min()));
  kv.emplace_back("t.f64", Value::f64(-2.5e300));
  kv.emplace_back("t.arr_i32", Value::array(ValueType::kInt32, {Value::i32(1), Value::i32(-2)}));
  kv.emplace_back("t.arr_str", Value::array(ValueType::kString, {Value::str("a"), Value::str("")}));
  kv.emplace_back("t.arr_empty", Value::array(ValueType::kFloat64, {}));
  kv.emplace_back("t.arr_bool", Value::array(ValueType::kBool, {Value::boolean(true)}));
  kv.emplace_back(
      "t.arr_nested",
      Value::array(ValueType::kArray,
                   {Value::array(ValueType::kArray,
                                 {Value::array(ValueType::kUint8, {Value::u8(1), Value::u8(2)})}),
                    Value::array(ValueType::kArray, {})}));
  return kv;
}

struct Made {
  std::vector<uint8_t> bytes;
  std::vector<std::pair<std::string, Value>> metadata;
  std::vector<std::tuple<std::string, GgmlType, std::vector<int64_t>, std::vector<uint8_t>>> tensors;
};

// A small file with every value type and one tensor of every ggml type (arbitrary bytes).
Made make_small_file(bool every_type = true) {
  Made m;
  m.metadata = all_value_types();
  GgufWriter w;
  for (const auto& [k, v] : m.metadata) w.set(k, v);
  uint8_t fill = 1;
  for (uint32_t id = 0; id < 64 && every_type; ++id) {
    auto t = type_traits(id);
    if (!t) continue;
    std::vector<int64_t> shape = {static_cast<int64_t>(t->block_size) * 2, 3};
    std::vector<uint8_t> data(*row_bytes(t->type, shape[0]) * 3);
    for (uint8_t& b : data) b = fill++;
    m.tensors.emplace_back("w." + std::string(t->name), t->type, shape, data);
  }
  m.tensors.emplace_back("v.one_dim", GgmlType::kF32, std::vector<int64_t>{5},
                         std::vector<uint8_t>(20, 7));
  m.tensors.emplace_back("v.four_dim", GgmlType::kF16, std::vector<int64_t>{2, 1, 3, 2},
                         std::vector<uint8_t>(24, 9));
  for (const auto& [name, type, shape, data] : m.tensors) {
    EXPECT_TRUE(w.add_tensor(name, type, shape, data).ok());
  }
  m.bytes = *w.to_bytes();
  return m;
}

TEST(GgufReader, ReadsBackEveryValueTypeAndTensorTypeIdentically) {
  const Made m = make_small_file();
  auto f = GgufFile::parse(m.bytes.data(), m.bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ((*f)->alignment(), 32u);
  EXPECT_EQ((*f)->data_offset() % 32, 0u);
  ASSERT_EQ((*f)->metadata().size(), m.metadata.size());
  for (size_t i = 0; i < m.metadata.size(); ++i) {
    EXPECT_EQ((*f)->metadata()[i].first, m.metadata[i].first);
    EXPECT_TRUE((*f)->metadata()[i].second == m.metadata[i].second) << m.metadata[i].first;
  }
  ASSERT_EQ((*f)->tensors().size(), m.tensors.size());
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto& [name, type, shape, data] = m.tensors[i];
    const TensorInfo& t = (*f)->tensors()[i];
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.type, type);
    EXPECT_EQ(t.shape, shape);
    EXPECT_EQ(t.bytes, data.size());
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(std::memcmp(t.data, data.data(), data.size()), 0) << name;
    EXPECT_EQ((*f)->find_tensor(name), &t);
  }
  EXPECT_EQ((*f)->architecture(), "llama");
  EXPECT_EQ((*f)->get_int("t.u32"), 4000000000);
  EXPECT_EQ((*f)->get_int("t.u64"), std::nullopt);  // above INT64_MAX
  EXPECT_EQ((*f)->find("t.u64")->as_uint(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ((*f)->get_bool("t.bool_true"), true);
  EXPECT_EQ((*f)->get_float("t.f32"), static_cast<double>(1e-5f));
  EXPECT_TRUE(std::isnan(*(*f)->get_float("t.f32_nan")));
  EXPECT_EQ((*f)->get_string("t.string")->size(), 12u);
  EXPECT_EQ((*f)->get_array("t.arr_nested")->items.size(), 2u);
  EXPECT_EQ((*f)->get_string("t.u8"), nullptr);
  EXPECT_EQ((*f)->find("missing"), nullptr);
}

TEST(GgufReader, WritingWhatWasReadGivesTheSameBytes) {
  const Made m = make_small_file();
  auto f = GgufFile::parse(m.bytes.data(), m.bytes.size());
  ASSERT_TRUE(f.ok());
  GgufWriter w;
  for (const auto& [k, v] : (*f)->metadata()) w.set(k, v);
  for (const TensorInfo& t : (*f)->tensors()) {
    ASSERT_TRUE(w.add_tensor(t.name, t.type, t.shape, {t.data, t.data + t.bytes}).ok());
  }
  EXPECT_EQ(*w.to_bytes(), m.bytes);
}

TEST(GgufReader, HonoursGeneralAlignment) {
  GgufWriter w;
  w.set("general.alignment", Value::u32(64));
  ASSERT_TRUE(w.add_tensor("a", GgmlType::kF32, {3}, std::vector<uint8_t>(12, 1)).ok());
  ASSERT_TRUE(w.add_tensor("b", GgmlType::kF32, {1}, std::vector<uint8_t>(4, 2)).ok());
  auto bytes = *w.to_bytes();
  auto f = GgufFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  EXPECT_EQ((*f)->tensors()[1].offset, 64u);
  EXPECT_EQ(bytes.size() % 64, 0u);
}

TEST(GgufReader, ReadsARealVocabularyFromTestData) {
  auto f = GgufFile::open(testing::test_data_dir() + "/ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_TRUE((*f)->tensors().empty());
  EXPECT_EQ(*(*f)->get_string("tokenizer.ggml.model"), "llama");
  ASSERT_NE((*f)->get_array("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ((*f)->get_array("tokenizer.ggml.tokens")->items.size(), 32000u);
  EXPECT_EQ(*(*f)->get_array("tokenizer.ggml.tokens")->items[1].as_string(), "<s>");
  EXPECT_EQ((*f)->get_int("tokenizer.ggml.bos_token_id"), 1);
}

TEST(GgufReader, OpenNamesAMissingFile) {
  auto f = GgufFile::open("/nonexistent/x.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/x.gguf"), std::string::npos);
}

// ---- Hand-made corrupt files ----------------------------------------------------------------

// Builds raw GGUF bytes field by field.
struct Raw {
  std::vector<uint8_t> b;
  template <typename T>
  Raw& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Raw& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  }
  Raw& pad(size_t to) {
    b.resize((b.size() + to - 1) / to * to, 0);
    return *this;
  }
};

// The parse fails, and its message contains every fragment.
void expect_error(const std::vector<uint8_t>& bytes, std::initializer_list<std::string> fragments) {
  auto f = GgufFile::parse(bytes.data(), bytes.size(), "bad.gguf");
  ASSERT_FALSE(f.ok()) << "parse succeeded";
  for (const std::string& s : fragments) {
    EXPECT_NE(f.status().message().find(s), std::string::npos)
        << "'" << s << "' not in: " << f.status().message();
  }
  EXPECT_NE(f.status().message().find("bad.gguf"), std::string::npos);
}

TEST(GgufReaderErrors, BadMagicIsReportedAtByteZero) {
  Raw r;
  r.header(0, 0);
  r.b[0] = 'X';
  expect_error(r.b, {"magic", "at byte 0"});
  expect_error({}, {"too short", "at byte 0"});
}

TEST(GgufReaderErrors, UnsupportedVersionIsReportedAtByteFour) {
  expect_error(Raw().header(0, 0, 1).b, {"version 1", "at byte 4"});
  expect_error(Raw().header(0, 0, 4).b, {"version 4", "at byte 4"});
  auto v2 = Raw().header(0, 0, 2).b;
  EXPECT_TRUE(GgufFile::parse(v2.data(), v2.size()).ok());
}

TEST(GgufReaderErrors, CountsLargerThanTheFileAreRejectedBeforeAllocating) {
  expect_error(Raw().header(uint64_t{1} << 60, 0).b, {"tensor count 1152921504606846976", "at byte 8"});
  expect_error(Raw().header(0, ~uint64_t{0}).b, {"metadata count", "at byte 16"});
}

TEST(GgufReaderErrors, StringLengthBeyondTheFileNamesTheOffset) {
  Raw r;
  r.header(0, 1).put<uint64_t>(~uint64_t{0} - 3);
  r.b.resize(r.b.size() + 16, 0);
  expect_error(r.b, {"string length 18446744073709551612", "at byte 24"});
}

TEST(GgufReaderErrors, HugeArrayCountIsRejected) {
  Raw r;
  r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(uint64_t{1} << 62);
  expect_error(r.b, {"key 'k'", "array of 4611686018427387904 string", "at byte 41"});
}

TEST(GgufReaderErrors, UnknownValueTypesAreRejected) {
  Raw r;
  r.header(0, 1).str("k").put<uint32_t>(13);
  expect_error(r.b, {"key 'k'", "unknown value type 13", "at byte 33"});
  Raw a;
  a.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(99).put<uint64_t>(0);
  expect_error(a.b, {"unknown array element type 99", "at byte 37"});
}

TEST(GgufReaderErrors, DeeplyNestedArraysAreRejected) {
  Raw r;
  r.header(0, 1).str("k").put<uint32_t>(9);
  for (int i = 0; i < 100; ++i) r.put<uint32_t>(9).put<uint64_t>(1);
  r.put<uint32_t>(0).put<uint64_t>(0);
  expect_error(r.b, {"nested more than"});
}

TEST(GgufReaderErrors, BoolOtherThanZeroOrOneIsRejected) {
  Raw r;
  r.header(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2);
  expect_error(r.b, {"bool value 2", "at byte 37"});
}

TEST(GgufReaderErrors, DuplicateKeysAndTensorNamesAreRejected) {
  Raw r;
  r.header(0, 2).str("k").put<uint32_t>(0).put<uint8_t>(1).str("k").put<uint32_t>(0).put<uint8_t>(1);
  expect_error(r.b, {"duplicate metadata key 'k'", "at byte 38"});
  Raw t;
  t.header(2, 0);
  for (int i = 0; i < 2; ++i) {
    t.str("w").put<uint32_t>(1).put<int64_t>(1).put<uint32_t>(0).put<uint64_t>(i * 32);
  }
  t.pad(32).b.resize(t.b.size() + 64, 0);
  expect_error(t.b, {"duplicate tensor name 'w'", "at byte 57"});
}

Raw one_tensor(uint32_t n_dims, std::vector<int64_t> ne, uint32_t type, uint64_t offset) {
  Raw r;
  r.header(1, 0).str("w").put<uint32_t>(n_dims);
  for (int64_t d : ne) r.put<int64_t>(d);
  r.put<uint32_t>(type).put<uint64_t>(offset);
  return r;
}

TEST(GgufReaderErrors, BadTensorInfosAreRejected) {
  expect_error(one_tensor(5, {1, 1, 1, 1, 1}, 0, 0).b, {"tensor 'w' has 5 dimensions", "at byte 33"});
  expect_error(one_tensor(2, {4, -1}, 0, 0).b, {"negative dimension -1", "at byte 45"});
  expect_error(one_tensor(3, {1 << 30, 1 << 30, 1 << 30}, 0, 0).b,
               {"element count overflows", "at byte 53"});
  expect_error(one_tensor(1, {4}, 31, 0).b, {"unknown ggml type 31", "at byte 45"});
  expect_error(one_tensor(1, {33}, 8, 0).b, {"not a multiple of the q8_0 block size 32", "at byte 45"});
  expect_error(one_tensor(1, {4}, 0, 7).b, {"offset 7 is not a multiple of the alignment 32", "at byte 49"});
  // Bytes overflow: 2^62 elements of f32 in one row.
  expect_error(one_tensor(1, {int64_t{1} << 62}, 0, 0).b, {"tensor 'w'"});
}

TEST(GgufReaderErrors, TensorDataPastTheEndOfTheFileIsRejected) {
  Raw r = one_tensor(2, {8, 4}, 0, 0);
  r.pad(32).b.resize(r.b.size() + 100, 0);  // 128 bytes needed
  expect_error(r.b, {"tensor 'w' (128 bytes at data offset 0) ends past the end of the file",
                     "(100 data bytes)", "at byte 96"});
  Raw s = one_tensor(1, {4}, 0, 1u << 20);
  s.pad(32).b.resize(s.b.size() + 32, 0);
  expect_error(s.b, {"ends past the end"});
}

TEST(GgufReaderErrors, BadAlignmentIsRejected) {
  for (uint32_t a : {0u, 3u, 48u}) {
    Raw r;
    r.header(0, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(a);
    expect_error(r.b, {"general.alignment must be a power of two", "got " + std::to_string(a),
                       "at byte 53"});
  }
  Raw s;
  s.header(0, 1).str("general.alignment").put<uint32_t>(8).str("x");
  expect_error(s.b, {"general.alignment", "got string"});
}

// ---- Truncation and flips -------------------------------------------------------------------

// Either OK or an error that names a byte offset; never a crash (run under ASan in the asan
// preset, where an out-of-bounds read would fail the test).
void expect_clean_result(const std::vector<uint8_t>& bytes, const std::string& what) {
  // An exact-size copy so a read past the end is a heap overflow that ASan reports.
  auto copy = std::make_unique<uint8_t[]>(bytes.size() + (bytes.empty() ? 1 : 0));
  std::memcpy(copy.get(), bytes.data(), bytes.size());
  auto f = GgufFile::parse(copy.get(), bytes.size());
  if (!f.ok()) {
    ASSERT_NE(f.status().message().find(" at byte "), std::string::npos)
        << what << ": " << f.status().message();
  }
}

TEST(GgufReaderRobustness, TruncationAtEveryOffsetGivesAnErrorNamingTheOffset) {
  const Made m = make_small_file(false);
  auto whole = GgufFile::parse(m.bytes.data(), m.bytes.size());
  ASSERT_TRUE(whole.ok());
  // Cutting only the last tensor's trailing padding leaves a valid file; anything shorter is not.
  const TensorInfo& last = (*whole)->tensors().back();
  const size_t data_end = (*whole)->data_offset() + last.offset + last.bytes;
  ASSERT_LT(data_end, m.bytes.size());
  for (size_t n = data_end; n <= m.bytes.size(); ++n) {
    EXPECT_TRUE(GgufFile::parse(m.bytes.data(), n).ok()) << n;
  }
  for (size_t n = 0; n < data_end; ++n) {
    std::vector<uint8_t> cut(m.bytes.begin(), m.bytes.begin() + n);
    auto f = GgufFile::parse(cut.data(), cut.size());
    ASSERT_FALSE(f.ok()) << "truncated at " << n << " parsed";
    ASSERT_NE(f.status().message().find(" at byte "), std::string::npos) << f.status().message();
  }
}

TEST(GgufReaderRobustness, EverySingleByteFlipParsesOrGivesAnErrorNamingTheOffset) {
  const Made m = make_small_file(true);
  size_t errors = 0;
  for (size_t i = 0; i < m.bytes.size(); ++i) {
    for (uint8_t mask : {0xFF, 0x01, 0x80}) {
      std::vector<uint8_t> flipped = m.bytes;
      flipped[i] ^= mask;
      expect_clean_result(flipped, "flip at " + std::to_string(i));
      if (::testing::Test::HasFatalFailure()) return;
      errors += GgufFile::parse(flipped.data(), flipped.size()).ok() ? 0 : 1;
    }
  }
  EXPECT_GT(errors, 0u);  // the test does reach the error paths
}

TEST(GgufReaderRobustness, TruncatingAndFlippingTheTestDataVocabularyNeverCrashes) {
  auto f = GgufFile::open(testing::test_data_dir() + "/ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(f.ok());
  std::FILE* in = std::fopen((testing::test_data_dir() + "/ggml-vocab-llama-spm.gguf").c_str(), "rb");
  ASSERT_NE(in, nullptr);
  std::vector<uint8_t> bytes((*f)->file_size());
  ASSERT_EQ(std::fread(bytes.data(), 1, bytes.size(), in), bytes.size());
  std::fclose(in);
  for (size_t n = 0; n < bytes.size(); n += 7919) {
    auto t = GgufFile::parse(bytes.data(), n);
    ASSERT_FALSE(t.ok()) << n;
    ASSERT_NE(t.status().message().find(" at byte "), std::string::npos) << t.status().message();
  }
  for (size_t i = 0; i < 4096; i += 3) {
    std::vector<uint8_t> flipped(bytes.begin(), bytes.begin() + 8192);
    flipped[i] ^= 0xFF;
    auto t = GgufFile::parse(flipped.data(), flipped.size());
    if (!t.ok()) {
      ASSERT_NE(t.status().message().find(" at byte "), std::string::npos);
    }
  }
}


// ---- Issue 16 item 9: compact metadata, capped allocation -------------------------------------

// A GGUF v3 header with no tensors and one key whose value is an array of `count` elements of
// `elem` (the elements themselves are not written).
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

// Heap bytes in use, from glibc's allocator: small blocks plus the large ones it maps directly.
size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

TEST(GgufReaderTest, MetadataArraysCostAboutTheirSizeInTheFile) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator does not report through mallinfo2";
#endif
  // 8 MiB of uint8 (was 48 bytes of heap per element: 384 MiB), and 1M one-byte strings.
  constexpr uint64_t kBytes = 8u << 20;
  std::vector<uint8_t> u8 = array_header(0, kBytes);
  u8.resize(u8.size() + kBytes, 7);
  constexpr uint64_t kStrings = 1u << 20;
  std::vector<uint8_t> str = array_header(8, kStrings);
  for (uint64_t i = 0; i < kStrings; ++i) {
    const uint64_t len = 1;
    str.insert(str.end(), reinterpret_cast<const uint8_t*>(&len),
               reinterpret_cast<const uint8_t*>(&len) + 8);
    str.push_back('a' + i % 26);
  }
  for (const std::vector<uint8_t>* file : {&u8, &str}) {
    const size_t before = heap_in_use();
    auto f = GgufFile::parse(file->data(), file->size(), "big.gguf");
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    const size_t grown = heap_in_use() - before;
    EXPECT_LT(grown, 2 * file->size()) << "a " << file->size() << "-byte file took " << grown
                                       << " bytes of heap";
    EXPECT_GE((*f)->header_heap_bytes(), file->size() - 64);
    const Array* a = (*f)->get_array("big");
    ASSERT_NE(a, nullptr);
    if (file == &u8) {
      ASSERT_EQ(a->items.size(), kBytes);
      EXPECT_EQ(a->items[kBytes - 1], Value::u8(7));
    } else {
      ASSERT_EQ(a->items.size(), kStrings);
      EXPECT_EQ(*a->items[27].as_string(), "b");
      EXPECT_EQ(a->items.string_at(kStrings - 1), std::string(1, 'a' + (kStrings - 1) % 26));
    }
  }
}

// A sparse file: huge on disk, zero pages cost nothing, and every count passes the "fits in
// the bytes left" check. The reader must refuse to allocate for it (it aborted with an
// uncaught std::bad_alloc before).
TEST(GgufReaderTest, HugeCountsInALargeSparseFileAreAResourceErrorNotAnAbort) {
  const std::string dir = testing::make_temp_dir("gguf-sparse");
  const std::string path = dir + "/sparse.gguf";
  constexpr uint64_t kSize = uint64_t{1} << 36;  // 64 GiB, sparse
  struct Case {
    std::vector<uint8_t> header;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {array_header(0, kSize - 64), "needs"},             // uint8 elements
      {array_header(8, (kSize - 64) / 8), "needs"},       // strings (lengths are 0)
      {array_header(0, 1, uint64_t{1} << 30), "tensor count"},
  };
  for (const Case& c : cases) {
    std::FILE* out = std::fopen(path.c_str(), "wb");
    ASSERT_NE(out, nullptr);
    std::fwrite(c.header.data(), 1, c.header.size(), out);
    std::fclose(out);
    ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(kSize)), 0);
    auto f = GgufFile::open(path);
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.status().message().find(c.expect), std::string::npos) << f.status().message();
    EXPECT_NE(f.status().message().find("sparse.gguf"), std::string::npos);
  }
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace hangar::gguf
