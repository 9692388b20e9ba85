#pragma once
// UTF-8 and byte-level helpers for the tokenizers, with llama.cpp's leniency rules so that ids
// match llama.cpp's on any input, valid UTF-8 or not:
// - decoding never fails: a byte that does not start a well-formed sequence becomes U+FFFD and
//   decoding resumes at the next byte (llama.cpp's unicode_cpts_from_utf8). Like llama.cpp it
//   does not reject overlong forms or surrogates; it only checks lead and continuation bits.
// - the GPT-2 byte <-> printable code point table used by byte-level BPE vocabularies.
// All functions are pure; the tables are immutable after first use (thread-safe statics).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hangar::engine {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Length of the UTF-8 sequence a lead byte announces, from its top four bits: 1 for ASCII and
// for stray continuation bytes, 2, 3 or 4 otherwise (llama.cpp's unicode_len_utf8).
size_t utf8_sequence_length(uint8_t lead);

// Decodes one code point at `*offset` and advances it. Returns kReplacementChar and advances by
// one byte when the sequence is malformed or truncated.
uint32_t decode_utf8_at(std::string_view text, size_t* offset);

// Decodes the whole text (see the rules above). [n_code_points]
std::vector<uint32_t> decode_utf8(std::string_view text);

// Appends the UTF-8 form of `cpt` (1 to 4 bytes; values up to 0x1FFFFF are written in the
// 4-byte form so that whatever decode_utf8 produced encodes back).
void append_utf8(uint32_t cpt, std::string* out);
std::string encode_utf8(uint32_t cpt);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
bool is_valid_utf8(std::string_view text);

// True for a code point usable in a well-formed UTF-8 string (not a surrogate, <= U+10FFFF).
inline bool is_scalar_value(uint32_t cpt) {
  return cpt <= 0x10FFFF && !(cpt >= 0xD800 && cpt <= 0xDFFF);
}

// GPT-2's bytes_to_unicode: each byte maps to one printable code point ('!'..'~', U+00A1..U+00AC
// and U+00AE..U+00FF map to themselves, the other 68 bytes to U+0100.. in byte order).
uint32_t byte_to_gpt2_cpt(uint8_t byte);
// The UTF-8 text of byte_to_gpt2_cpt(byte).
const std::string& byte_to_gpt2_piece(uint8_t byte);
// The inverse: the byte a code point stands for, or -1 when it is not in the table.
int gpt2_cpt_to_byte(uint32_t cpt);

// Maps every byte of `text` through byte_to_gpt2_piece (llama.cpp's byte-encoding step).
std::string gpt2_byte_encode(std::string_view text);

}  // namespace hangar::engine
