#include "engine/unicode.h"

#include <array>

namespace hangar::engine {

size_t utf8_sequence_length(uint8_t lead) {
  static constexpr std::array<uint8_t, 16> kLengths = {1, 1, 1, 1, 1, 1, 1, 1,
                                                       1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

namespace {

bool is_continuation(std::string_view text, size_t i) {
  return i < text.size() && (static_cast<uint8_t>(text[i]) & 0xC0) == 0x80;
}

}  // namespace

uint32_t decode_utf8_at(std::string_view text, size_t* offset) {
  const size_t i = *offset;
  const uint8_t b0 = static_cast<uint8_t>(text[i]);
  auto cont = [&](size_t k) {
    return static_cast<uint32_t>(static_cast<uint8_t>(text[i + k]) & 0x3F);
  };
  if ((b0 & 0x80) == 0) {
    *offset = i + 1;
    return b0;
  }
  if ((b0 & 0x40) == 0) {  // a stray continuation byte
    *offset = i + 1;
    return kReplacementChar;
  }
  if ((b0 & 0x20) == 0) {
    if (!is_continuation(text, i + 1)) {
      *offset = i + 1;
      return kReplacementChar;
    }
    *offset = i + 2;
    return ((b0 & 0x1Fu) << 6) | cont(1);
  }
  if ((b0 & 0x10) == 0) {
    if (!is_continuation(text, i + 1) || !is_continuation(text, i + 2)) {
      *offset = i + 1;
      return kReplacementChar;
    }
    *offset = i + 3;
    return ((b0 & 0x0Fu) << 12) | (cont(1) << 6) | cont(2);
  }
  if ((b0 & 0x08) == 0) {
    if (!is_continuation(text, i + 1) || !is_continuation(text, i + 2) ||
        !is_continuation(text, i + 3)) {
      *offset = i + 1;
      return kReplacementChar;
    }
    *offset = i + 4;
    return ((b0 & 0x07u) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
  }
  *offset = i + 1;  // 0xF8..0xFF never start a sequence
  return kReplacementChar;
}

std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> cpts;
  cpts.reserve(text.size());
  size_t offset = 0;
  while (offset < text.size()) cpts.push_back(decode_utf8_at(text, &offset));
  return cpts;
}

void append_utf8(uint32_t cpt, std::string* out) {
  if (cpt < 0x80) {
    out->push_back(static_cast<char>(cpt));
  } else if (cpt < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    cpt &= 0x1FFFFF;  // the most a 4-byte form holds; decode_utf8 never produces more
    out->push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  }
}

std::string encode_utf8(uint32_t cpt) {
  std::string s;
  append_utf8(cpt, &s);
  return s;
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const uint8_t b0 = static_cast<uint8_t>(text[i]);
    size_t len = 0;
    uint32_t min = 0;
    if (b0 < 0x80) {
      ++i;
      continue;
    } else if ((b0 & 0xE0) == 0xC0) {
      len = 2;
      min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3;
      min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4;
      min = 0x10000;
    } else {
      return false;
    }
    size_t offset = i;
    const uint32_t cpt = decode_utf8_at(text, &offset);
    if (offset != i + len || cpt < min || !is_scalar_value(cpt)) return false;
    i = offset;
  }
  return true;
}

namespace {

struct Gpt2Tables {
  std::array<uint32_t, 256> byte_to_cpt{};
  std::array<std::string, 256> byte_to_piece;
  std::array<int16_t, 512> cpt_to_byte{};  // every table code point is below U+0144

  Gpt2Tables() {
    cpt_to_byte.fill(-1);
    uint32_t next_extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cpt = printable ? b : next_extra++;
      byte_to_cpt[b] = cpt;
      byte_to_piece[b] = encode_utf8(cpt);
      cpt_to_byte[cpt] = static_cast<int16_t>(b);
    }
  }
};

const Gpt2Tables& gpt2_tables() {
  static const Gpt2Tables tables;
  return tables;
}

}  // namespace

uint32_t byte_to_gpt2_cpt(uint8_t byte) { return gpt2_tables().byte_to_cpt[byte]; }

const std::string& byte_to_gpt2_piece(uint8_t byte) { return gpt2_tables().byte_to_piece[byte]; }

int gpt2_cpt_to_byte(uint32_t cpt) {
  const auto& t = gpt2_tables();
  return cpt < t.cpt_to_byte.size() ? t.cpt_to_byte[cpt] : -1;
}

std::string gpt2_byte_encode(std::string_view text) {
  const auto& t = gpt2_tables();
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += t.byte_to_piece[static_cast<uint8_t>(c)];
  return out;
}

}  // namespace hangar::engine
