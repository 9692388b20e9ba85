// The ggml type table: block geometry of every type, lookups by id and name, row sizes.
#include "gguf/ggml_type.h"

#include <gtest/gtest.h>

namespace hangar::gguf {
namespace {

TEST(GgmlType, TableHasGgmlBlockGeometry) {
  struct Expect { GgmlType t; uint32_t block, bytes; };
  const Expect expected[] = {
      {GgmlType::kF32, 1, 4},        {GgmlType::kF16, 1, 2},        {GgmlType::kBF16, 1, 2},
      {GgmlType::kQ4_0, 32, 18},     {GgmlType::kQ4_1, 32, 20},     {GgmlType::kQ5_0, 32, 22},
      {GgmlType::kQ5_1, 32, 24},     {GgmlType::kQ8_0, 32, 34},     {GgmlType::kQ8_1, 32, 36},
      {GgmlType::kQ2_K, 256, 84},    {GgmlType::kQ3_K, 256, 110},   {GgmlType::kQ4_K, 256, 144},
      {GgmlType::kQ5_K, 256, 176},   {GgmlType::kQ6_K, 256, 210},   {GgmlType::kQ8_K, 256, 292},
      {GgmlType::kIQ2_XXS, 256, 66}, {GgmlType::kIQ2_XS, 256, 74},  {GgmlType::kIQ3_XXS, 256, 98},
      {GgmlType::kIQ1_S, 256, 50},   {GgmlType::kIQ4_NL, 32, 18},   {GgmlType::kIQ3_S, 256, 110},
      {GgmlType::kIQ2_S, 256, 82},   {GgmlType::kIQ4_XS, 256, 136}, {GgmlType::kIQ1_M, 256, 56},
      {GgmlType::kTQ1_0, 256, 54},   {GgmlType::kTQ2_0, 256, 66},   {GgmlType::kMXFP4, 32, 17},
      {GgmlType::kI8, 1, 1},         {GgmlType::kI16, 1, 2},        {GgmlType::kI32, 1, 4},
      {GgmlType::kI64, 1, 8},        {GgmlType::kF64, 1, 8},
  };
  for (const Expect& e : expected) {
    const TypeTraits& t = type_traits(e.t);
    EXPECT_EQ(t.type, e.t);
    EXPECT_EQ(t.block_size, e.block) << t.name;
    EXPECT_EQ(t.bytes_per_block, e.bytes) << t.name;
    auto by_id = type_traits(static_cast<uint32_t>(e.t));
    ASSERT_TRUE(by_id.has_value());
    EXPECT_EQ(by_id->name, t.name);
  }
}

TEST(GgmlType, RemovedAndUnknownIdsAreUnknown) {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 1000u, 0xFFFFFFFFu}) {
    EXPECT_FALSE(type_traits(id).has_value()) << id;
  }
}

TEST(GgmlType, LooksUpNamesIgnoringCase) {
  EXPECT_EQ(type_from_name("Q8_0"), GgmlType::kQ8_0);
  EXPECT_EQ(type_from_name("q4_k"), GgmlType::kQ4_K);
  EXPECT_EQ(type_from_name("bf16"), GgmlType::kBF16);
  EXPECT_EQ(type_from_name("IQ2_XXS"), GgmlType::kIQ2_XXS);
  EXPECT_FALSE(type_from_name("q9_0").has_value());
}

TEST(GgmlType, RowBytesNeedsWholeBlocks) {
  EXPECT_EQ(row_bytes(GgmlType::kQ8_0, 64), 68u);
  EXPECT_EQ(row_bytes(GgmlType::kF16, 7), 14u);
  EXPECT_EQ(row_bytes(GgmlType::kQ4_K, 512), 288u);
  EXPECT_FALSE(row_bytes(GgmlType::kQ4_0, 33).has_value());
  EXPECT_FALSE(row_bytes(GgmlType::kF32, -1).has_value());
  EXPECT_EQ(row_bytes(GgmlType::kQ4_0, 0), 0u);
}

}  // namespace
}  // namespace hangar::gguf
