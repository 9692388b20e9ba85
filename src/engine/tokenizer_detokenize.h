#pragma once
// Detokenization helpers with llama.cpp's exact output: the text of one token (its "piece")
// and the clean_up_tokenization_spaces pass llama_detokenize applies to BPE vocabularies that
// have it on (all but a few pre-tokenizer families, Qwen2 among those off).
// Pure functions: thread-safe.

#include <string>
#include <string_view>

#include "engine/tokenizer_vocab.h"

namespace hangar::engine {

// The piece of `id` as llama.cpp's token_to_piece(special=true) renders it: raw text for
// CONTROL/UNKNOWN/USER_DEFINED tokens, "▁" -> ' ' for SPM normal tokens, the byte for SPM
// byte tokens, GPT-2 byte decoding for BPE normal tokens, "" for anything else.
std::string render_piece(const Vocab& vocab, TokenId id);

// BPE byte decoding of a token's text (llama_decode_text): each code point back to its byte;
// a code point outside the GPT-2 table becomes "[UNK_BYTE_0x<hex>" + text + "]" as in
// llama.cpp.
std::string gpt2_byte_decode(std::string_view text);

// llama.cpp's clean-up, three passes over bytes, in place:
// 1. drop a space before '?', '!', '.', ','
// 2. " ' " becomes "'"
// 3. drop a space before "'s", "'m", "'re", "'ve" (not before "'t", "'d", "'ll").
void clean_up_tokenization_spaces(std::string* text);

}  // namespace hangar::engine
