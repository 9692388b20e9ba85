// Tokenizer::from_gguf and the one Tokenizer implementation: the shared steps of llama.cpp's
// llama_tokenize / llama_detokenize around the SPM and BPE algorithms.
#include "engine/tokenizer.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

#include "engine/tokenizer_bpe.h"
#include "engine/tokenizer_detokenize.h"
#include "engine/tokenizer_special.h"
#include "engine/tokenizer_spm.h"

namespace hangar::engine {

namespace {

class VocabTokenizer final : public Tokenizer {
 public:
  VocabTokenizer(Vocab vocab, std::optional<BpeModel> bpe)
      : vocab_(std::move(vocab)), bpe_(std::move(bpe)) {
    // llama.cpp caches every piece at load; detokenizing is then a copy per token.
    pieces_.reserve(static_cast<size_t>(vocab_.n_tokens()));
    for (TokenId id = 0; id < vocab_.n_tokens(); ++id) pieces_.push_back(render_piece(vocab_, id));
  }

  std::vector<TokenId> tokenize(std::string_view text, bool add_special,
                                bool parse_special) const override {
    std::vector<TokenId> out;
    out.reserve(text.size() / 3 + 2);
    const std::vector<Fragment> fragments = split_special_tokens(vocab_, text, parse_special);
    const bool add_bos = add_special && vocab_.add_bos() && vocab_.bos() != kNoToken;
    const bool add_eos = add_special && vocab_.add_eos() && vocab_.eos() != kNoToken;
    if (add_bos) out.push_back(vocab_.bos());
    if (vocab_.type() == VocabType::kSpm) {
      // Every raw fragment that comes first or right after a special token gets the space
      // prefix (llama.cpp's is_prev_special starts true).
      bool prev_special = true;
      std::string piece;
      for (const Fragment& f : fragments) {
        if (!f.is_text()) {
          out.push_back(f.token);
          prev_special = true;
          continue;
        }
        piece.clear();
        if (vocab_.add_space_prefix() && prev_special) piece = ' ';
        piece.append(text.substr(f.offset, f.length));
        spm_tokenize(vocab_, spm_escape_whitespace(piece), &out);
        prev_special = false;
      }
    } else {
      for (const Fragment& f : fragments) {
        if (f.is_text()) {
          bpe_->tokenize(vocab_, text.substr(f.offset, f.length), &out);
        } else {
          out.push_back(f.token);
        }
      }
    }
    if (add_eos) out.push_back(vocab_.eos());
    return out;
  }

  std::string detokenize(std::span<const TokenId> ids, bool remove_special,
                         bool unparse_special) const override {
    bool remove_space = vocab_.add_space_prefix();
    if (remove_special && vocab_.add_bos() && !ids.empty() && ids.front() == vocab_.bos()) {
      remove_space = false;
      ids = ids.subspan(1);
    }
    if (remove_special && vocab_.add_eos() && !ids.empty() && ids.back() == vocab_.eos()) {
      ids = ids.first(ids.size() - 1);
    }
    std::string text;
    for (TokenId id : ids) {
      const std::string& piece = piece_of(id, unparse_special);
      // Only the first token loses one leading space (the SPM prefix), even if it renders
      // as nothing.
      size_t skip = remove_space && !piece.empty() && piece[0] == ' ' ? 1 : 0;
      remove_space = false;
      text.append(piece, skip, std::string::npos);
    }
    if (vocab_.clean_spaces()) clean_up_tokenization_spaces(&text);
    return text;
  }

  std::string token_to_piece(TokenId id, bool special) const override {
    return piece_of(id, special);
  }

  int32_t n_vocab() const override { return vocab_.n_tokens(); }
  TokenId bos() const override { return vocab_.bos(); }
  TokenId eos() const override { return vocab_.eos(); }
  TokenId eot() const override { return vocab_.eot(); }
  bool add_bos() const override { return vocab_.add_bos(); }
  bool is_eog(TokenId id) const override { return vocab_.is_eog(id); }
  const std::string& token_text(TokenId id) const override {
    static const std::string kEmpty;
    return vocab_.valid(id) ? vocab_.text(id) : kEmpty;
  }
  TokenId find_token(std::string_view text) const override { return vocab_.text_to_token(text); }

 private:
  const std::string& piece_of(TokenId id, bool special) const {
    static const std::string kEmpty;
    if (!vocab_.valid(id)) return kEmpty;
    if (!special && (vocab_.attr(id) & (kAttrUnknown | kAttrControl))) return kEmpty;
    return pieces_[static_cast<size_t>(id)];
  }

  Vocab vocab_;
  std::optional<BpeModel> bpe_;      // set for BPE vocabularies
  std::vector<std::string> pieces_;  // [n_vocab] render_piece() of each id
};

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::from_spec(VocabSpec spec) {
  HANGAR_ASSIGN_OR_RETURN(Vocab vocab, Vocab::build(std::move(spec)));
  std::optional<BpeModel> bpe;
  if (vocab.type() == VocabType::kBpe) {
    HANGAR_ASSIGN_OR_RETURN(BpeModel model, BpeModel::create(vocab));
    bpe.emplace(std::move(model));
  }
  return std::unique_ptr<Tokenizer>(new VocabTokenizer(std::move(vocab), std::move(bpe)));
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::GgufFile& file) {
  HANGAR_ASSIGN_OR_RETURN(VocabSpec spec, read_vocab_spec(file));
  auto tokenizer = from_spec(std::move(spec));
  if (!tokenizer.ok()) {
    return tokenizer.status().with_context("loading the vocabulary of '" + file.path() + "'");
  }
  return tokenizer;
}

}  // namespace hangar::engine
