#include "worker/text_holdback.h"

#include <algorithm>

namespace hangar::worker {
namespace {

// The length of the UTF-8 sequence a lead byte starts (0 for a continuation or invalid byte).
size_t utf8_sequence_length(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return c >= 0xC2 ? 2 : 0;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return c <= 0xF4 ? 4 : 0;
  return 0;
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The longest suffix of `text` that is a proper prefix of `stop`.
size_t partial_stop_suffix(std::string_view text, std::string_view stop) {
  const size_t max_len = std::min(text.size(), stop.size() - 1);
  for (size_t len = max_len; len > 0; --len) {
    if (text.substr(text.size() - len) == stop.substr(0, len)) return len;
  }
  return 0;
}

}  // namespace

size_t incomplete_utf8_tail(std::string_view s) {
  // Look back over at most 3 continuation bytes for the lead byte of the last character.
  size_t n = 0;
  while (n < s.size() && n < 3 &&
         is_continuation(static_cast<unsigned char>(s[s.size() - 1 - n]))) {
    ++n;
  }
  if (n == s.size()) return 0;  // only continuation bytes: invalid, nothing to wait for
  const size_t lead_at = s.size() - 1 - n;
  const size_t need = utf8_sequence_length(static_cast<unsigned char>(s[lead_at]));
  if (need > n + 1) return n + 1;  // the character needs more bytes than have arrived
  return 0;
}

std::string sanitize_utf8(std::string_view s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = utf8_sequence_length(c);
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = is_continuation(static_cast<unsigned char>(s[i + k]));
    }
    if (ok && len == 3) {
      const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      // No overlong forms and no UTF-16 surrogates.
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
    } else if (ok && len == 4) {
      const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append(kReplacement);
      ++i;
    }
  }
  return out;
}

TextHoldback::TextHoldback(std::vector<std::string> stop_strings)
    : stops_(std::move(stop_strings)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string TextHoldback::feed(std::string_view piece) {
  if (stopped_) return "";
  // A stop string can only start inside held_: everything emitted so far had no tail that
  // could begin one. Search from where the earliest possible match could start.
  const size_t old_size = held_.size();
  held_.append(piece);
  size_t best = std::string::npos;
  for (const std::string& stop : stops_) {
    const size_t from = old_size >= stop.size() ? old_size - stop.size() + 1 : 0;
    const size_t at = held_.find(stop, from);
    if (at != std::string::npos && (best == std::string::npos || at < best)) {
      best = at;
      matched_stop_ = stop;
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string out = sanitize_utf8(std::string_view(held_).substr(0, best));
    held_.clear();
    return out;
  }
  size_t hold = 0;
  for (const std::string& stop : stops_) hold = std::max(hold, partial_stop_suffix(held_, stop));
  size_t safe = held_.size() - hold;
  safe -= incomplete_utf8_tail(std::string_view(held_).substr(0, safe));
  std::string out = sanitize_utf8(std::string_view(held_).substr(0, safe));
  held_.erase(0, safe);
  return out;
}

std::string TextHoldback::flush() {
  if (stopped_) return "";
  std::string out = sanitize_utf8(held_);
  held_.clear();
  return out;
}

}  // namespace hangar::worker
