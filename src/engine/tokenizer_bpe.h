#pragma once
// Byte-level BPE tokenization of one raw-text fragment (llama.cpp's llm_tokenizer_bpe): split
// the text into words with the pre-tokenizer regexes, map each byte to its GPT-2 code point,
// then within each word repeatedly merge the adjacent pair with the lowest merge rank (ties:
// leftmost). With ignore_merges (Llama 3) a word that is itself a token is taken whole.
// Pieces that end up not being tokens fall back to one-byte tokens where those exist.
//
// Merge ranks are keyed by the pair of token ids (one 64-bit hash lookup per candidate pair);
// merges whose halves are not tokens, which real vocabularies do not have, go to a string map.
// Immutable after create(): thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "engine/tokenizer_hash.h"
#include "engine/tokenizer_pretokenize.h"
#include "engine/tokenizer_vocab.h"

namespace hangar::engine {

class BpeModel {
 public:
  // Parses vocab.merges() ("left right", split at the first space after the first byte, as
  // llama.cpp does) and compiles the vocabulary's pre-tokenizer.
  static StatusOr<BpeModel> create(const Vocab& vocab);

  // Appends the ids of `text` to `out`. `vocab` must be the one create() saw.
  void tokenize(const Vocab& vocab, std::string_view text, std::vector<TokenId>* out) const;

  // Lowest rank first; -1 when the pair is not a merge.
  int32_t rank(const Vocab& vocab, std::string_view left, std::string_view right) const;

 private:
  explicit BpeModel(PreTokenizer pre) : pre_(std::move(pre)) {}
  int32_t rank_of(TokenId left_id, TokenId right_id, std::string_view left,
                  std::string_view right) const;
  static std::string text_key(std::string_view a, std::string_view b);

  PreTokenizer pre_;
  PairMap id_pair_rank_;  // (left id, right id) -> rank
  std::unordered_map<std::string, int32_t> text_pair_rank_;
};

}  // namespace hangar::engine
