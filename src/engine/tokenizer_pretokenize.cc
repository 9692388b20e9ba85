#include "engine/tokenizer_pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "engine/unicode.h"

namespace hangar::engine {

namespace {

// llama.cpp's whitespace set, for use inside a character class.
constexpr std::string_view kWs = R"(\t-\r \x{85}\p{Z})";

std::string expand(std::string_view pattern) {
  // "%s" stands for the whitespace set inside a class.
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == 's') {
      out += kWs;
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

// GPT-2's regex, with the trailing `\s+` its reference implementation has (llama.cpp's
// hand-written splitter for this regex includes it).
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^%s\p{L}\p{N}]+|[%s]+(?![^%s])|[%s]+)";
constexpr std::string_view kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^%s\p{L}\p{N}]+[\r\n]*|[%s]*[\r\n]+|[%s]+(?![^%s])|[%s]+)";
constexpr std::string_view kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^%s\p{L}\p{N}]+[\r\n]*|[%s]*[\r\n]+|[%s]+(?![^%s])|[%s]+)";

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
using CodePtr = std::unique_ptr<pcre2_code, CodeDeleter>;

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
using MatchDataPtr = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

// A chunk of the sanitized subject: [begin, end) in bytes.
struct Chunk {
  size_t begin;
  size_t end;
};

}  // namespace

struct PreTokenizer::Compiled {
  std::vector<CodePtr> regexes;
};

std::vector<std::string> PreTokenizer::patterns(PreTokenizerType type) {
  switch (type) {
    case PreTokenizerType::kLlama3:
      return {expand(kLlama3)};
    case PreTokenizerType::kQwen2:
      return {expand(kQwen2)};
    case PreTokenizerType::kGpt2:
      return {expand(kGpt2)};
    case PreTokenizerType::kDefault:
      return {R"([\p{P}\$\+<=>\^~\|]+)", expand(kGpt2), R"(\p{N}+)", "[0-9][0-9][0-9]"};
  }
  return {};
}

StatusOr<PreTokenizer> PreTokenizer::create(PreTokenizerType type) {
  auto compiled = std::make_shared<Compiled>();
  for (const std::string& pattern : patterns(type)) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return internal_error("tokenizer: pre-tokenizer regex '" + pattern +
                            "' does not compile at " + std::to_string(error_offset) + ": " +
                            reinterpret_cast<const char*>(message));
    }
    CodePtr owned(code);
    // JIT is an optimisation only: without it pcre2_match interprets.
    if (pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) != 0) {
      spdlog::debug("tokenizer: PCRE2 JIT unavailable for '{}'", pattern);
    }
    compiled->regexes.push_back(std::move(owned));
  }
  return PreTokenizer(std::move(compiled));
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string> words;
  if (text.empty()) return words;
  const std::vector<uint32_t> cpts = decode_utf8(text);

  // PCRE2 needs well-formed UTF-8: code points that are not scalar values (which lenient
  // decoding lets through) are matched as U+FFFD but kept as they were in the output words.
  std::string subject;
  subject.reserve(text.size() + 8);
  for (uint32_t c : cpts) append_utf8(is_scalar_value(c) ? c : kReplacementChar, &subject);

  std::vector<Chunk> chunks = {{0, subject.size()}};
  std::vector<Chunk> next;
  for (const CodePtr& regex : compiled_->regexes) {
    MatchDataPtr md(pcre2_match_data_create_from_pattern(regex.get(), nullptr));
    if (!md) {
      spdlog::error("tokenizer: out of memory creating PCRE2 match data");
      break;
    }
    next.clear();
    next.reserve(chunks.size() * 2);
    for (const Chunk& chunk : chunks) {
      const auto* base = reinterpret_cast<PCRE2_SPTR>(subject.data() + chunk.begin);
      const size_t len = chunk.end - chunk.begin;
      size_t pos = 0;      // where the next search starts
      size_t emitted = 0;  // end of what has been emitted
      while (pos < len) {
        const int rc =
            pcre2_match(regex.get(), base, len, pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
        if (rc < 0) {
          if (rc != PCRE2_ERROR_NOMATCH) {
            spdlog::warn("tokenizer: PCRE2 match error {}; keeping the rest of the chunk whole",
                         rc);
          }
          break;
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        const size_t m_begin = ov[0];
        const size_t m_end = ov[1];
        if (m_end <= m_begin) {
          // An empty match (none of our regexes has one): step over one character.
          pos = m_begin + utf8_sequence_length(static_cast<uint8_t>(base[m_begin]));
          continue;
        }
        if (m_begin > emitted) next.push_back({chunk.begin + emitted, chunk.begin + m_begin});
        next.push_back({chunk.begin + m_begin, chunk.begin + m_end});
        emitted = m_end;
        pos = m_end;
      }
      if (emitted < len) next.push_back({chunk.begin + emitted, chunk.end});
    }
    std::swap(chunks, next);
  }

  // Back from subject bytes to the original code points (one lead byte per code point).
  words.reserve(chunks.size());
  size_t cpt_index = 0;
  for (const Chunk& chunk : chunks) {
    std::string word;
    for (size_t b = chunk.begin; b < chunk.end; ++b) {
      if ((static_cast<uint8_t>(subject[b]) & 0xC0) != 0x80) append_utf8(cpts[cpt_index++], &word);
    }
    words.push_back(std::move(word));
  }
  return words;
}

}  // namespace hangar::engine
