#include "engine/tokenizer_bpe.h"

#include <algorithm>
#include <queue>

#include "engine/unicode.h"

namespace hangar::engine {

std::string BpeModel::text_key(std::string_view a, std::string_view b) {
  // Length-prefixed so that ("a b", "c") and ("a", "b c") never collide.
  std::string key;
  key.reserve(4 + a.size() + b.size());
  const uint32_t n = static_cast<uint32_t>(a.size());
  key.append(reinterpret_cast<const char*>(&n), sizeof(n));
  key.append(a);
  key.append(b);
  return key;
}

StatusOr<BpeModel> BpeModel::create(const Vocab& vocab) {
  HANGAR_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::create(vocab.pre_type()));
  BpeModel model(std::move(pre));
  const std::vector<std::string>& merges = vocab.merges();
  model.id_pair_rank_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string_view m = merges[i];
    const size_t space = m.find(' ', 1);
    if (space == std::string_view::npos) continue;  // llama.cpp keys it ("", ""): never matches
    const std::string_view left = m.substr(0, space);
    const std::string_view right = m.substr(space + 1);
    if (right.empty()) continue;  // a symbol is never empty
    const int32_t rank = static_cast<int32_t>(i);
    const TokenId l = vocab.text_to_token(left);
    const TokenId r = vocab.text_to_token(right);
    // First occurrence wins (llama.cpp's map emplace).
    if (l != kNoToken && r != kNoToken) {
      model.id_pair_rank_.insert_if_absent(l, r, rank);
    } else {
      model.text_pair_rank_.emplace(text_key(left, right), rank);
    }
  }
  return model;
}

int32_t BpeModel::rank_of(TokenId left_id, TokenId right_id, std::string_view left,
                          std::string_view right) const {
  if (left_id != kNoToken && right_id != kNoToken) {
    return id_pair_rank_.find(left_id, right_id);
  }
  if (text_pair_rank_.empty()) return -1;
  const auto it = text_pair_rank_.find(text_key(left, right));
  return it == text_pair_rank_.end() ? -1 : it->second;
}

int32_t BpeModel::rank(const Vocab& vocab, std::string_view left, std::string_view right) const {
  return rank_of(vocab.text_to_token(left), vocab.text_to_token(right), left, right);
}

namespace {

struct Symbol {
  int prev;
  int next;
  const char* text;
  size_t n;    // bytes; 0 once merged into its left neighbour
  TokenId id;  // the token whose text this is, or kNoToken
};

struct Bigram {
  int left;
  int right;
  int32_t rank;
  size_t left_n;  // the sizes when queued: a pair is stale once either side changed
  size_t right_n;
};

// Lowest rank first; among equal ranks the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void BpeModel::tokenize(const Vocab& vocab, std::string_view text,
                        std::vector<TokenId>* out) const {
  std::vector<Symbol> symbols;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;

  auto add_bigram = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    const int32_t rank =
        rank_of(l.id, r.id, std::string_view(l.text, l.n), std::string_view(r.text, r.n));
    if (rank < 0) return;
    queue.push({left, right, rank, l.n, r.n});
  };

  for (const std::string& raw_word : pre_.split(text)) {
    const std::string word = gpt2_byte_encode(raw_word);
    symbols.clear();
    queue = {};
    size_t offset = 0;
    if (vocab.ignore_merges()) {
      const TokenId whole = vocab.text_to_token(word);
      if (whole != kNoToken) {
        out->push_back(whole);
        continue;
      }
    }
    int index = 0;
    while (offset < word.size()) {
      const size_t len =
          std::min(utf8_sequence_length(static_cast<uint8_t>(word[offset])), word.size() - offset);
      Symbol s;
      s.text = word.data() + offset;
      s.n = len;
      s.id = vocab.text_to_token(std::string_view(s.text, s.n));
      offset += len;
      s.prev = index - 1;
      s.next = offset == word.size() ? -1 : index + 1;
      ++index;
      symbols.push_back(s);
    }
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_bigram(i - 1, i);

    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& left = symbols[static_cast<size_t>(b.left)];
      Symbol& right = symbols[static_cast<size_t>(b.right)];
      if (left.n == 0 || right.n == 0 || left.n != b.left_n || right.n != b.right_n) continue;
      left.n += right.n;
      left.id = vocab.text_to_token(std::string_view(left.text, left.n));
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = b.left;
      add_bigram(left.prev, b.left);
      add_bigram(b.left, left.next);
    }

    for (const Symbol& s : symbols) {
      if (s.n == 0) continue;
      if (s.id != kNoToken) {
        out->push_back(s.id);
        continue;
      }
      // Not a token: its single bytes, where the vocabulary has them as tokens.
      for (size_t k = 0; k < s.n; ++k) {
        const TokenId b = vocab.text_to_token(std::string_view(s.text + k, 1));
        if (b != kNoToken) out->push_back(b);
      }
    }
  }
}

}  // namespace hangar::engine
