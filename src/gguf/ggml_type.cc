// The ggml type table (see ggml_type.h). Block geometry follows ggml's ggml-common.h block
// structs; a wrong entry here would mis-size every tensor of that type, so the unit test checks
// the values against hand-computed struct sizes.
#include "gguf/ggml_type.h"

#include <array>
#include <cctype>
#include <limits>

namespace hangar::gguf {
namespace {

constexpr std::array<TypeTraits, 32> kTypes = {{
    {GgmlType::kF32, "f32", 1, 4},
    {GgmlType::kF16, "f16", 1, 2},
    {GgmlType::kQ4_0, "q4_0", 32, 18},      // f16 d; u8 qs[16]
    {GgmlType::kQ4_1, "q4_1", 32, 20},      // f16 d, m; u8 qs[16]
    {GgmlType::kQ5_0, "q5_0", 32, 22},      // f16 d; u8 qh[4]; u8 qs[16]
    {GgmlType::kQ5_1, "q5_1", 32, 24},      // f16 d, m; u8 qh[4]; u8 qs[16]
    {GgmlType::kQ8_0, "q8_0", 32, 34},      // f16 d; i8 qs[32]
    {GgmlType::kQ8_1, "q8_1", 32, 36},      // f16 d, s; i8 qs[32]
    {GgmlType::kQ2_K, "q2_K", 256, 84},     // u8 scales[16]; u8 qs[64]; f16 d, dmin
    {GgmlType::kQ3_K, "q3_K", 256, 110},    // u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d
    {GgmlType::kQ4_K, "q4_K", 256, 144},    // f16 d, dmin; u8 scales[12]; u8 qs[128]
    {GgmlType::kQ5_K, "q5_K", 256, 176},    // f16 d, dmin; u8 scales[12]; qh[32]; qs[128]
    {GgmlType::kQ6_K, "q6_K", 256, 210},    // u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
    {GgmlType::kQ8_K, "q8_K", 256, 292},    // f32 d; i8 qs[256]; i16 bsums[16]
    {GgmlType::kIQ2_XXS, "iq2_xxs", 256, 66},  // f16 d; u16 qs[32]
    {GgmlType::kIQ2_XS, "iq2_xs", 256, 74},    // f16 d; u16 qs[32]; u8 scales[8]
    {GgmlType::kIQ3_XXS, "iq3_xxs", 256, 98},  // f16 d; u8 qs[96]
    {GgmlType::kIQ1_S, "iq1_s", 256, 50},      // f16 d; u8 qs[32]; u16 qh[8]
    {GgmlType::kIQ4_NL, "iq4_nl", 32, 18},     // f16 d; u8 qs[16]
    {GgmlType::kIQ3_S, "iq3_s", 256, 110},     // f16 d; qs[64]; qh[8]; signs[32]; scales[4]
    {GgmlType::kIQ2_S, "iq2_s", 256, 82},      // f16 d; qs[64]; qh[8]; scales[8]
    {GgmlType::kIQ4_XS, "iq4_xs", 256, 136},   // f16 d; u16 scales_h; u8 scales_l[4]; qs[128]
    {GgmlType::kI8, "i8", 1, 1},
    {GgmlType::kI16, "i16", 1, 2},
    {GgmlType::kI32, "i32", 1, 4},
    {GgmlType::kI64, "i64", 1, 8},
    {GgmlType::kF64, "f64", 1, 8},
    {GgmlType::kIQ1_M, "iq1_m", 256, 56},      // u8 qs[32]; u8 qh[16]; u8 scales[8]
    {GgmlType::kBF16, "bf16", 1, 2},
    {GgmlType::kTQ1_0, "tq1_0", 256, 54},      // u8 qs[48]; u8 qh[4]; f16 d
    {GgmlType::kTQ2_0, "tq2_0", 256, 66},      // u8 qs[64]; f16 d
    {GgmlType::kMXFP4, "mxfp4", 32, 17},       // u8 e; u8 qs[16]
}};

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<TypeTraits> type_traits(uint32_t type_id) {
  for (const TypeTraits& t : kTypes) {
    if (static_cast<uint32_t>(t.type) == type_id) return t;
  }
  return std::nullopt;
}

const TypeTraits& type_traits(GgmlType type) {
  for (const TypeTraits& t : kTypes) {
    if (t.type == type) return t;
  }
  return kTypes[0];  // unreachable for a valid enumerator
}

std::optional<GgmlType> type_from_name(std::string_view name) {
  for (const TypeTraits& t : kTypes) {
    if (equal_ignoring_case(t.name, name)) return t.type;
  }
  return std::nullopt;
}

std::optional<uint64_t> row_bytes(GgmlType type, int64_t n) {
  const TypeTraits& t = type_traits(type);
  if (n < 0 || n % t.block_size != 0) return std::nullopt;
  const uint64_t blocks = static_cast<uint64_t>(n) / t.block_size;
  if (blocks > std::numeric_limits<uint64_t>::max() / t.bytes_per_block) return std::nullopt;
  return blocks * t.bytes_per_block;
}

}  // namespace hangar::gguf
