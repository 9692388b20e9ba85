#pragma once
// SentencePiece-style tokenization of one raw-text fragment (llama.cpp's llm_tokenizer_spm):
// start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is a
// vocabulary token with the highest score (ties: leftmost), then emit each final piece as its
// token, re-splitting pieces that are not tokens along the merges that built them, and
// falling back to <0xNN> byte tokens for what no token covers.
// The caller has already added the leading space and escaped spaces as U+2581 ("▁").
// Pure function of its inputs: thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer_vocab.h"

namespace hangar::engine {

// Appends the ids of `text` to `out`.
void spm_tokenize(const Vocab& vocab, std::string_view text, std::vector<TokenId>* out);

// Replaces every ' ' with "▁" (U+2581), SentencePiece's visible space.
std::string spm_escape_whitespace(std::string_view text);
// Replaces every "▁" with ' '.
std::string spm_unescape_whitespace(std::string_view text);

}  // namespace hangar::engine
