#pragma once
// The vocabulary shared by both tokenizers: token texts, scores and attributes, the special ids,
// and the flags llama.cpp derives from the GGUF tokenizer.* keys (add_bos, space prefix,
// clean-up spaces, ignore_merges, pre-tokenizer type), with llama.cpp's defaults and its fix-ups
// by token text (EOT/EOM/FIM/EOG tokens forced to CONTROL, Phi-3's rstrip attributes).
//
// VocabSpec is the raw metadata (what the GGUF says, nothing derived); Vocab::build turns it
// into the checked, derived form. A Vocab is immutable after build(): safe to share between
// threads.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/tokenizer_hash.h"
#include "gguf/gguf.h"

namespace hangar::engine {

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

// GGUF tokenizer.ggml.token_type values (llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Per-token attribute bits (llama_token_attr).
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrNormalized = 1u << 6,
  kAttrLstrip = 1u << 7,
  kAttrRstrip = 1u << 8,
  kAttrSingleWord = 1u << 9,
};

enum class VocabType { kSpm, kBpe };

// The regex family a BPE vocabulary splits text with (tokenizer.ggml.pre).
enum class PreTokenizerType { kDefault, kLlama3, kQwen2, kGpt2 };

// The raw tokenizer.* metadata. Optional fields are absent from the file when unset.
struct VocabSpec {
  std::string model;                 // tokenizer.ggml.model: "llama" or "gpt2"
  std::string pre;                   // tokenizer.ggml.pre ("" when absent)
  std::string general_name;          // general.name (Phi-3's attributes key off it)
  std::vector<std::string> tokens;   // [n_vocab]
  std::vector<float> scores;         // [n_vocab] or empty
  std::vector<int32_t> token_types;  // [n_vocab] or empty (TokenType values)
  std::vector<std::string> merges;   // BPE only: "left right", highest priority first
  std::optional<uint32_t> bos, eos, eot, eom, unk, sep, pad, mask;
  std::optional<uint32_t> fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
};

// Reads the tokenizer.* keys of a GGUF file (types checked, names in errors).
StatusOr<VocabSpec> read_vocab_spec(const gguf::GgufFile& file);

class Vocab {
 public:
  // Applies llama.cpp's defaults and fix-ups. Fails on an unknown model, an empty vocabulary,
  // arrays whose lengths disagree, or a BPE vocabulary without merges. An unknown `pre` falls
  // back to the default regexes with a warning.
  static StatusOr<Vocab> build(VocabSpec spec);

  // Move-only: a vocabulary is large, copying one is a mistake.
  Vocab(Vocab&&) = default;
  Vocab& operator=(Vocab&&) = default;
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;

  VocabType type() const { return type_; }
  PreTokenizerType pre_type() const { return pre_type_; }
  int32_t n_tokens() const { return static_cast<int32_t>(texts_.size()); }
  bool valid(TokenId id) const { return id >= 0 && id < n_tokens(); }
  // Text and score of a valid id; attr() of an invalid id is kAttrUndefined.
  const std::string& text(TokenId id) const { return texts_[static_cast<size_t>(id)]; }
  float score(TokenId id) const { return scores_[static_cast<size_t>(id)]; }
  uint32_t attr(TokenId id) const {
    return valid(id) ? attrs_[static_cast<size_t>(id)] : kAttrUndefined;
  }

  // Exact text lookup; kNoToken when absent. Duplicate texts resolve to the highest id, as
  // llama.cpp's token_to_id map does.
  TokenId text_to_token(std::string_view text) const;
  // The byte-fallback token for one byte: "<0xNN>" (SPM, else the one-byte text) or the GPT-2
  // piece (BPE); kNoToken when the vocabulary has neither.
  TokenId byte_to_token(uint8_t byte) const;
  // The byte an SPM byte token ("<0x41>") stands for, or -1.
  int token_to_byte(TokenId id) const;

  TokenId bos() const { return bos_; }
  TokenId eos() const { return eos_; }
  TokenId eot() const { return eot_; }
  TokenId eom() const { return eom_; }
  TokenId unk() const { return unk_; }
  TokenId pad() const { return pad_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  bool clean_spaces() const { return clean_spaces_; }
  bool ignore_merges() const { return ignore_merges_; }
  bool is_eog(TokenId id) const;

  // CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first: the texts the special-token
  // splitter looks for.
  const std::vector<TokenId>& special_tokens() const { return special_tokens_; }
  const std::vector<std::string>& merges() const { return merges_; }

 private:
  Vocab() = default;
  void apply_special_ids(const VocabSpec& spec);
  void detect_special_tokens_by_text();
  void apply_model_attributes(const std::string& general_name, const std::string& pre);

  VocabType type_ = VocabType::kSpm;
  PreTokenizerType pre_type_ = PreTokenizerType::kDefault;
  std::vector<std::string> texts_;  // [n_vocab]
  std::vector<float> scores_;       // [n_vocab]
  std::vector<uint32_t> attrs_;     // [n_vocab] TokenAttr bits
  TextIndex text_index_;            // texts_ -> id
  std::vector<std::string> merges_;
  std::vector<TokenId> special_tokens_;
  std::vector<TokenId> eog_ids_;  // sorted
  TokenId bos_ = kNoToken, eos_ = kNoToken, eot_ = kNoToken, eom_ = kNoToken;
  TokenId unk_ = kNoToken, sep_ = kNoToken, pad_ = kNoToken, mask_ = kNoToken;
  TokenId fim_pre_ = kNoToken, fim_suf_ = kNoToken, fim_mid_ = kNoToken;
  TokenId fim_pad_ = kNoToken, fim_rep_ = kNoToken, fim_sep_ = kNoToken;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = false;
  bool clean_spaces_ = true;
  bool ignore_merges_ = false;
};

}  // namespace hangar::engine
