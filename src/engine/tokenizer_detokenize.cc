#include "engine/tokenizer_detokenize.h"

#include <cstdio>

#include "engine/tokenizer_spm.h"
#include "engine/unicode.h"

namespace hangar::engine {

std::string gpt2_byte_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t offset = 0;
  while (offset < text.size()) {
    const uint32_t cpt = decode_utf8_at(text, &offset);
    const int byte = gpt2_cpt_to_byte(cpt);
    if (byte >= 0) {
      out.push_back(static_cast<char>(byte));
      continue;
    }
    out += "[UNK_BYTE_0x";
    for (char c : encode_utf8(cpt)) {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned>(static_cast<uint8_t>(c)));
      out += hex;
    }
    out += text;
    out += "]";
  }
  return out;
}

std::string render_piece(const Vocab& vocab, TokenId id) {
  if (!vocab.valid(id)) return {};
  const uint32_t attr = vocab.attr(id);
  const std::string& text = vocab.text(id);
  if (attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return text;
  if (vocab.type() == VocabType::kSpm) {
    if (attr & kAttrNormal) return spm_unescape_whitespace(text);
    if (attr & kAttrByte) {
      const int b = vocab.token_to_byte(id);
      return b < 0 ? std::string() : std::string(1, static_cast<char>(b));
    }
    return {};
  }
  if (attr & kAttrNormal) return gpt2_byte_decode(text);
  return {};
}

void clean_up_tokenization_spaces(std::string* text) {
  // A literal port of llama.cpp's in-place passes: each reads text[i - 1] and text[i + 1] from
  // the buffer it is compacting, which still hold the pass's input there (writes only go to
  // indices below i).
  std::string& t = *text;
  const size_t n0 = t.size();
  size_t total = n0 ? 1 : 0;
  for (size_t i = 1; i < n0; ++i) {
    const char x = t[i];
    if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    t[total++] = x;
  }
  const size_t n1 = total;
  total = n1 ? 1 : 0;
  for (size_t i = 1; i < n1; ++i) {
    const char x = t[i];
    if (x == '\'' && i + 1 < n1 && t[i - 1] == ' ' && t[i + 1] == ' ') {
      --total;        // the space before
      t[++i] = '\0';  // and skip the space after
    }
    t[total++] = x;
  }
  const size_t n2 = total;
  total = n2 ? 1 : 0;
  for (size_t i = 1; i < n2; ++i) {
    const char x = t[i];
    if (t[i - 1] == ' ' && x == '\'' && i + 1 < n2) {
      const char x1 = t[i + 1];
      if (x1 == 's' || x1 == 'm') {
        --total;
      } else if (i + 2 < n2) {
        const char x2 = t[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
      }
    }
    t[total++] = x;
  }
  t.resize(total);
}

}  // namespace hangar::engine
