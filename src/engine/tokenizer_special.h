#pragma once
// Special-token splitting (llama.cpp's tokenizer_st_partition): cuts text into raw-text
// fragments and whole special tokens before the model-specific tokenizer sees it, so that text
// is never merged across a special token.
// Which texts are looked for: USER_DEFINED tokens always; CONTROL and UNKNOWN tokens only with
// parse_special. Longer texts are cut out first; each token's occurrences are found left to
// right without overlap. A token with the LSTRIP/RSTRIP attribute (Phi-3's) also swallows the
// whitespace before/after it. Pure function of its inputs: thread-safe.

#include <cstddef>
#include <string_view>
#include <vector>

#include "engine/tokenizer_vocab.h"

namespace hangar::engine {

struct Fragment {
  TokenId token = kNoToken;  // a special token, or kNoToken for raw text
  size_t offset = 0;         // raw text: [offset, offset + length) of the input
  size_t length = 0;

  bool is_text() const { return token == kNoToken; }
};

// The fragments of `text`, in order. Raw-text fragments are never empty; empty text gives none.
std::vector<Fragment> split_special_tokens(const Vocab& vocab, std::string_view text,
                                           bool parse_special);

}  // namespace hangar::engine
