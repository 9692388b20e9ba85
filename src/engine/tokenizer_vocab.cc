// Vocabulary loading with llama.cpp's defaults and fix-ups (llama-vocab.cpp's load()): the
// order of the steps below matters, because later steps read attributes earlier ones set.
#include "engine/tokenizer_vocab.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>

#include "engine/unicode.h"

namespace hangar::engine {

namespace {

// ---- reading the metadata -------------------------------------------------------------------

std::string where(const gguf::GgufFile& file) {
  return file.path().empty() ? std::string("<memory>") : file.path();
}

Status read_string_array(const gguf::GgufFile& file, std::string_view key,
                         std::vector<std::string>* out) {
  const gguf::Value* v = file.find(key);
  if (v == nullptr) return ok_status();
  const gguf::Array* a = v->as_array();
  if (a == nullptr || a->elem_type != gguf::ValueType::kString) {
    return invalid_argument_error("tokenizer: '" + std::string(key) + "' in " + where(file) +
                                  " is " + std::string(gguf::value_type_name(v->type)) +
                                  ", expected an array of strings");
  }
  out->reserve(a->items.size());
  for (const gguf::Value& item : a->items) out->push_back(*item.as_string());
  return ok_status();
}

Status read_optional_id(const gguf::GgufFile& file, std::string_view key,
                        std::optional<uint32_t>* out) {
  const gguf::Value* v = file.find(key);
  if (v == nullptr) return ok_status();
  const std::optional<int64_t> id = v->as_int();
  if (!id) {
    return invalid_argument_error("tokenizer: '" + std::string(key) + "' in " + where(file) +
                                  " is " + std::string(gguf::value_type_name(v->type)) +
                                  ", expected an integer token id");
  }
  if (*id < 0 || *id > 0xFFFFFFFFll) {
    spdlog::warn("tokenizer: ignoring {} = {} in {} (not a token id)", key, *id, where(file));
    return ok_status();
  }
  *out = static_cast<uint32_t>(*id);
  return ok_status();
}

Status read_optional_bool(const gguf::GgufFile& file, std::string_view key,
                          std::optional<bool>* out) {
  const gguf::Value* v = file.find(key);
  if (v == nullptr) return ok_status();
  const std::optional<bool> b = v->as_bool();
  if (!b) {
    return invalid_argument_error("tokenizer: '" + std::string(key) + "' in " + where(file) +
                                  " is " + std::string(gguf::value_type_name(v->type)) +
                                  ", expected bool");
  }
  *out = *b;
  return ok_status();
}

}  // namespace

StatusOr<VocabSpec> read_vocab_spec(const gguf::GgufFile& file) {
  VocabSpec spec;
  const gguf::Value* model = file.find("tokenizer.ggml.model");
  if (model == nullptr) {
    return invalid_argument_error("tokenizer: " + where(file) +
                                  " has no tokenizer.ggml.model key (no vocabulary)");
  }
  if (model->as_string() == nullptr) {
    return invalid_argument_error("tokenizer: 'tokenizer.ggml.model' in " + where(file) + " is " +
                                  std::string(gguf::value_type_name(model->type)) +
                                  ", expected string");
  }
  spec.model = *model->as_string();
  if (const gguf::Value* pre = file.find("tokenizer.ggml.pre")) {
    if (pre->as_string() == nullptr) {
      return invalid_argument_error("tokenizer: 'tokenizer.ggml.pre' in " + where(file) + " is " +
                                    std::string(gguf::value_type_name(pre->type)) +
                                    ", expected string");
    }
    spec.pre = *pre->as_string();
  }
  if (const std::string* name = file.get_string("general.name")) spec.general_name = *name;

  HANGAR_RETURN_IF_ERROR(read_string_array(file, "tokenizer.ggml.tokens", &spec.tokens));
  HANGAR_RETURN_IF_ERROR(read_string_array(file, "tokenizer.ggml.merges", &spec.merges));

  if (const gguf::Value* v = file.find("tokenizer.ggml.scores")) {
    const gguf::Array* a = v->as_array();
    if (a == nullptr) {
      return invalid_argument_error("tokenizer: 'tokenizer.ggml.scores' in " + where(file) +
                                    " is " + std::string(gguf::value_type_name(v->type)) +
                                    ", expected an array of float32");
    }
    spec.scores.reserve(a->items.size());
    for (size_t i = 0; i < a->items.size(); ++i) {
      const std::optional<double> f = a->items[i].as_float();
      if (!f) {
        return invalid_argument_error("tokenizer: 'tokenizer.ggml.scores'[" + std::to_string(i) +
                                      "] in " + where(file) + " is not a number");
      }
      spec.scores.push_back(static_cast<float>(*f));
    }
  }
  if (const gguf::Value* v = file.find("tokenizer.ggml.token_type")) {
    const gguf::Array* a = v->as_array();
    if (a == nullptr) {
      return invalid_argument_error("tokenizer: 'tokenizer.ggml.token_type' in " + where(file) +
                                    " is " + std::string(gguf::value_type_name(v->type)) +
                                    ", expected an array of int32");
    }
    spec.token_types.reserve(a->items.size());
    for (size_t i = 0; i < a->items.size(); ++i) {
      const std::optional<int64_t> t = a->items[i].as_int();
      if (!t) {
        return invalid_argument_error("tokenizer: 'tokenizer.ggml.token_type'[" +
                                      std::to_string(i) + "] in " + where(file) +
                                      " is not an integer");
      }
      // Out-of-range types become UNDEFINED in build(), as llama.cpp's switch does.
      spec.token_types.push_back(*t < 0 || *t > 6 ? 0 : static_cast<int32_t>(*t));
    }
  }

  struct IdKey {
    const char* key;
    std::optional<uint32_t> VocabSpec::*field;
  };
  static constexpr std::array<IdKey, 14> kIdKeys = {{
      {"tokenizer.ggml.bos_token_id", &VocabSpec::bos},
      {"tokenizer.ggml.eos_token_id", &VocabSpec::eos},
      {"tokenizer.ggml.eot_token_id", &VocabSpec::eot},
      {"tokenizer.ggml.eom_token_id", &VocabSpec::eom},
      {"tokenizer.ggml.unknown_token_id", &VocabSpec::unk},
      {"tokenizer.ggml.seperator_token_id", &VocabSpec::sep},
      {"tokenizer.ggml.padding_token_id", &VocabSpec::pad},
      {"tokenizer.ggml.mask_token_id", &VocabSpec::mask},
      {"tokenizer.ggml.fim_pre_token_id", &VocabSpec::fim_pre},
      {"tokenizer.ggml.fim_suf_token_id", &VocabSpec::fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &VocabSpec::fim_mid},
      {"tokenizer.ggml.fim_pad_token_id", &VocabSpec::fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &VocabSpec::fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &VocabSpec::fim_sep},
  }};
  for (const IdKey& k : kIdKeys)
    HANGAR_RETURN_IF_ERROR(read_optional_id(file, k.key, &(spec.*k.field)));
  HANGAR_RETURN_IF_ERROR(read_optional_bool(file, "tokenizer.ggml.add_bos_token", &spec.add_bos));
  HANGAR_RETURN_IF_ERROR(read_optional_bool(file, "tokenizer.ggml.add_eos_token", &spec.add_eos));
  HANGAR_RETURN_IF_ERROR(
      read_optional_bool(file, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix));
  return spec;
}

// ---- building the vocabulary ----------------------------------------------------------------

namespace {

bool in_list(std::string_view s, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

uint32_t attr_from_type(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kUnknown:
      return kAttrUnknown;
    case TokenType::kUnused:
      return kAttrUnused;
    case TokenType::kNormal:
      return kAttrNormal;
    case TokenType::kControl:
      return kAttrControl;
    case TokenType::kUserDefined:
      return kAttrUserDefined;
    case TokenType::kByte:
      return kAttrByte;
    case TokenType::kUndefined:
      return kAttrUndefined;
  }
  return kAttrUndefined;
}

}  // namespace

StatusOr<Vocab> Vocab::build(VocabSpec spec) {
  Vocab v;
  const size_t n = spec.tokens.size();
  if (n == 0) return invalid_argument_error("tokenizer: the vocabulary has no tokens");
  if (n > 0x7FFFFFFF) return invalid_argument_error("tokenizer: too many tokens");
  if (!spec.scores.empty() && spec.scores.size() != n) {
    return invalid_argument_error("tokenizer: tokenizer.ggml.scores has " +
                                  std::to_string(spec.scores.size()) + " entries but there are " +
                                  std::to_string(n) + " tokens");
  }
  if (!spec.token_types.empty() && spec.token_types.size() != n) {
    return invalid_argument_error("tokenizer: tokenizer.ggml.token_type has " +
                                  std::to_string(spec.token_types.size()) +
                                  " entries but there are " + std::to_string(n) + " tokens");
  }

  // Model type and its defaults (llama.cpp: "determine vocab type").
  if (spec.model == "llama") {
    v.type_ = VocabType::kSpm;
    v.bos_ = 1;
    v.eos_ = 2;
    v.unk_ = 0;
    v.pre_type_ = PreTokenizerType::kDefault;
    v.add_space_prefix_ = true;
    v.clean_spaces_ = false;
    v.add_bos_ = true;
    v.add_eos_ = false;
  } else if (spec.model == "gpt2") {
    v.type_ = VocabType::kBpe;
    if (spec.merges.empty()) {
      return invalid_argument_error(
          "tokenizer: a gpt2 (BPE) vocabulary needs tokenizer.ggml.merges, which is missing");
    }
    v.bos_ = 11;
    v.eos_ = 11;
    v.add_space_prefix_ = false;
    v.clean_spaces_ = true;
    const std::string& pre = spec.pre;
    if (pre.empty()) {
      spdlog::warn("tokenizer: missing tokenizer.ggml.pre, using the 'default' pre-tokenizer");
      v.pre_type_ = PreTokenizerType::kDefault;
    } else if (pre == "default") {
      v.pre_type_ = PreTokenizerType::kDefault;
    } else if (in_list(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                             "midm-2.0", "lfm2"})) {
      v.pre_type_ = PreTokenizerType::kLlama3;
      v.ignore_merges_ = true;
      v.add_bos_ = true;
    } else if (in_list(pre, {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en",
                             "jina-v2-es", "jina-v2-de"})) {
      v.pre_type_ = PreTokenizerType::kGpt2;
    } else if (in_list(pre, {"qwen2", "deepseek-r1-qwen", "megrez"})) {
      v.pre_type_ = PreTokenizerType::kQwen2;
      v.clean_spaces_ = false;
    } else {
      // llama.cpp refuses such a file; we tokenize it with the default regexes instead, which
      // may split text differently from the model's own tokenizer.
      spdlog::warn(
          "tokenizer: unknown pre-tokenizer '{}', using the 'default' one (ids may differ from "
          "the model's own tokenizer)",
          pre);
      v.pre_type_ = PreTokenizerType::kDefault;
    }
    v.merges_ = std::move(spec.merges);
  } else {
    return invalid_argument_error("tokenizer: unsupported tokenizer.ggml.model '" + spec.model +
                                  "' (supported: llama, gpt2)");
  }
  if (spec.add_space_prefix) v.add_space_prefix_ = *spec.add_space_prefix;

  // Tokens and attributes.
  v.texts_ = std::move(spec.tokens);
  for (size_t i = 0; i < n; ++i) {
    if (v.texts_[i].empty()) {
      spdlog::warn("tokenizer: empty token at index {}", i);
      v.texts_[i] = "[EMPTY_" + std::to_string(i) + "]";
    }
  }
  v.scores_ = spec.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(spec.scores);
  v.attrs_.resize(n, kAttrNormal);
  if (!spec.token_types.empty()) {
    for (size_t i = 0; i < n; ++i) v.attrs_[i] = attr_from_type(spec.token_types[i]);
  }
  // Later duplicates win, as in llama.cpp's `token_to_id[word] = i`.
  v.text_index_.build(v.texts_);

  v.apply_special_ids(spec);
  if (spec.add_bos) v.add_bos_ = *spec.add_bos;
  if (spec.add_eos) v.add_eos_ = *spec.add_eos;
  v.detect_special_tokens_by_text();

  // Special-token cache: the texts tokenize() splits out, longest first. std::sort (not
  // stable_sort) on ids in increasing order with the same comparator as llama.cpp, so ties
  // come out in the same order.
  for (TokenId id = 0; id < v.n_tokens(); ++id) {
    if (v.attrs_[static_cast<size_t>(id)] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
      v.special_tokens_.push_back(id);
    }
  }
  std::sort(v.special_tokens_.begin(), v.special_tokens_.end(),
            [&v](TokenId a, TokenId b) { return v.text(a).size() > v.text(b).size(); });

  v.apply_model_attributes(spec.general_name, spec.pre);
  return v;
}

void Vocab::apply_special_ids(const VocabSpec& spec) {
  struct Slot {
    const std::optional<uint32_t>* value;
    TokenId* id;
    const char* name;
  };
  const std::array<Slot, 14> slots = {{
      {&spec.bos, &bos_, "bos"},
      {&spec.eos, &eos_, "eos"},
      {&spec.eot, &eot_, "eot"},
      {&spec.eom, &eom_, "eom"},
      {&spec.unk, &unk_, "unknown"},
      {&spec.sep, &sep_, "seperator"},
      {&spec.pad, &pad_, "padding"},
      {&spec.mask, &mask_, "mask"},
      {&spec.fim_pre, &fim_pre_, "fim_pre"},
      {&spec.fim_suf, &fim_suf_, "fim_suf"},
      {&spec.fim_mid, &fim_mid_, "fim_mid"},
      {&spec.fim_pad, &fim_pad_, "fim_pad"},
      {&spec.fim_rep, &fim_rep_, "fim_rep"},
      {&spec.fim_sep, &fim_sep_, "fim_sep"},
  }};
  for (const Slot& s : slots) {
    if (!*s.value) continue;
    if (**s.value >= texts_.size()) {
      spdlog::warn("tokenizer: bad special token {}_token_id = {} (vocabulary has {}), using {}",
                   s.name, **s.value, texts_.size(), *s.id);
      continue;
    }
    *s.id = static_cast<TokenId>(**s.value);
  }
}

void Vocab::detect_special_tokens_by_text() {
  // llama.cpp finds these by text when the file does not name them, and adds CONTROL to their
  // attributes so that plain text never produces them. It walks a hash map, so when two
  // candidates exist its pick is arbitrary; we take the first in list order.
  auto force_control = [this](TokenId id) {
    uint32_t& attr = attrs_[static_cast<size_t>(id)];
    if ((attr & kAttrControl) == 0) {
      spdlog::debug("tokenizer: token {} '{}' looks like a control token; treating it as one", id,
                    text(id));
      attr |= kAttrControl;
    }
  };
  auto detect = [&](TokenId* slot, std::initializer_list<std::string_view> texts) {
    if (*slot != kNoToken) return;
    for (std::string_view text : texts) {
      const TokenId id = text_to_token(text);
      if (id == kNoToken) continue;
      *slot = id;
      force_control(id);
      return;
    }
  };
  detect(&eot_, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                 "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>"});
  detect(&eom_, {"<|eom_id|>"});
  detect(&fim_pre_, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "<|code_prefix|>",
                     "<|prefix|>"});
  detect(&fim_suf_, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "<|code_suffix|>",
                     "<|suffix|>"});
  detect(&fim_mid_, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "<|code_middle|>",
                     "<|middle|>"});
  detect(&fim_pad_, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
  detect(&fim_rep_, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
  detect(&fim_sep_, {"<|file_sep|>"});

  // Control tokens named "...unused..." are unused.
  for (size_t i = 0; i < texts_.size(); ++i) {
    if ((attrs_[i] & kAttrControl) && texts_[i].find("unused") != std::string::npos) {
      attrs_[i] |= kAttrUnused;
    }
  }

  // End-of-generation tokens: the FIM pad/repo/separator ids, every token with one of these
  // texts, then EOS/EOT/EOM.
  for (TokenId id : {fim_pad_, fim_rep_, fim_sep_}) {
    if (id != kNoToken) eog_ids_.push_back(id);
  }
  for (std::string_view text : {"<|eot_id|>",
                                "<|im_end|>",
                                "<|end|>",
                                "<|return|>",
                                "<|call|>",
                                "<|flush|>",
                                "<|calls|>",
                                "<end_of_turn>",
                                "<|endoftext|>",
                                "</s>",
                                "<|eom_id|>",
                                "<EOT>",
                                "_<EOT>",
                                "[EOT]",
                                "[EOS]",
                                "<|end_of_text|>",
                                "<end_of_utterance>",
                                "<eos>",
                                "<turn|>",
                                "<|tool_response>"}) {
    const TokenId id = text_to_token(text);
    if (id == kNoToken) continue;
    eog_ids_.push_back(id);
    force_control(id);
  }
  // gpt-oss: these are always rendered.
  for (std::string_view text : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    const TokenId id = text_to_token(text);
    if (id != kNoToken) attrs_[static_cast<size_t>(id)] = kAttrUserDefined;
  }
  for (TokenId id : {eos_, eot_, eom_}) {
    if (id != kNoToken) eog_ids_.push_back(id);
  }
  std::sort(eog_ids_.begin(), eog_ids_.end());
  eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());

  auto eog_with_text = [this](std::string_view text) {
    for (TokenId id : eog_ids_) {
      if (this->text(id) == text) return id;
    }
    return kNoToken;
  };
  auto drop_eog = [this](TokenId id, uint32_t new_attr) {
    eog_ids_.erase(std::find(eog_ids_.begin(), eog_ids_.end(), id));
    attrs_[static_cast<size_t>(id)] = new_attr;
  };
  // o200k_harmony and solar-open: "<|end|>" ends a message, not the generation.
  const TokenId end_id = eog_with_text("<|end|>");
  const bool has_call =
      eog_with_text("<|call|>") != kNoToken || eog_with_text("<|calls|>") != kNoToken;
  if (end_id != kNoToken && has_call &&
      (eog_with_text("<|return|>") != kNoToken || eog_with_text("<|flush|>") != kNoToken)) {
    drop_eog(end_id, kAttrUserDefined);
  }
  // Gemma 4: "</s>" is ordinary text there.
  const TokenId s_id = eog_with_text("</s>");
  if (s_id != kNoToken && eog_with_text("<|tool_response>") != kNoToken) {
    drop_eog(s_id, kAttrNormal);
  }
}

void Vocab::apply_model_attributes(const std::string& general_name, const std::string& pre) {
  std::string name = general_name;
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto set_attr = [this](std::string_view text, uint32_t bit, bool on) {
    const TokenId id = text_to_token(text);
    if (id == kNoToken) return;
    uint32_t& a = attrs_[static_cast<size_t>(id)];
    a = on ? (a | bit) : (a & ~bit);
  };
  auto contains_any = [](const std::string& s, std::initializer_list<std::string_view> subs) {
    for (std::string_view sub : subs) {
      if (s.find(sub) != std::string::npos) return true;
    }
    return false;
  };
  if (contains_any(pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"})) {
    set_attr("<mask>", kAttrLstrip, true);
  } else if (contains_any(name, {"phi-3", "phi3"})) {
    // Phi-3's special tokens swallow the whitespace after them, except these three.
    for (TokenId id : special_tokens_) attrs_[static_cast<size_t>(id)] |= kAttrRstrip;
    set_attr("</s>", kAttrRstrip, true);
    for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) {
      set_attr(text, kAttrRstrip, false);
    }
  }
}

TokenId Vocab::text_to_token(std::string_view text) const { return text_index_.find(text, texts_); }

TokenId Vocab::byte_to_token(uint8_t byte) const {
  if (type_ == VocabType::kSpm) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    const char name[6] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
    const TokenId id = text_to_token(std::string_view(name, 6));
    if (id != kNoToken) return id;
    return text_to_token(std::string_view(reinterpret_cast<const char*>(&byte), 1));
  }
  return text_to_token(byte_to_gpt2_piece(byte));
}

int Vocab::token_to_byte(TokenId id) const {
  if (!valid(id)) return -1;
  const std::string& t = text(id);
  // "<0xNN>": parse the hex digits the way strtol would (stops at the first non-digit).
  if (t.size() < 4 || t.compare(0, 3, "<0x") != 0) return -1;
  int value = 0;
  size_t digits = 0;
  for (size_t i = 3; i < t.size() && digits < 2; ++i, ++digits) {
    const char c = t[i];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      break;
    value = value * 16 + d;
  }
  return digits == 0 ? -1 : value;
}

bool Vocab::is_eog(TokenId id) const {
  return id != kNoToken && std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

}  // namespace hangar::engine
