#include "worker/openai_response.h"

#include <chrono>
#include <random>

#include "worker/api_error.h"
#include "worker/text_holdback.h"

namespace hangar::worker {
namespace {

using nlohmann::json;

json bytes_of(std::string_view s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(static_cast<int>(c));
  return out;
}

bool is_valid_utf8(std::string_view s) { return sanitize_utf8(s) == s; }

// The last chunk of a stream asked for with stream_options.include_usage: no choices, the usage.
std::string usage_frame(const ResponseMeta& meta, const char* object, const Usage& usage) {
  return sse_frame({{"id", meta.id},
                    {"object", object},
                    {"created", meta.created},
                    {"model", meta.model},
                    {"choices", json::array()},
                    {"usage", usage.to_json()}});
}

}  // namespace

std::string_view finish_reason_name(FinishReason reason) {
  return reason == FinishReason::kLength ? "length" : "stop";
}

json Usage::to_json() const {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

std::string make_response_id(std::string_view prefix) {
  static constexpr std::string_view kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, kChars.size() - 1);
  std::string id(prefix);
  for (int i = 0; i < 24; ++i) id += kChars[pick(rng)];
  return id;
}

int64_t unix_seconds_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json chat_logprobs_json(const std::vector<TokenLogprob>& tokens) {
  json content = json::array();
  for (const TokenLogprob& t : tokens) {
    json top = json::array();
    for (const auto& [piece, lp] : t.top) {
      top.push_back({{"token", sanitize_utf8(piece)}, {"logprob", lp}, {"bytes", bytes_of(piece)}});
    }
    content.push_back({{"token", sanitize_utf8(t.token)},
                       {"logprob", t.logprob},
                       {"bytes", bytes_of(t.token)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

json completion_logprobs_json(const std::vector<TokenLogprob>& tokens, size_t first_offset) {
  json pieces = json::array(), logprobs = json::array(), tops = json::array(),
       offsets = json::array();
  size_t offset = first_offset;
  for (const TokenLogprob& t : tokens) {
    pieces.push_back(sanitize_utf8(t.token));
    logprobs.push_back(t.logprob);
    json top = json::object();
    for (const auto& [piece, lp] : t.top) top[sanitize_utf8(piece)] = lp;
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += t.token.size();
  }
  return {{"tokens", std::move(pieces)},
          {"token_logprobs", std::move(logprobs)},
          {"top_logprobs", std::move(tops)},
          {"text_offset", std::move(offsets)}};
}

json chat_completion_json(const ResponseMeta& meta, std::string_view content, FinishReason finish,
                          const Usage& usage, const json& logprobs) {
  return {{"id", meta.id},
          {"object", "chat.completion"},
          {"created", meta.created},
          {"model", meta.model},
          {"choices",
           json::array({{{"index", 0},
                         {"message", {{"role", "assistant"}, {"content", sanitize_utf8(content)}}},
                         {"logprobs", logprobs},
                         {"finish_reason", finish_reason_name(finish)}}})},
          {"usage", usage.to_json()}};
}

json text_completion_json(const ResponseMeta& meta, const std::vector<TextChoice>& choices,
                          const Usage& usage) {
  json arr = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    arr.push_back({{"index", i},
                   {"text", sanitize_utf8(choices[i].text)},
                   {"logprobs", choices[i].logprobs},
                   {"finish_reason", finish_reason_name(choices[i].finish)}});
  }
  return {{"id", meta.id},       {"object", "text_completion"}, {"created", meta.created},
          {"model", meta.model}, {"choices", std::move(arr)},   {"usage", usage.to_json()}};
}

json native_completion_json(std::string_view model, const NativeResult& r) {
  json j = {{"index", 0},
            {"content", sanitize_utf8(r.content)},
            {"stop", true},
            {"model", std::string(model)},
            {"stop_type", r.stop_type},
            {"stopping_word", r.stopping_word},
            {"tokens_predicted", r.usage.completion_tokens},
            {"tokens_evaluated", r.usage.prompt_tokens},
            {"tokens_cached", r.usage.cached_tokens},
            {"truncated", r.truncated}};
  if (!r.probabilities.is_null()) j["completion_probabilities"] = r.probabilities;
  return j;
}

std::string sse_frame(const json& j) { return "data: " + dump_json(j) + "\n\n"; }
std::string sse_done() { return "data: [DONE]\n\n"; }

json ChatStream::chunk(std::string_view text, const json& finish, const json& logprobs) {
  json delta = json::object();
  if (!role_sent_) {
    delta["role"] = "assistant";
    role_sent_ = true;
  }
  delta["content"] = sanitize_utf8(text);
  return {{"id", meta_.id},
          {"object", "chat.completion.chunk"},
          {"created", meta_.created},
          {"model", meta_.model},
          {"choices", json::array({{{"index", 0},
                                    {"delta", std::move(delta)},
                                    {"logprobs", logprobs},
                                    {"finish_reason", finish}}})}};
}

std::string ChatStream::delta(std::string_view text, const json& logprobs) {
  if (text.empty() && role_sent_ && logprobs.is_null()) return "";
  return sse_frame(chunk(text, nullptr, logprobs));
}

std::string ChatStream::finish(std::string_view text, FinishReason reason, const Usage& usage,
                               const json& logprobs) {
  std::string out = sse_frame(chunk(text, finish_reason_name(reason), logprobs));
  if (include_usage_) out += usage_frame(meta_, "chat.completion.chunk", usage);
  out += sse_done();
  return out;
}

json CompletionStream::chunk(std::string_view text, int index, const json& finish,
                             const json& logprobs) {
  return {{"id", meta_.id},
          {"object", "text_completion"},
          {"created", meta_.created},
          {"model", meta_.model},
          {"choices", json::array({{{"index", index},
                                    {"text", sanitize_utf8(text)},
                                    {"logprobs", logprobs},
                                    {"finish_reason", finish}}})}};
}

std::string CompletionStream::delta(std::string_view text, int index, const json& logprobs) {
  if (text.empty()) return "";
  return sse_frame(chunk(text, index, nullptr, logprobs));
}

std::string CompletionStream::finish(std::string_view text, FinishReason reason, const Usage& usage,
                                     int index, const json& logprobs) {
  std::string out = sse_frame(chunk(text, index, finish_reason_name(reason), logprobs));
  if (include_usage_) out += usage_frame(meta_, "text_completion", usage);
  out += sse_done();
  return out;
}

std::string native_stream_delta(std::string_view text, const json& probabilities) {
  if (text.empty()) return "";
  json frame = {{"index", 0}, {"content", sanitize_utf8(text)}, {"stop", false}};
  if (!probabilities.is_null()) frame["completion_probabilities"] = probabilities;
  return sse_frame(frame);
}

std::string native_stream_finish(std::string_view model, const NativeResult& result) {
  return sse_frame(native_completion_json(model, result));
}

json models_list_json(const std::vector<ModelEntry>& models) {
  json data = json::array();
  for (const ModelEntry& m : models) {
    data.push_back(
        {{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", m.owned_by}});
  }
  return {{"object", "list"}, {"data", std::move(data)}};
}

json tokenize_json(const std::vector<int32_t>& ids, const std::vector<std::string>* pieces) {
  json tokens = json::array();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (pieces == nullptr || i >= pieces->size()) {
      tokens.push_back(ids[i]);
      continue;
    }
    const std::string& p = (*pieces)[i];
    tokens.push_back({{"id", ids[i]}, {"piece", is_valid_utf8(p) ? json(p) : bytes_of(p)}});
  }
  return {{"tokens", std::move(tokens)}};
}

json detokenize_json(std::string_view content) { return {{"content", sanitize_utf8(content)}}; }

json apply_template_json(std::string_view prompt) { return {{"prompt", sanitize_utf8(prompt)}}; }

json embeddings_json(std::string_view model, const std::vector<std::vector<float>>& embeddings,
                     int64_t prompt_tokens) {
  json data = json::array();
  for (size_t i = 0; i < embeddings.size(); ++i) {
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", embeddings[i]}});
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", std::string(model)},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

json native_embeddings_json(const std::vector<std::vector<float>>& embeddings) {
  json out = json::array();
  for (size_t i = 0; i < embeddings.size(); ++i) {
    out.push_back({{"index", i}, {"embedding", json::array({embeddings[i]})}});
  }
  return out;
}

}  // namespace hangar::worker
