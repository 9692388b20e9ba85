#pragma once
// The BPE pre-tokenizer: splits text into words with the regexes llama.cpp uses for each
// tokenizer.ggml.pre family, via PCRE2 with Unicode properties.
//
// Semantics follow llama.cpp's unicode_regex_split: the text is decoded leniently (a malformed
// byte becomes U+FFFD); each regex of the family splits every chunk the previous one produced,
// keeping both the matches and the text between them as chunks; each chunk is matched on its
// own (a lookahead never sees past its end). `\s` is llama.cpp's whitespace set (ASCII \t..\r
// and space, U+0085 and the Unicode separators), which differs from PCRE2's by U+0085.
//
// A PreTokenizer is immutable after create(): split() may run on any number of threads.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/tokenizer_vocab.h"

namespace hangar::engine {

class PreTokenizer {
 public:
  // Compiles the family's regexes (JIT where PCRE2 has it).
  static StatusOr<PreTokenizer> create(PreTokenizerType type);

  // Splits `text` into words, in order; their concatenation is the leniently decoded text
  // re-encoded as UTF-8. Empty text gives no words.
  std::vector<std::string> split(std::string_view text) const;

  // The regex sources of a family, as compiled (for tests and logs).
  static std::vector<std::string> patterns(PreTokenizerType type);

 private:
  struct Compiled;
  explicit PreTokenizer(std::shared_ptr<const Compiled> compiled)
      : compiled_(std::move(compiled)) {}
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace hangar::engine
