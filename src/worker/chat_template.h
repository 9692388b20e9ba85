#pragma once
// Chat templates: turning a list of chat messages into the prompt text a model was trained on.
//
// hangar has no Jinja engine. A model's `tokenizer.chat_template` text is recognised by
// distinctive substrings and rendered by a hand-written formatter for its family, in two kinds:
//   * template formatters reproduce what llama-server (Jinja mode, its default) renders for a
//     specific well-known template (Llama 3.1/3.2, Qwen 2.5, Qwen 3, Mistral Nemo, Mistral
//     Small 3.x, Gemma 2, Phi-3.5, SmolLM3, DeepSeek-R1-Distill, Granite 3.3, gpt-oss), default
//     system prompts, dates, the assistant prefill and llama.cpp's quirks included;
//   * built-in formatters reproduce llama.cpp's C++ formatters (`--no-jinja`, or
//     `--chat-template NAME`): chatml, llama2 (+ -sys, -sys-bos, -sys-strip), llama3, mistral-v7,
//     mistral-v7-tekken, mistral-v3-tekken, gemma, phi3, zephyr, deepseek3, granite, gpt-oss.
// A template text that matches neither falls back to chatml, with a warning and `is_fallback()`
// set so the worker can show it in /props. The oracle is ../shared/fixtures/templates.
//
// A ChatTemplate is immutable after construction: render() is const and safe to call from any
// number of threads at once.

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace hangar::worker {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant" (others are passed to the formatter)
  std::string content;  // plain text; array-of-parts content is joined by the request parser
};

// What a template may read besides the messages.
struct ChatTemplateContext {
  std::string bos_token;  // the model's BOS text, e.g. "<s>"
  std::string eos_token;  // the model's EOS text, e.g. "</s>"
  // When the tokenizer adds BOS itself, a leading BOS in the rendered text is dropped (as
  // llama.cpp does), so templates that open with `bos_token` do not emit it.
  bool add_bos = true;
  // The date templates print ("Today Date: 15 Jan 2025"); the worker passes the local date.
  std::tm date{};
};

// The local date now, for ChatTemplateContext::date.
std::tm local_date_now();

class ChatTemplate {
 public:
  // Every family hangar can render. kTmpl* reproduce a specific Jinja template, the others a
  // llama.cpp built-in formatter.
  enum class Family {
    kChatMl,
    kLlama2,
    kLlama2Sys,
    kLlama2SysBos,
    kLlama2SysStrip,
    kLlama3,
    kMistralV7,
    kMistralV7Tekken,
    kMistralV3Tekken,
    kGemma,
    kPhi3,
    kZephyr,
    kDeepSeek3,
    kGranite,
    kGptOss,
    kTmplLlama31,
    kTmplQwen25,
    kTmplQwen3,
    kTmplSmolLm3,
    kTmplMistralNemo,
    kTmplMistralSmall3,
    kTmplGemma2,
    kTmplPhi35,
    kTmplDeepSeekR1,
    kTmplGranite33,
    kTmplGptOss,
  };

  // Recognises a model's template text. Never fails: an unknown or empty text gives chatml
  // with is_fallback() set (and a warning logged).
  static ChatTemplate from_template_text(std::string_view text);
  // The template a `--chat-template NAME` names: a built-in name ("chatml", "llama3", ...) or a
  // template formatter's name ("qwen3", "llama3.1", ...). Unknown name → error listing the names.
  static StatusOr<ChatTemplate> from_name(std::string_view name);
  // llama.cpp's built-in detection (llm_chat_detect_template) of a template text: the built-in
  // name, or "" when nothing matches.
  static std::string detect_builtin_name(std::string_view text);
  // All names from_name accepts.
  static std::vector<std::string> known_names();

  // The prompt for `messages`, ending with the assistant turn's opening when
  // add_generation_prompt is set. Template formatters continue a final assistant message
  // (prefill: no end-of-turn after it). Errors: messages the template refuses (roles that must
  // alternate, two assistant messages at the end of a prefill), each naming the rule.
  StatusOr<std::string> render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                               const ChatTemplateContext& ctx) const;

  Family family() const { return family_; }
  const std::string& name() const { return name_; }
  // True when the model's template was not recognised and chatml is used instead.
  bool is_fallback() const { return fallback_; }
  // Whether this is a template formatter (prefills a final assistant message).
  bool is_template_formatter() const;

 private:
  ChatTemplate(Family family, std::string name) : family_(family), name_(std::move(name)) {}

  StatusOr<std::string> render_once(const std::vector<ChatMessage>& messages, bool add_gen,
                                    const ChatTemplateContext& ctx) const;

  Family family_;
  std::string name_;
  bool fallback_ = false;
  // Default system texts read from the template text itself (Mistral Small 3, SmolLM3), so a
  // revision of the template with other wording still renders its own words. "{date}" marks
  // where the date goes.
  std::string default_system_;
  std::string default_system_alt_;  // SmolLM3's /no_think default
};

}  // namespace hangar::worker
