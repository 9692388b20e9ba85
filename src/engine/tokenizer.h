#pragma once
// Tokenizer interface: text <-> token ids from a GGUF's tokenizer.* metadata, ids equal to
// llama.cpp's. Two implementations: SentencePiece-style (tokenizer.ggml.model = "llama",
// tokenizer_spm.cc) and byte-level BPE ("gpt2", tokenizer_bpe.cc), sharing the vocabulary
// (tokenizer_vocab.h), special-token splitting (tokenizer_special.h) and detokenization
// (tokenizer_detokenize.h); tokenizer.cc puts them together.
// Invalid UTF-8 input never fails: SPM falls back to byte tokens, BPE reads a malformed byte
// as U+FFFD, as llama.cpp does.
// A Tokenizer is immutable after creation: safe to use from any number of threads.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/tokenizer_vocab.h"
#include "gguf/gguf.h"

namespace hangar::engine {

using TokenId = int32_t;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Builds the tokenizer the file's metadata describes. Vocab-only files are fine.
  static StatusOr<std::unique_ptr<Tokenizer>> from_gguf(const gguf::GgufFile& file);
  // Builds one from metadata already read (tests build small vocabularies this way).
  static StatusOr<std::unique_ptr<Tokenizer>> from_spec(VocabSpec spec);

  // add_special: add BOS (and EOS) where the vocabulary says so (llama_tokenize's add_special).
  // parse_special: recognise special/control tokens' text as single ids.
  virtual std::vector<TokenId> tokenize(std::string_view text, bool add_special,
                                        bool parse_special) const = 0;

  // llama_detokenize(remove_special, unparse_special), including llama.cpp's
  // clean-up-spaces behaviour where the vocabulary has it on.
  virtual std::string detokenize(std::span<const TokenId> ids, bool remove_special = false,
                                 bool unparse_special = false) const = 0;

  // The text of one token as generated output (special tokens rendered only when `special`).
  virtual std::string token_to_piece(TokenId id, bool special) const = 0;

  virtual int32_t n_vocab() const = 0;
  virtual TokenId bos() const = 0;  // -1 when none
  virtual TokenId eos() const = 0;  // -1 when none
  virtual TokenId eot() const = 0;  // -1 when none
  virtual bool add_bos() const = 0;
  // End of generation: EOS, EOT, or any other token the vocabulary marks as ending a turn.
  virtual bool is_eog(TokenId id) const = 0;
  // The token's raw text as stored in the vocabulary.
  virtual const std::string& token_text(TokenId id) const = 0;
  // Looks a token's exact text up (e.g. "<|im_end|>"); -1 when absent.
  virtual TokenId find_token(std::string_view text) const = 0;
};

}  // namespace hangar::engine
