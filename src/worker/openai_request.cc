#include "worker/openai_request.h"

#include <cmath>
#include <limits>

#include "common/json_limits.h"

namespace hangar::worker {
namespace {

using nlohmann::json;

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_float:
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "a number";
    default:
      return "an unsupported value";
  }
}

// A short description of a value for error messages: scalars shown (strings cut to 40 bytes
// at a UTF-8 boundary), arrays and objects by their size only. Never serialises a container,
// whose dump would recurse as deep as the client nested it.
std::string describe(const json& v) {
  switch (v.type()) {
    case json::value_t::array:
      return "an array of " + std::to_string(v.size()) + (v.size() == 1 ? " item" : " items");
    case json::value_t::object:
      return "an object with " + std::to_string(v.size()) + (v.size() == 1 ? " key" : " keys");
    case json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      constexpr size_t kShown = 40;
      if (s.size() <= kShown) {
        return "a string " + json(s).dump(-1, ' ', false, json::error_handler_t::replace);
      }
      size_t cut = kShown;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
      return "a string of " + std::to_string(s.size()) + " bytes " +
             json(s.substr(0, cut)).dump(-1, ' ', false, json::error_handler_t::replace) + "...";
    }
    case json::value_t::null:
      return "null";
    default:  // a number or a boolean: short and flat
      return type_name(v) + " " + v.dump();
  }
}

// The value itself for range errors (always a number there).
std::string show(const json& v) { return v.is_number() ? v.dump() : describe(v); }

// Concatenates by appending (gcc 12's -Wrestrict misfires on `"lit" + std::string` chains).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

Status wrong_type(std::string_view field, std::string_view want, const json& got) {
  return invalid_argument_error(
      cat("'", field, "' must be ", want, ", got ", describe(got)));
}

// The value of an integral JSON number (1 and 1.0 both count), or nullopt.
std::optional<int64_t> as_integer(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
      return static_cast<int64_t>(d);
    }
  }
  return std::nullopt;
}

// Reads optional fields of one JSON object; absent and null leave the output unchanged.
class Fields {
 public:
  explicit Fields(const json& obj, std::string prefix = "") : obj_(obj), prefix_(prefix) {}

  const json* find(std::string_view name) const {
    auto it = obj_.find(name);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has(std::string_view name) const { return find(name) != nullptr; }
  std::string path(std::string_view name) const { return prefix_ + std::string(name); }

  Status number(std::string_view name, float* out, double min, double max) const {
    const json* v = find(name);
    if (v == nullptr) return ok_status();
    if (!v->is_number()) return wrong_type(path(name), "a number", *v);
    double d = v->get<double>();
    if (!(d >= min && d <= max)) {
      return invalid_argument_error(std::string("'") + path(name) + "' must be between " +
                                    fmt_num(min) + " and " + fmt_num(max) + ", got " + show(*v));
    }
    *out = static_cast<float>(d);
    return ok_status();
  }

  Status integer(std::string_view name, int64_t* out, int64_t min, int64_t max) const {
    const json* v = find(name);
    if (v == nullptr) return ok_status();
    std::optional<int64_t> i = as_integer(*v);
    if (!i) return wrong_type(path(name), "an integer", *v);
    if (*i < min || *i > max) {
      return invalid_argument_error(std::string("'") + path(name) + "' must be between " +
                                    std::to_string(min) + " and " + std::to_string(max) + ", got " +
                                    show(*v));
    }
    *out = *i;
    return ok_status();
  }

  Status integer32(std::string_view name, int32_t* out, int64_t min, int64_t max) const {
    int64_t v = *out;
    HANGAR_RETURN_IF_ERROR(integer(name, &v, min, max));
    *out = static_cast<int32_t>(v);
    return ok_status();
  }

  Status boolean(std::string_view name, bool* out) const {
    const json* v = find(name);
    if (v == nullptr) return ok_status();
    if (!v->is_boolean()) return wrong_type(path(name), "a boolean", *v);
    *out = v->get<bool>();
    return ok_status();
  }

  Status string(std::string_view name, std::string* out) const {
    const json* v = find(name);
    if (v == nullptr) return ok_status();
    if (!v->is_string()) return wrong_type(path(name), "a string", *v);
    *out = v->get<std::string>();
    return ok_status();
  }

 private:
  static std::string fmt_num(double d) {
    if (d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
    std::string s = std::to_string(d);
    while (!s.empty() && s.back() == '0') s.pop_back();
    return s;
  }

  const json& obj_;
  std::string prefix_;
};

Status require_object(const json& body) {
  if (!body.is_object()) {
    return invalid_argument_error("request body must be a JSON object, got " + type_name(body));
  }
  return ok_status();
}

constexpr int64_t kMaxTokenId = std::numeric_limits<int32_t>::max();

StatusOr<std::vector<int32_t>> parse_token_array(const json& arr, std::string_view field) {
  std::vector<int32_t> out;
  out.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    std::optional<int64_t> id = as_integer(arr[i]);
    if (!id || *id < 0 || *id > kMaxTokenId) {
      return invalid_argument_error(std::string("'") + std::string(field) + "[" +
                                    std::to_string(i) +
                                    "]' must be a token id (an integer >= 0), got " + describe(arr[i]));
    }
    out.push_back(static_cast<int32_t>(*id));
  }
  return out;
}

// A prompt field: "text", [ids], ["text", ...] or [[ids], ...].
StatusOr<std::vector<Prompt>> parse_prompts(const json& v, std::string_view field) {
  std::vector<Prompt> out;
  if (v.is_string()) {
    out.push_back({false, v.get<std::string>(), {}});
    return out;
  }
  if (!v.is_array()) {
    return wrong_type(field, "a string, an array of strings or an array of token ids", v);
  }
  if (v.empty())
    return invalid_argument_error(std::string("'") + std::string(field) + "' must not be empty");
  if (as_integer(v[0])) {
    HANGAR_ASSIGN_OR_RETURN(std::vector<int32_t> ids, parse_token_array(v, field));
    out.push_back({true, "", std::move(ids)});
    return out;
  }
  if (v.size() > kMaxPrompts) {
    return invalid_argument_error(std::string("'") + std::string(field) + "' has " +
                                  std::to_string(v.size()) + " prompts; at most " +
                                  std::to_string(kMaxPrompts) + " are allowed");
  }
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string item = std::string(field) + "[" + std::to_string(i) + "]";
    if (v[i].is_string()) {
      out.push_back({false, v[i].get<std::string>(), {}});
    } else if (v[i].is_array()) {
      if (v[i].empty())
        return invalid_argument_error(std::string("'") + item + "' must not be empty");
      HANGAR_ASSIGN_OR_RETURN(std::vector<int32_t> ids, parse_token_array(v[i], item));
      out.push_back({true, "", std::move(ids)});
    } else {
      return wrong_type(item, "a string or an array of token ids", v[i]);
    }
  }
  return out;
}

Status parse_stop(const Fields& f, std::vector<std::string>* out) {
  const json* v = f.find("stop");
  if (v == nullptr) return ok_status();
  if (v->is_string()) {
    out->assign({v->get<std::string>()});
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings) {
      return invalid_argument_error("'stop' has " + std::to_string(v->size()) +
                                    " strings; at most " + std::to_string(kMaxStopStrings) +
                                    " are allowed");
    }
    out->clear();
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string())
        return wrong_type("stop[" + std::to_string(i) + "]", "a string", (*v)[i]);
      out->push_back((*v)[i].get<std::string>());
    }
  } else {
    return wrong_type("stop", "a string or an array of strings", *v);
  }
  // An empty stop string would match everywhere: drop it, as llama-server does.
  std::erase_if(*out, [](const std::string& s) { return s.empty(); });
  return ok_status();
}

// Fields every generation endpoint shares.
Status parse_sampling(const Fields& f, bool native, SamplingParams* s) {
  HANGAR_RETURN_IF_ERROR(f.number("temperature", &s->temperature, 0.0, 1e6));
  HANGAR_RETURN_IF_ERROR(f.number("top_p", &s->top_p, 0.0, 1.0));
  HANGAR_RETURN_IF_ERROR(f.integer32("top_k", &s->top_k, 0, kMaxTokenId));
  HANGAR_RETURN_IF_ERROR(f.number("min_p", &s->min_p, 0.0, 1.0));
  HANGAR_RETURN_IF_ERROR(f.number("presence_penalty", &s->presence_penalty, -2.0, 2.0));
  HANGAR_RETURN_IF_ERROR(f.number("frequency_penalty", &s->frequency_penalty, -2.0, 2.0));
  HANGAR_RETURN_IF_ERROR(f.number("repeat_penalty", &s->repeat_penalty, 0.0, 1e6));
  HANGAR_RETURN_IF_ERROR(f.integer32("repeat_last_n", &s->repeat_last_n, -1, kMaxTokenId));
  int64_t seed = -1;
  HANGAR_RETURN_IF_ERROR(f.integer("seed", &seed, -1, std::numeric_limits<int64_t>::max()));
  if (seed >= 0) s->seed = static_cast<uint64_t>(seed);
  HANGAR_RETURN_IF_ERROR(parse_stop(f, &s->stop));
  HANGAR_RETURN_IF_ERROR(f.boolean("cache_prompt", &s->cache_prompt));

  // Token limits: OpenAI's max_completion_tokens (preferred) or max_tokens must be >= 1;
  // llama-server's n_predict may be -1 (no limit) or 0 (evaluate the prompt only).
  int64_t n_predict = s->max_tokens;
  HANGAR_RETURN_IF_ERROR(f.integer("n_predict", &n_predict, -1, kMaxTokenId));
  s->max_tokens = static_cast<int32_t>(n_predict);
  if (!native) {
    for (std::string_view name : {"max_tokens", "max_completion_tokens"}) {
      int64_t v = 0;
      if (!f.has(name)) continue;
      HANGAR_RETURN_IF_ERROR(f.integer(name, &v, std::numeric_limits<int64_t>::min(), kMaxTokenId));
      if (v < 1) {
        return invalid_argument_error(std::string("'") + std::string(name) +
                                      "' must be at least 1, got " + std::to_string(v));
      }
      s->max_tokens = static_cast<int32_t>(v);
    }
  }

  int64_t n = 1;
  HANGAR_RETURN_IF_ERROR(
      f.integer("n", &n, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  if (n != 1) {
    return invalid_argument_error("'n' must be 1 (one choice per request is supported), got " +
                                  std::to_string(n));
  }
  if (native) {
    int64_t n_probs = 0;
    HANGAR_RETURN_IF_ERROR(f.integer("n_probs", &n_probs, 0, 100));
    if (n_probs > 0) {
      s->logprobs = true;
      s->top_logprobs = static_cast<int32_t>(n_probs);
    }
  }
  return ok_status();
}

Status parse_stream(const Fields& f, StreamParams* out) {
  HANGAR_RETURN_IF_ERROR(f.boolean("stream", &out->stream));
  if (const json* so = f.find("stream_options")) {
    if (!so->is_object()) return wrong_type("stream_options", "an object", *so);
    HANGAR_RETURN_IF_ERROR(
        Fields(*so, "stream_options.").boolean("include_usage", &out->include_usage));
  }
  return ok_status();
}

}  // namespace

StatusOr<json> parse_body(std::string_view body) {
  // Before the parser: a body nested deeper than any request needs is refused unparsed, so
  // nothing downstream (copies, dumps, comparisons) recurses as deep as the client chose.
  HANGAR_RETURN_IF_ERROR(check_json_depth(body));
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return invalid_argument_error("request body is not valid JSON (" + std::to_string(body.size()) +
                                  " bytes)");
  }
  HANGAR_RETURN_IF_ERROR(require_object(j));
  return j;
}

StatusOr<std::vector<ChatMessage>> parse_messages(const json& v) {
  if (!v.is_array()) return wrong_type("messages", "an array", v);
  if (v.empty()) return invalid_argument_error("'messages' must not be empty");
  if (v.size() > kMaxMessages) {
    return invalid_argument_error("'messages' has " + std::to_string(v.size()) +
                                  " entries; at most " + std::to_string(kMaxMessages) +
                                  " are allowed");
  }
  std::vector<ChatMessage> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    const json& m = v[i];
    if (!m.is_object()) return wrong_type(at, "an object", m);
    ChatMessage msg;
    auto role = m.find("role");
    if (role == m.end() || role->is_null()) {
      return invalid_argument_error(std::string("'") + at + ".role' is missing");
    }
    if (!role->is_string()) return wrong_type(at + ".role", "a string", *role);
    msg.role = role->get<std::string>();
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      // An assistant message with only tool calls has no content.
    } else if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (size_t p = 0; p < content->size(); ++p) {
        const std::string part_at = at + ".content[" + std::to_string(p) + "]";
        const json& part = (*content)[p];
        if (!part.is_object()) return wrong_type(part_at, "an object", part);
        auto type = part.find("type");
        if (type == part.end() || !type->is_string()) {
          return invalid_argument_error(std::string("'") + part_at + ".type' must be a string");
        }
        if (*type != "text") {
          return invalid_argument_error(std::string("'") + part_at + ".type' is " +
                                        describe(*type) + "; only \"text\" parts are supported");
        }
        auto text = part.find("text");
        if (text == part.end() || !text->is_string()) {
          return invalid_argument_error(std::string("'") + part_at + ".text' must be a string");
        }
        msg.content += text->get<std::string>();
      }
    } else {
      return wrong_type(at + ".content", "a string, an array of parts or null", *content);
    }
    out.push_back(std::move(msg));
  }
  return out;
}

StatusOr<ChatCompletionRequest> parse_chat_completion_request(const json& body,
                                                              const SamplingParams& defaults) {
  HANGAR_RETURN_IF_ERROR(require_object(body));
  ChatCompletionRequest r;
  r.sampling = defaults;
  Fields f(body);
  HANGAR_RETURN_IF_ERROR(f.string("model", &r.model));
  const json* messages = f.find("messages");
  if (messages == nullptr) return invalid_argument_error("'messages' is missing");
  HANGAR_ASSIGN_OR_RETURN(r.messages, parse_messages(*messages));
  HANGAR_RETURN_IF_ERROR(parse_sampling(f, /*native=*/false, &r.sampling));
  HANGAR_RETURN_IF_ERROR(parse_stream(f, &r.stream));
  HANGAR_RETURN_IF_ERROR(f.boolean("logprobs", &r.sampling.logprobs));
  HANGAR_RETURN_IF_ERROR(f.integer32("top_logprobs", &r.sampling.top_logprobs, 0, 20));
  return r;
}

StatusOr<CompletionRequest> parse_completion_request(const json& body, bool native,
                                                     const SamplingParams& defaults) {
  HANGAR_RETURN_IF_ERROR(require_object(body));
  CompletionRequest r;
  r.sampling = defaults;
  r.native = native;
  Fields f(body);
  HANGAR_RETURN_IF_ERROR(f.string("model", &r.model));
  const json* prompt = f.find("prompt");
  if (prompt == nullptr) return invalid_argument_error("'prompt' is missing");
  HANGAR_ASSIGN_OR_RETURN(r.prompts, parse_prompts(*prompt, "prompt"));
  HANGAR_RETURN_IF_ERROR(parse_sampling(f, native, &r.sampling));
  HANGAR_RETURN_IF_ERROR(parse_stream(f, &r.stream));
  if (!native) {
    // The legacy completions API's logprobs is the number of alternatives (0..5).
    int64_t logprobs = -1;
    HANGAR_RETURN_IF_ERROR(f.integer("logprobs", &logprobs, 0, 5));
    if (logprobs >= 0) {
      r.sampling.logprobs = true;
      r.sampling.top_logprobs = static_cast<int32_t>(logprobs);
    }
  }
  return r;
}

StatusOr<TokenizeRequest> parse_tokenize_request(const json& body) {
  HANGAR_RETURN_IF_ERROR(require_object(body));
  TokenizeRequest r;
  Fields f(body);
  if (!f.has("content")) return invalid_argument_error("'content' is missing");
  HANGAR_RETURN_IF_ERROR(f.string("content", &r.content));
  HANGAR_RETURN_IF_ERROR(f.boolean("add_special", &r.add_special));
  HANGAR_RETURN_IF_ERROR(f.boolean("parse_special", &r.parse_special));
  HANGAR_RETURN_IF_ERROR(f.boolean("with_pieces", &r.with_pieces));
  return r;
}

StatusOr<DetokenizeRequest> parse_detokenize_request(const json& body) {
  HANGAR_RETURN_IF_ERROR(require_object(body));
  Fields f(body);
  const json* tokens = f.find("tokens");
  if (tokens == nullptr) return invalid_argument_error("'tokens' is missing");
  if (!tokens->is_array()) return wrong_type("tokens", "an array of token ids", *tokens);
  DetokenizeRequest r;
  HANGAR_ASSIGN_OR_RETURN(r.tokens, parse_token_array(*tokens, "tokens"));
  return r;
}

StatusOr<ApplyTemplateRequest> parse_apply_template_request(const json& body) {
  HANGAR_RETURN_IF_ERROR(require_object(body));
  Fields f(body);
  const json* messages = f.find("messages");
  if (messages == nullptr) return invalid_argument_error("'messages' is missing");
  ApplyTemplateRequest r;
  HANGAR_ASSIGN_OR_RETURN(r.messages, parse_messages(*messages));
  HANGAR_RETURN_IF_ERROR(f.boolean("add_generation_prompt", &r.add_generation_prompt));
  return r;
}

StatusOr<EmbeddingsRequest> parse_embeddings_request(const json& body, bool native) {
  HANGAR_RETURN_IF_ERROR(require_object(body));
  Fields f(body);
  EmbeddingsRequest r;
  r.native = native;
  HANGAR_RETURN_IF_ERROR(f.string("model", &r.model));
  // llama-server takes "content" on /embedding and either name on /v1/embeddings.
  const char* field = native ? "content" : "input";
  const json* input = f.find(field);
  if (input == nullptr) {
    field = native ? "input" : "content";
    input = f.find(field);
  }
  if (input == nullptr) {
    return invalid_argument_error(native ? "'content' is missing" : "'input' is missing");
  }
  HANGAR_ASSIGN_OR_RETURN(r.inputs, parse_prompts(*input, field));
  std::string encoding = "float";
  HANGAR_RETURN_IF_ERROR(f.string("encoding_format", &encoding));
  if (encoding != "float") {
    return invalid_argument_error("'encoding_format' must be \"float\", got " + describe(json(encoding)));
  }
  return r;
}

}  // namespace hangar::worker
