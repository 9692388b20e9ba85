#include "router/body_model.h"

#include <nlohmann/json.hpp>

namespace hangar::router {
namespace {

// A cursor over the body. Every method leaves pos_ on the first byte it did not consume.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  size_t pos() const { return pos_; }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  void skip_ws() {
    while (!at_end() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool eat(char c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }

  // At an opening quote: consumes the string; *raw is its text between the quotes (escapes
  // not decoded), *escaped whether it holds any.
  Status string(std::string_view* raw, bool* escaped) {
    const size_t open = pos_;
    ++pos_;
    *escaped = false;
    while (!at_end()) {
      const char c = s_[pos_];
      if (c == '"') {
        *raw = s_.substr(open + 1, pos_ - open - 1);
        ++pos_;
        return ok_status();
      }
      if (static_cast<unsigned char>(c) < 0x20) return error("a control character in a string");
      if (c == '\\') {
        *escaped = true;
        ++pos_;  // the escaped character (\uXXXX's digits are plain characters after it)
      }
      ++pos_;
    }
    pos_ = open;
    return error("an unterminated string");
  }

  // Skips one value of any type without decoding it.
  Status value() {
    const char c = peek();
    std::string_view raw;
    bool escaped;
    if (c == '"') return string(&raw, &escaped);
    if (c == '{' || c == '[') {
      // Nesting is counted, not checked pair by pair: the worker validates the body.
      size_t depth = 0;
      while (!at_end()) {
        const char d = s_[pos_];
        if (d == '"') {
          HANGAR_RETURN_IF_ERROR(string(&raw, &escaped));
          continue;
        }
        ++pos_;
        if (d == '{' || d == '[') {
          ++depth;
        } else if (d == '}' || d == ']') {
          if (--depth == 0) return ok_status();
        }
      }
      return error("an unterminated object or array");
    }
    const size_t start = pos_;
    while (!at_end()) {
      const char d = s_[pos_];
      if (d == ',' || d == '}' || d == ']' || d == ' ' || d == '\t' || d == '\n' || d == '\r') {
        break;
      }
      if (d == '"' || d == '{' || d == '[' || d == ':') return error("an unexpected character");
      ++pos_;
    }
    if (pos_ == start) return error("a missing value");
    return ok_status();
  }

  Status error(const std::string& what) const {
    return invalid_argument_error("request body is not valid JSON: " + what + " at byte " +
                                  std::to_string(pos_));
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

// The decoded text of a JSON string given without its quotes.
StatusOr<std::string> decode(std::string_view raw, bool escaped, size_t offset) {
  if (!escaped) return std::string(raw);
  try {
    std::string quoted;
    quoted.reserve(raw.size() + 2);
    quoted.push_back('"');
    quoted.append(raw);
    quoted.push_back('"');
    nlohmann::json j = nlohmann::json::parse(quoted);
    return j.get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return invalid_argument_error(
        "request body is not valid JSON: a bad escape in the string at "
        "byte " +
        std::to_string(offset));
  }
}

// After the "model" member: the rest of the top-level object must not name "model" again (we
// would route by the first while JSON libraries, the worker's among them, keep the last).
// Malformed JSON from here on is the worker's to report, so the scan just stops there.
Status no_second_model(Scanner& s) {
  for (;;) {
    s.skip_ws();
    if (!s.eat(',')) return ok_status();
    s.skip_ws();
    const size_t key_at = s.pos();
    std::string_view raw_key;
    bool key_escaped;
    if (s.peek() != '"' || !s.string(&raw_key, &key_escaped).ok()) return ok_status();
    auto key = decode(raw_key, key_escaped, key_at);
    if (!key.ok()) return ok_status();
    if (*key == "model") {
      return invalid_argument_error("field 'model' appears twice in the request body (byte " +
                                    std::to_string(key_at) + "); send it once");
    }
    s.skip_ws();
    if (!s.eat(':')) return ok_status();
    s.skip_ws();
    if (!s.value().ok()) return ok_status();
  }
}

}  // namespace

StatusOr<std::optional<std::string>> model_of_body(std::string_view body) {
  Scanner s(body);
  s.skip_ws();
  if (!s.eat('{')) {
    return invalid_argument_error("request body must be a JSON object (byte " +
                                  std::to_string(s.pos()) + ")");
  }
  s.skip_ws();
  if (s.eat('}')) return std::optional<std::string>();
  for (;;) {
    if (s.peek() != '"') return s.error("expected a member name");
    const size_t key_at = s.pos();
    std::string_view raw_key;
    bool key_escaped;
    HANGAR_RETURN_IF_ERROR(s.string(&raw_key, &key_escaped));
    HANGAR_ASSIGN_OR_RETURN(std::string key, decode(raw_key, key_escaped, key_at));
    s.skip_ws();
    if (!s.eat(':')) return s.error("expected ':'");
    s.skip_ws();
    if (key == "model") {
      if (s.peek() != '"') {
        return invalid_argument_error("field 'model' must be a string (byte " +
                                      std::to_string(s.pos()) + ")");
      }
      const size_t value_at = s.pos();
      std::string_view raw;
      bool escaped;
      HANGAR_RETURN_IF_ERROR(s.string(&raw, &escaped));
      HANGAR_ASSIGN_OR_RETURN(std::string model, decode(raw, escaped, value_at));
      HANGAR_RETURN_IF_ERROR(no_second_model(s));
      return std::optional<std::string>(std::move(model));
    }
    HANGAR_RETURN_IF_ERROR(s.value());
    s.skip_ws();
    if (s.eat(',')) {
      s.skip_ws();
      continue;
    }
    if (s.eat('}')) return std::optional<std::string>();
    return s.error("expected ',' or '}'");
  }
}

}  // namespace hangar::router
