#pragma once
// The ggml tensor type table: every type id a GGUF file may name, with its block geometry.
// Values are ggml's enum ggml_type ids; ids ggml removed are absent and unknown to us.
// Pure data, no state: safe from any thread.

#include <cstdint>
#include <optional>
#include <string_view>

namespace hangar::gguf {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct TypeTraits {
  GgmlType type;
  std::string_view name;    // ggml's spelling: "f32", "q4_0", "q4_K", "iq2_xxs", "bf16", ...
  uint32_t block_size;      // elements per block (1 for plain types)
  uint32_t bytes_per_block; // bytes of one block
};

// nullopt for an id that is not a known ggml type.
std::optional<TypeTraits> type_traits(uint32_t type_id);
const TypeTraits& type_traits(GgmlType type);  // every enumerator is known

// Looks a type up by its name as above, case-insensitive ("Q8_0", "q8_0").
std::optional<GgmlType> type_from_name(std::string_view name);

// Bytes of a row of n elements. nullopt when n is not a multiple of the block size.
std::optional<uint64_t> row_bytes(GgmlType type, int64_t n);

}  // namespace hangar::gguf
