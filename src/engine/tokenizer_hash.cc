#include "engine/tokenizer_hash.h"

namespace hangar::engine {

namespace {

uint64_t mix64(uint64_t x) {
  // splitmix64's finaliser: every input bit affects every output bit.
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

size_t capacity_for(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  return cap;
}

}  // namespace

uint64_t hash_text(std::string_view text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : text) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001B3ull;
  }
  return mix64(h ^ text.size());
}

void TextIndex::build(const std::vector<std::string>& texts) {
  slots_.assign(capacity_for(texts.size()), Slot{});
  mask_ = slots_.size() - 1;
  for (size_t i = 0; i < texts.size(); ++i) {
    const uint64_t h = hash_text(texts[i]);
    const uint32_t check = static_cast<uint32_t>(h >> 32);
    for (uint64_t pos = h & mask_;; pos = (pos + 1) & mask_) {
      Slot& s = slots_[pos];
      if (s.index < 0) {
        s = {check, static_cast<int32_t>(i)};
        break;
      }
      if (s.check == check && texts[static_cast<size_t>(s.index)] == texts[i]) {
        s.index = static_cast<int32_t>(i);  // later duplicates win
        break;
      }
    }
  }
}

int32_t TextIndex::find(std::string_view text, const std::vector<std::string>& texts) const {
  if (slots_.empty()) return -1;
  const uint64_t h = hash_text(text);
  const uint32_t check = static_cast<uint32_t>(h >> 32);
  for (uint64_t pos = h & mask_;; pos = (pos + 1) & mask_) {
    const Slot& s = slots_[pos];
    if (s.index < 0) return -1;
    if (s.check == check && texts[static_cast<size_t>(s.index)] == text) return s.index;
  }
}

void PairMap::reserve(size_t n) {
  if (capacity_for(n) <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity_for(n), Slot{});
  mask_ = slots_.size() - 1;
  size_ = 0;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    insert_if_absent(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFFu),
                     s.value);
  }
}

void PairMap::grow() { reserve(size_ < 8 ? 16 : size_ * 2); }

void PairMap::insert_if_absent(int32_t a, int32_t b, int32_t value) {
  const uint64_t k = key(a, b);
  if (k == kEmpty) return;  // (-1, -1) is the free marker; ids are never negative
  if (2 * (size_ + 1) > slots_.size()) grow();
  for (uint64_t pos = mix64(k) & mask_;; pos = (pos + 1) & mask_) {
    Slot& s = slots_[pos];
    if (s.key == kEmpty) {
      s = {k, value};
      ++size_;
      return;
    }
    if (s.key == k) return;
  }
}

int32_t PairMap::find(int32_t a, int32_t b) const {
  if (slots_.empty()) return -1;
  const uint64_t k = key(a, b);
  for (uint64_t pos = mix64(k) & mask_;; pos = (pos + 1) & mask_) {
    const Slot& s = slots_[pos];
    if (s.key == kEmpty) return -1;
    if (s.key == k) return s.value;
  }
}

}  // namespace hangar::engine
