#pragma once
// Parsing and validating the worker's request bodies: OpenAI's /v1/chat/completions,
// /v1/completions and /v1/embeddings, and llama-server's /completion, /tokenize, /detokenize,
// /apply-template and /embedding. Pure functions over the body text; they never throw.
//
// Rules (design §7): unknown fields are ignored (clients send tools, response_format, user...);
// `null` counts as absent; a known field with a wrong type or a value out of range is an
// InvalidArgument naming the field and describing the value by its type and size, never by
// serialising it (the API answers it with a 400). parse_body() refuses a body nested more than
// kMaxJsonDepth (common/json_limits.h) deep before parsing it.
//
// Thread-safety: pure functions over values.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "worker/chat_template.h"

namespace hangar::worker {

// Defaults are llama-server's.
struct SamplingParams {
  int32_t max_tokens = -1;  // -1: until end of generation or the slot's context is full
  float temperature = 0.8f;
  float top_p = 0.95f;
  int32_t top_k = 40;
  float min_p = 0.05f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repeat_penalty = 1.0f;
  int32_t repeat_last_n = 64;
  std::optional<uint64_t> seed;   // absent (or -1 in the request): a random seed
  std::vector<std::string> stop;  // generation ends before the first of these
  bool logprobs = false;
  int32_t top_logprobs = 0;  // alternatives per token when logprobs
  // llama-server's cache_prompt: reuse the KV of a prefix a slot's last task left (the answer is
  // the same; only the time differs).
  bool cache_prompt = true;
};

struct StreamParams {
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

struct ChatCompletionRequest {
  std::string model;
  std::vector<ChatMessage> messages;  // at least one
  SamplingParams sampling;
  StreamParams stream;
};

// One prompt: text, or token ids given directly.
struct Prompt {
  bool is_tokens = false;
  std::string text;
  std::vector<int32_t> tokens;
};

struct CompletionRequest {
  std::string model;
  std::vector<Prompt> prompts;  // at least one; several give one choice each
  SamplingParams sampling;
  StreamParams stream;
  bool native = false;  // llama-server's /completion shape rather than OpenAI's
};

struct TokenizeRequest {
  std::string content;
  bool add_special = false;   // add BOS/EOS as the model's vocabulary says
  bool parse_special = true;  // "<|im_start|>" in the text is the special token
  bool with_pieces = false;   // answer [{"id","piece"}] rather than [id]
};

struct DetokenizeRequest {
  std::vector<int32_t> tokens;
};

struct ApplyTemplateRequest {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = true;
};

struct EmbeddingsRequest {
  std::string model;
  std::vector<Prompt> inputs;  // at least one
  bool native = false;         // /embedding (llama-server) rather than /v1/embeddings
};

// Most prompts, stop strings and messages one request may carry.
inline constexpr size_t kMaxPrompts = 2048;
inline constexpr size_t kMaxStopStrings = 64;
inline constexpr size_t kMaxMessages = 100'000;

// The body as a JSON object, or InvalidArgument ("request body is not valid JSON ...").
StatusOr<nlohmann::json> parse_body(std::string_view body);

// `defaults`: the sampling a field left out takes (`hangar run --temp ...`; llama-server's
// defaults when not given).
StatusOr<ChatCompletionRequest> parse_chat_completion_request(const nlohmann::json& body,
                                                              const SamplingParams& defaults = {});
// /v1/completions (native=false) or /completion (native=true).
StatusOr<CompletionRequest> parse_completion_request(const nlohmann::json& body, bool native,
                                                     const SamplingParams& defaults = {});
StatusOr<TokenizeRequest> parse_tokenize_request(const nlohmann::json& body);
StatusOr<DetokenizeRequest> parse_detokenize_request(const nlohmann::json& body);
StatusOr<ApplyTemplateRequest> parse_apply_template_request(const nlohmann::json& body);
// /v1/embeddings ("input", native=false) or /embedding ("content", native=true).
StatusOr<EmbeddingsRequest> parse_embeddings_request(const nlohmann::json& body, bool native);

// The messages array of a chat request: [{role, content}], content a string, null, or an
// array of {"type":"text","text":…} parts (joined with no separator).
StatusOr<std::vector<ChatMessage>> parse_messages(const nlohmann::json& messages);

}  // namespace hangar::worker
