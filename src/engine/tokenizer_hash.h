#pragma once
// Flat open-addressing hash tables for the tokenizers' hot lookups, built once at load:
// token text -> id (every SPM/BPE step looks texts up) and (left id, right id) -> BPE merge
// rank. Flat arrays with linear probing: one or two cache lines per lookup and no allocation
// per entry, which keeps loading a 150k-token, 280k-merge vocabulary fast.
// Immutable after building: concurrent lookups are safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hangar::engine {

// 64-bit hash of a byte string (FNV-1a folded through a final avalanche).
uint64_t hash_text(std::string_view text);

// Maps the texts of a vector<string> to their indices. The strings are not copied: lookups
// compare against `texts`, which the caller passes to every call and must not change.
class TextIndex {
 public:
  // Indexes texts[0..n); a later equal text replaces an earlier one.
  void build(const std::vector<std::string>& texts);
  // The index of `text`, or -1.
  int32_t find(std::string_view text, const std::vector<std::string>& texts) const;

 private:
  struct Slot {
    uint32_t check = 0;  // high half of the hash
    int32_t index = -1;  // -1: empty
  };
  std::vector<Slot> slots_;  // [capacity], a power of two >= 2 * n
  uint64_t mask_ = 0;
};

// Maps a pair of non-negative 32-bit ids to a value; the first insertion of a pair wins.
class PairMap {
 public:
  void reserve(size_t n);
  void insert_if_absent(int32_t a, int32_t b, int32_t value);
  // The value, or -1.
  int32_t find(int32_t a, int32_t b) const;

 private:
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void grow();
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;  // kEmpty: free
    int32_t value = -1;
  };
  std::vector<Slot> slots_;  // [capacity], a power of two >= 2 * size
  size_t size_ = 0;
  uint64_t mask_ = 0;
};

}  // namespace hangar::engine
