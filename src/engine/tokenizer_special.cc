#include "engine/tokenizer_special.h"

#include <cctype>

namespace hangar::engine {

namespace {

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

}  // namespace

std::vector<Fragment> split_special_tokens(const Vocab& vocab, std::string_view text,
                                           bool parse_special) {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({kNoToken, 0, text.size()});
  std::vector<Fragment> next;
  for (TokenId id : vocab.special_tokens()) {
    const uint32_t attr = vocab.attr(id);
    if (!parse_special && (attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string_view needle = vocab.text(id);
    if (needle.empty()) continue;  // cannot happen (build() renames empty tokens); never loop
    next.clear();
    next.reserve(fragments.size() + 2);
    bool changed = false;
    for (const Fragment& f : fragments) {
      if (!f.is_text()) {
        next.push_back(f);
        continue;
      }
      size_t offset = f.offset;
      size_t length = f.length;
      while (true) {
        const size_t match = text.substr(0, offset + length).find(needle, offset);
        if (match == std::string_view::npos) {
          if (length > 0) next.push_back({kNoToken, offset, length});
          break;
        }
        changed = true;
        size_t left_length = match - offset;
        if (attr & kAttrLstrip) {
          while (left_length > 0 && is_space(text[offset + left_length - 1])) --left_length;
        }
        if (left_length > 0) next.push_back({kNoToken, offset, left_length});
        next.push_back({id, 0, 0});
        size_t right_offset = match + needle.size();
        size_t right_length = offset + length - right_offset;
        if (attr & kAttrRstrip) {
          while (right_length > 0 && is_space(text[right_offset])) {
            ++right_offset;
            --right_length;
          }
        }
        offset = right_offset;
        length = right_length;
      }
    }
    if (changed) std::swap(fragments, next);
  }
  return fragments;
}

}  // namespace hangar::engine
