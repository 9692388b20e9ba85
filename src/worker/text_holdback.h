#pragma once
// TextHoldback: decides which generated text is safe to send to a client.
//
// Token pieces arrive one by one; a piece may end inside a UTF-8 character (byte-level BPE
// splits them) or inside what may become a stop string. feed() returns only text that can never
// change: it holds back the longest tail that is a prefix of some stop string and any
// incomplete UTF-8 character at the end. When a stop string appears, the text before it is
// returned and the holdback reports stopped(); the stop string itself is never emitted.
// flush() returns what is held at the end of generation (an incomplete UTF-8 character at the
// very end becomes U+FFFD, so the client always gets valid UTF-8).
//
// Thread-safety: not synchronized; one per generating slot.

#include <string>
#include <string_view>
#include <vector>

namespace hangar::worker {

class TextHoldback {
 public:
  explicit TextHoldback(std::vector<std::string> stop_strings = {});

  // Adds a token's text; returns the text that became safe to emit (possibly empty). After a
  // stop string was found, returns "" and ignores further input.
  std::string feed(std::string_view piece);
  // Returns everything still held (after a stop: nothing). Call once at the end.
  std::string flush();

  bool stopped() const { return stopped_; }
  // The stop string that ended generation ("" when none did).
  const std::string& matched_stop() const { return matched_stop_; }
  // Bytes currently held back.
  size_t held_bytes() const { return held_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_stop_;
};

// Bytes at the end of `s` that start a UTF-8 character not yet complete (0..3).
size_t incomplete_utf8_tail(std::string_view s);
// `s` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);

}  // namespace hangar::worker
