#pragma once
// Building the worker's response bodies in OpenAI's and llama-server's shapes: chat.completion
// and text_completion objects, their streamed chunks as SSE frames, /completion's native
// shape, /v1/models, /tokenize, /detokenize, /apply-template and the embeddings lists.
//
// Streams (design §7): the first chat chunk carries delta.role; finish_reason rides on the last
// content chunk; with stream_options.include_usage a chunk with empty choices and the usage
// follows; OpenAI streams end with `data: [DONE]` (llama-server's /completion stream does not).
// Text given to these builders must already be whole UTF-8 characters (see TextHoldback);
// invalid bytes become U+FFFD rather than an exception.
//
// Thread-safety: functions are pure; a *Stream object belongs to one request.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hangar::worker {

enum class FinishReason {
  kStop,    // end of generation token or a stop string: "stop"
  kLength,  // max_tokens or the context limit: "length"
};
std::string_view finish_reason_name(FinishReason reason);

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // of prompt_tokens, read from a slot's cache (cache_prompt)
  // {prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details: {cached_tokens}}
  nlohmann::json to_json() const;
};

// What every completion object carries.
struct ResponseMeta {
  std::string id;       // "chatcmpl-…" / "cmpl-…"
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// "<prefix>" followed by 24 random alphanumerics.
std::string make_response_id(std::string_view prefix);
int64_t unix_seconds_now();

// One generated token with its log-probability and the most likely alternatives.
struct TokenLogprob {
  std::string token;  // the piece's text (may be part of a UTF-8 character)
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;  // (piece, logprob), most likely first
};
// The chat shape: {"content":[{"token","logprob","bytes","top_logprobs":[…]}]}.
nlohmann::json chat_logprobs_json(const std::vector<TokenLogprob>& tokens);

// The legacy completions shape: {"tokens":[…],"token_logprobs":[…],"top_logprobs":[{piece:
// logprob}…],"text_offset":[…]}, offsets in bytes into the choice's text.
// `first_offset`: where the first token starts in the choice's text (a stream's later chunks).
nlohmann::json completion_logprobs_json(const std::vector<TokenLogprob>& tokens,
                                        size_t first_offset = 0);

// A whole (non-streamed) chat.completion.
nlohmann::json chat_completion_json(const ResponseMeta& meta, std::string_view content,
                                    FinishReason finish, const Usage& usage,
                                    const nlohmann::json& logprobs = nullptr);

struct TextChoice {
  std::string text;
  FinishReason finish = FinishReason::kStop;
  nlohmann::json logprobs = nullptr;
};
// A whole text_completion with one choice per prompt, index = position.
nlohmann::json text_completion_json(const ResponseMeta& meta,
                                    const std::vector<TextChoice>& choices, const Usage& usage);

// llama-server's /completion result. stop_type: "eos", "word" (a stop string) or "limit".
struct NativeResult {
  std::string content;
  std::string stop_type = "eos";
  std::string stopping_word;
  Usage usage;
  bool truncated = false;
  // "completion_probabilities" (when not null): [{"token","logprob","bytes","top_logprobs"}].
  nlohmann::json probabilities = nullptr;
};
nlohmann::json native_completion_json(std::string_view model, const NativeResult& result);

// "data: <json>\n\n" and the end-of-stream marker.
std::string sse_frame(const nlohmann::json& j);
std::string sse_done();

// Chunks of one streamed chat completion (object "chat.completion.chunk").
class ChatStream {
 public:
  ChatStream(ResponseMeta meta, bool include_usage)
      : meta_(std::move(meta)), include_usage_(include_usage) {}

  // A content chunk for `text` (the first also carries role "assistant"); "" when there is
  // nothing to send (empty text after the role went out).
  std::string delta(std::string_view text, const nlohmann::json& logprobs = nullptr);
  // The last content chunk with finish_reason (its text may be empty), then the usage chunk
  // when asked for, then `data: [DONE]`.
  std::string finish(std::string_view text, FinishReason reason, const Usage& usage,
                     const nlohmann::json& logprobs = nullptr);

 private:
  nlohmann::json chunk(std::string_view text, const nlohmann::json& finish,
                       const nlohmann::json& logprobs);

  ResponseMeta meta_;
  bool include_usage_;
  bool role_sent_ = false;
};

// Chunks of one streamed /v1/completions answer (object "text_completion").
class CompletionStream {
 public:
  CompletionStream(ResponseMeta meta, bool include_usage)
      : meta_(std::move(meta)), include_usage_(include_usage) {}
  std::string delta(std::string_view text, int index = 0, const nlohmann::json& logprobs = nullptr);
  std::string finish(std::string_view text, FinishReason reason, const Usage& usage, int index = 0,
                     const nlohmann::json& logprobs = nullptr);

 private:
  nlohmann::json chunk(std::string_view text, int index, const nlohmann::json& finish,
                       const nlohmann::json& logprobs);
  ResponseMeta meta_;
  bool include_usage_;
};

// llama-server's /completion stream: {"content","stop":false} frames, then the final result
// with "stop":true. No [DONE].
// `probabilities` (when not null) rides along as "completion_probabilities".
std::string native_stream_delta(std::string_view text,
                                const nlohmann::json& probabilities = nullptr);
std::string native_stream_finish(std::string_view model, const NativeResult& result);

struct ModelEntry {
  std::string id;
  int64_t created = 0;
  std::string owned_by = "hangar";
};
// {"object":"list","data":[{"id","object":"model","created","owned_by"}]}
nlohmann::json models_list_json(const std::vector<ModelEntry>& models);

// /tokenize: {"tokens":[ids]} or, with pieces, {"tokens":[{"id","piece"}]} where a piece that
// is not valid UTF-8 is given as its byte values.
nlohmann::json tokenize_json(const std::vector<int32_t>& ids,
                             const std::vector<std::string>* pieces);
nlohmann::json detokenize_json(std::string_view content);
nlohmann::json apply_template_json(std::string_view prompt);

// /v1/embeddings: {"object":"list","data":[{"object":"embedding","index","embedding"}],
// "model","usage":{"prompt_tokens","total_tokens"}}.
nlohmann::json embeddings_json(std::string_view model,
                               const std::vector<std::vector<float>>& embeddings,
                               int64_t prompt_tokens);
// /embedding (llama-server): [{"index","embedding":[[…]]}].
nlohmann::json native_embeddings_json(const std::vector<std::vector<float>>& embeddings);

}  // namespace hangar::worker
