#include "engine/tokenizer_spm.h"

#include <algorithm>
#include <queue>
#include <string>

#include "engine/unicode.h"

namespace hangar::engine {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581

struct Symbol {
  int prev;
  int next;
  const char* text;
  size_t n;  // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;
};

// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

class SpmSession {
 public:
  SpmSession(const Vocab& vocab, std::vector<TokenId>* out) : vocab_(vocab), out_(out) {}

  void run(std::string_view text) {
    size_t offset = 0;
    int index = 0;
    while (offset < text.size()) {
      const size_t len =
          std::min(utf8_sequence_length(static_cast<uint8_t>(text[offset])), text.size() - offset);
      Symbol s;
      s.text = text.data() + offset;
      s.n = len;
      offset += len;
      s.prev = index - 1;
      s.next = offset == text.size() ? -1 : index + 1;
      ++index;
      symbols_.push_back(s);
    }
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) try_add_bigram(i - 1, i);

    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[static_cast<size_t>(b.left)];
      Symbol& right = symbols_[static_cast<size_t>(b.right)];
      // Stale: one side was merged away or grew since this pair was queued.
      if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[static_cast<size_t>(right.next)].prev = b.left;
      try_add_bigram(left.prev, b.left);
      try_add_bigram(b.left, left.next);
    }
    if (symbols_.empty()) return;
    for (int i = 0; i != -1; i = symbols_[static_cast<size_t>(i)].next) {
      resegment(symbols_[static_cast<size_t>(i)]);
    }
  }

 private:
  void try_add_bigram(int left, int right) {
    if (left == -1 || right == -1) return;
    const Symbol& l = symbols_[static_cast<size_t>(left)];
    const Symbol& r = symbols_[static_cast<size_t>(right)];
    const std::string_view text(l.text, l.n + r.n);
    const TokenId id = vocab_.text_to_token(text);
    if (id == kNoToken) return;
    queue_.push({left, right, vocab_.score(id), text.size()});
  }

  // llama.cpp also keeps a map from merged text to the pair that built it, to re-split a piece
  // that is not a token. Every merge above yields a token, so only single characters can fail
  // the lookup and that path never runs: a piece is its token or its bytes.
  void resegment(const Symbol& s) {
    const std::string_view text(s.text, s.n);
    const TokenId id = vocab_.text_to_token(text);
    if (id != kNoToken) {
      out_->push_back(id);
      return;
    }
    for (char c : text) {
      TokenId b = vocab_.byte_to_token(static_cast<uint8_t>(c));
      // llama.cpp fails here; a vocabulary without byte tokens gets <unk> from us.
      if (b == kNoToken) b = vocab_.unk();
      if (b != kNoToken) out_->push_back(b);
    }
  }

  const Vocab& vocab_;
  std::vector<TokenId>* out_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue_;
};

}  // namespace

void spm_tokenize(const Vocab& vocab, std::string_view text, std::vector<TokenId>* out) {
  SpmSession session(vocab, out);
  session.run(text);
}

std::string spm_escape_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 2);
  for (char c : text) {
    if (c == ' ') {
      out += kSpmSpace;
    } else {
      out += c;
    }
  }
  return out;
}

std::string spm_unescape_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
      out += ' ';
      i += kSpmSpace.size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

}  // namespace hangar::engine
