#include "worker/chat_template.h"

#include <spdlog/spdlog.h>

#include <array>
#include <utility>

namespace hangar::worker {
namespace {

using Family = ChatTemplate::Family;

// Marks where a date goes in a default system text read from a template.
constexpr char kDateMark = '\x01';

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Jinja's `trim` / Python's str.strip() on ASCII whitespace.
std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

std::string rstrip(std::string_view s) {
  size_t e = s.size();
  while (e > 0 && is_space(s[e - 1])) --e;
  return std::string(s.substr(0, e));
}

// Python's str.lstrip(chars) / rstrip(chars) / strip(chars) for one character.
std::string lstrip_char(std::string_view s, char c) {
  size_t b = 0;
  while (b < s.size() && s[b] == c) ++b;
  return std::string(s.substr(b));
}
std::string rstrip_char(std::string_view s, char c) {
  size_t e = s.size();
  while (e > 0 && s[e - 1] == c) --e;
  return std::string(s.substr(0, e));
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
  return s;
}

// strftime for the few fields templates use, with C-locale month names whatever the locale.
std::string format_date(const std::tm& tm, std::string_view fmt) {
  static constexpr std::array<const char*, 12> kMonths = {
      "January", "February", "March",     "April",   "May",      "June",
      "July",    "August",   "September", "October", "November", "December"};
  const int mon = tm.tm_mon >= 0 && tm.tm_mon < 12 ? tm.tm_mon : 0;
  std::string out;
  char buf[16];
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 == fmt.size()) {
      out += fmt[i];
      continue;
    }
    switch (fmt[++i]) {
      case 'd':
        std::snprintf(buf, sizeof buf, "%02d", tm.tm_mday);
        out += buf;
        break;
      case 'm':
        std::snprintf(buf, sizeof buf, "%02d", mon + 1);
        out += buf;
        break;
      case 'Y':
        std::snprintf(buf, sizeof buf, "%04d", tm.tm_year + 1900);
        out += buf;
        break;
      case 'b':
        out += std::string_view(kMonths[mon]).substr(0, 3);
        break;
      case 'B':
        out += kMonths[mon];
        break;
      default:
        out += '%';
        out += fmt[i];
    }
  }
  return out;
}

std::string with_date(const std::string& text, const std::tm& date, std::string_view fmt) {
  return replace_all(text, std::string_view(&kDateMark, 1), format_date(date, fmt));
}

// Reads a Jinja expression made of string literals and the variable `today` joined by `+`,
// starting at `pos` (e.g. `"You are ... is " + today + ".\n\n..."`). `today` becomes kDateMark.
// Returns "" when no literal starts there.
std::string read_jinja_string_concat(std::string_view text, size_t pos) {
  std::string out;
  bool any = false;
  while (pos < text.size()) {
    while (pos < text.size() && is_space(text[pos])) ++pos;
    if (pos >= text.size()) break;
    const char q = text[pos];
    if (q == '"' || q == '\'') {
      size_t i = pos + 1;
      bool closed = false;
      for (; i < text.size(); ++i) {
        char c = text[i];
        if (c == q) {
          closed = true;
          break;
        }
        if (c == '\\' && i + 1 < text.size()) {
          char n = text[++i];
          switch (n) {
            case 'n':
              out += '\n';
              break;
            case 't':
              out += '\t';
              break;
            case 'r':
              out += '\r';
              break;
            default:
              out += n;  // \" \' \\ and anything else: the character itself
          }
          continue;
        }
        out += c;
      }
      if (!closed) return "";
      any = true;
      pos = i + 1;
    } else if (text.substr(pos, 5) == "today") {
      out += kDateMark;
      any = true;
      pos += 5;
    } else {
      break;
    }
    while (pos < text.size() && is_space(text[pos])) ++pos;
    if (pos < text.size() && text[pos] == '+') {
      ++pos;
      continue;
    }
    break;
  }
  return any ? out : "";
}

// The literal in the first `{{-` after `marker` (searching from `from`), or "".
std::string literal_after(std::string_view text, std::string_view marker, size_t from = 0) {
  size_t m = text.find(marker, from);
  if (m == std::string_view::npos) return "";
  size_t open = text.find("{{-", m + marker.size());
  if (open == std::string_view::npos) return "";
  return read_jinja_string_concat(text, open + 3);
}

Status alternation_error(std::string_view name, std::string_view rule, size_t index,
                         std::string_view role) {
  return invalid_argument_error("chat template '" + std::string(name) + "': " + std::string(rule) +
                                " (message " + std::to_string(index) + " has role '" +
                                std::string(role) + "')");
}

// Checks that user and assistant roles alternate starting with user, as the Mistral and Gemma
// templates require. `offset` is the index of messages[0] in the request.
Status check_alternation(const std::vector<ChatMessage>& messages, size_t offset,
                         std::string_view name, std::string_view rule) {
  size_t index = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role == "tool" || role == "tool_results") continue;
    if ((role == "user") != (index % 2 == 0)) {
      return alternation_error(name, rule, offset + i, role);
    }
    ++index;
  }
  return ok_status();
}

std::string bos_text(const ChatTemplateContext& ctx) { return ctx.add_bos ? "" : ctx.bos_token; }

// ---- llama.cpp built-in formatters ----------------------------------------------------------

std::string render_chatml(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llama2(Family f, const std::vector<ChatMessage>& msgs) {
  const bool support_system = f != Family::kLlama2;
  const bool bos_inside_history = f == Family::kLlama2SysBos;
  const bool strip = f == Family::kLlama2SysStrip;
  std::string out = "[INST] ";
  bool inside_turn = true;
  for (const auto& m : msgs) {
    std::string content = strip ? trim(m.content) : m.content;
    if (m.role == "system") {
      out += support_system ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
    } else if (m.role == "user") {
      if (!inside_turn) {
        inside_turn = true;
        out += bos_inside_history ? "<s>[INST] " : "[INST] ";
      }
      out += content + " [/INST]";
    } else {
      out += content + "</s>";
      inside_turn = false;
    }
  }
  return out;
}

std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs) {
    out +=
        "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  }
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string render_mistral_v7(const std::vector<ChatMessage>& msgs, bool tekken) {
  const std::string sp = tekken ? "" : " ";
  std::string out;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      out += "[SYSTEM_PROMPT]" + sp + m.content + "[/SYSTEM_PROMPT]";
    } else if (m.role == "user") {
      out += "[INST]" + sp + m.content + "[/INST]";
    } else {
      out += sp + m.content + "</s>";
    }
  }
  return out;
}

std::string render_mistral_v3_tekken(const std::vector<ChatMessage>& msgs) {
  std::string out;
  bool inside_turn = false;
  for (const auto& m : msgs) {
    if (!inside_turn) {
      out += "[INST]";
      inside_turn = true;
    }
    if (m.role == "system") {
      out += m.content + "\n\n";
    } else if (m.role == "user") {
      out += m.content + "[/INST]";
    } else {
      out += m.content + "</s>";
      inside_turn = false;
    }
  }
  return out;
}

std::string render_gemma(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  std::string system_prompt;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      system_prompt += trim(m.content);
      continue;
    }
    const std::string role = m.role == "assistant" ? "model" : m.role;
    out += "<start_of_turn>" + role + "\n";
    if (!system_prompt.empty() && role != "model") {
      out += system_prompt + "\n\n";
      system_prompt.clear();
    }
    out += trim(m.content) + "<end_of_turn>\n";
  }
  if (gen) out += "<start_of_turn>model\n";
  return out;
}

// phi3 and zephyr: <|role|>\ncontent END\n.
std::string render_tagged(const std::vector<ChatMessage>& msgs, bool gen, std::string_view end) {
  std::string out;
  for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + std::string(end) + "\n";
  if (gen) out += "<|assistant|>\n";
  return out;
}

std::string render_deepseek3(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      out += m.content + "\n\n";
    } else if (m.role == "user") {
      out += "<｜User｜>" + m.content;
    } else if (m.role == "assistant") {
      out += "<｜Assistant｜>" + m.content + "<｜end▁of▁sentence｜>";
    }
  }
  if (gen) out += "<｜Assistant｜>";
  return out;
}

std::string render_granite(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs) {
    out += "<|start_of_role|>" + m.role + "<|end_of_role|>" + m.content + "<|end_of_text|>\n";
  }
  if (gen) out += "<|start_of_role|>assistant<|end_of_role|>";
  return out;
}

std::string render_gpt_oss(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const auto& m : msgs) {
    out += "<|start|>" + m.role + "<|message|>" + m.content;
    out += m.role == "assistant" ? "<|return|>" : "<|end|>";
  }
  if (gen) out += "<|start|>assistant";
  return out;
}

// ---- formatters of specific Jinja templates -------------------------------------------------

std::string render_tmpl_llama31(const std::vector<ChatMessage>& msgs, bool gen,
                                const ChatTemplateContext& ctx) {
  size_t first = 0;
  std::string system;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = trim(msgs[0].content);
    first = 1;
  }
  std::string out = bos_text(ctx);
  out += "<|start_header_id|>system<|end_header_id|>\n\n";
  out += "Cutting Knowledge Date: December 2023\n";
  out += "Today Date: " + format_date(ctx.date, "%d %b %Y") + "\n\n";
  out += system + "<|eot_id|>";
  for (size_t i = first; i < msgs.size(); ++i) {
    out += "<|start_header_id|>" + msgs[i].role + "<|end_header_id|>\n\n" + trim(msgs[i].content) +
           "<|eot_id|>";
  }
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

constexpr std::string_view kQwenDefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

std::string render_tmpl_qwen25(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  if (!msgs.empty() && msgs[0].role == "system") {
    out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
  } else {
    out += "<|im_start|>system\n" + std::string(kQwenDefaultSystem) + "<|im_end|>\n";
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.role == "system" && i == 0) continue;
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

bool is_tool_response(const std::string& s) {
  return s.starts_with("<tool_response>") && s.ends_with("</tool_response>");
}

std::string render_tmpl_qwen3(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  if (!msgs.empty() && msgs[0].role == "system") {
    out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
  }
  // The last real user query: assistant turns after it keep their reasoning.
  size_t last_query = msgs.empty() ? 0 : msgs.size() - 1;
  for (size_t i = msgs.size(); i-- > 0;) {
    if (msgs[i].role == "user" && !is_tool_response(msgs[i].content)) {
      last_query = i;
      break;
    }
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string content = m.content;
      std::string reasoning;
      if (size_t end = m.content.find("</think>"); end != std::string::npos) {
        content = lstrip_char(m.content.substr(m.content.rfind("</think>") + 8), '\n');
        std::string before = rstrip_char(m.content.substr(0, end), '\n');
        size_t open = before.rfind("<think>");
        reasoning = lstrip_char(open == std::string::npos ? before : before.substr(open + 7), '\n');
      }
      const bool last = i + 1 == msgs.size();
      if (i > last_query && (last || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n" +
               rstrip_char(lstrip_char(reasoning, '\n'), '\n') + "\n</think>\n\n" +
               lstrip_char(content, '\n');
      } else {
        out += "<|im_start|>assistant\n" + content;
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (i + 1 == msgs.size() || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

struct SmolLm3Mode {
  bool think = true;
  std::string custom;
};

SmolLm3Mode smollm3_mode(const std::vector<ChatMessage>& msgs) {
  SmolLm3Mode mode;
  if (!msgs.empty() && msgs[0].role == "system") {
    const std::string& sys = msgs[0].content;
    if (contains(sys, "/no_think")) {
      mode.think = false;
    } else if (contains(sys, "/think")) {
      mode.think = true;
    }
    mode.custom = rstrip(replace_all(replace_all(sys, "/no_think", ""), "/think", ""));
  }
  return mode;
}

std::string render_tmpl_smollm3(const std::vector<ChatMessage>& msgs, bool gen,
                                const std::string& default_think,
                                const std::string& default_no_think) {
  const SmolLm3Mode mode = smollm3_mode(msgs);
  std::string out = "<|im_start|>system\n";
  out += "## Metadata\n\nKnowledge Cutoff Date: June 2025\n";
  out += std::string("Reasoning Mode: ") + (mode.think ? "/think" : "/no_think") + "\n\n";
  out += "## Custom Instructions\n\n";
  if (!mode.custom.empty()) {
    out += mode.custom + "\n\n";
  } else {
    out += mode.think ? default_think : default_no_think;
  }
  out += "<|im_end|>\n";
  for (const auto& m : msgs) {
    if (m.role == "user") {
      out += "<|im_start|>user\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      out += "<|im_start|>assistant\n";
      if (!mode.think) out += "<think>\n\n</think>\n";
      out += lstrip_char(m.content, '\n') + "<|im_end|>\n";
    } else if (m.role == "tool") {
      out += "<|im_start|>user\n" + m.content + "<|im_end|>\n";
    }
  }
  if (gen) {
    out += "<|im_start|>assistant\n";
    if (!mode.think) out += "<think>\n\n</think>\n";
  }
  return out;
}

constexpr std::string_view kMistralAlternation =
    "After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...";

StatusOr<std::string> render_tmpl_mistral_nemo(const std::vector<ChatMessage>& msgs, bool,
                                               const ChatTemplateContext& ctx) {
  const bool has_system = !msgs.empty() && msgs[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  const std::vector<ChatMessage> loop(msgs.begin() + first, msgs.end());
  HANGAR_RETURN_IF_ERROR(check_alternation(loop, first, "mistral-nemo", kMistralAlternation));
  std::string out = bos_text(ctx);
  for (size_t i = 0; i < loop.size(); ++i) {
    const auto& m = loop[i];
    if (m.role == "user") {
      if (i + 1 == loop.size() && has_system) {
        out += "[INST]" + msgs[0].content + "\n\n" + m.content + "[/INST]";
      } else {
        out += "[INST]" + m.content + "[/INST]";
      }
    } else if (m.role == "assistant") {
      out += m.content + ctx.eos_token;
    } else {
      return invalid_argument_error(
          "chat template 'mistral-nemo': only user and assistant roles are supported, with the "
          "exception of an initial optional system message (message " +
          std::to_string(first + i) + " has role '" + m.role + "')");
    }
  }
  return out;
}

StatusOr<std::string> render_tmpl_mistral_small3(const std::vector<ChatMessage>& msgs,
                                                 const ChatTemplateContext& ctx,
                                                 const std::string& default_system) {
  std::string system = with_date(default_system, ctx.date, "%Y-%m-%d");
  size_t first = 0;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = msgs[0].content;
    first = 1;
  }
  const std::vector<ChatMessage> loop(msgs.begin() + first, msgs.end());
  HANGAR_RETURN_IF_ERROR(check_alternation(loop, first, "mistral-small-3", kMistralAlternation));
  std::string out = bos_text(ctx) + "[SYSTEM_PROMPT]" + system + "[/SYSTEM_PROMPT]";
  for (size_t i = 0; i < loop.size(); ++i) {
    const auto& m = loop[i];
    if (m.role == "system") {
      out += "[SYSTEM_PROMPT]" + m.content + "[/SYSTEM_PROMPT]";
    } else if (m.role == "user") {
      out += "[INST]" + m.content + "[/INST]";
    } else if (m.role == "assistant") {
      out += m.content + ctx.eos_token;
    } else {
      return invalid_argument_error(
          "chat template 'mistral-small-3': only system, user, assistant, and tool roles are "
          "supported (message " +
          std::to_string(first + i) + " has role '" + m.role + "')");
    }
  }
  return out;
}

StatusOr<std::string> render_tmpl_gemma2(const std::vector<ChatMessage>& msgs, bool gen,
                                         const ChatTemplateContext& ctx) {
  // Gemma 2's template refuses the system role; llama.cpp merges a system message into the
  // first user message instead ("<system>\n<user>"), and an empty one disappears.
  std::vector<ChatMessage> merged;
  std::string pending_system;
  for (const auto& m : msgs) {
    if (m.role == "system" && merged.empty()) {
      pending_system = m.content;
      continue;
    }
    merged.push_back(m);
    if (!pending_system.empty() && merged.back().role == "user") {
      merged.back().content = pending_system + "\n" + merged.back().content;
      pending_system.clear();
    }
  }
  HANGAR_RETURN_IF_ERROR(check_alternation(
      merged, 0, "gemma2", "Conversation roles must alternate user/assistant/user/assistant/..."));
  std::string out = bos_text(ctx);
  for (const auto& m : merged) {
    const std::string role = m.role == "assistant" ? "model" : m.role;
    out += "<start_of_turn>" + role + "\n" + trim(m.content) + "<end_of_turn>\n";
  }
  if (gen) out += "<start_of_turn>model\n";
  return out;
}

std::string render_tmpl_phi35(const std::vector<ChatMessage>& msgs, bool gen,
                              const ChatTemplateContext& ctx) {
  std::string out;
  for (const auto& m : msgs) {
    if (m.role == "system") {
      if (!m.content.empty()) out += "<|system|>\n" + m.content + "<|end|>\n";
    } else if (m.role == "user" || m.role == "assistant") {
      out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
    }
  }
  out += gen ? std::string("<|assistant|>\n") : ctx.eos_token;
  return out;
}

std::string render_tmpl_deepseek_r1(const std::vector<ChatMessage>& msgs, bool gen,
                                    const ChatTemplateContext& ctx) {
  std::string system;  // the template keeps the last system message
  for (const auto& m : msgs) {
    if (m.role == "system") system = m.content;
  }
  std::string out = bos_text(ctx) + system;
  bool in_tool_outputs = false;
  bool first_tool_output = true;
  for (const auto& m : msgs) {
    if (m.role == "user") {
      in_tool_outputs = false;
      out += "<｜User｜>" + m.content;
    } else if (m.role == "assistant") {
      if (in_tool_outputs) {
        out += "<｜tool▁outputs▁end｜>" + m.content + "<｜end▁of▁sentence｜>";
        in_tool_outputs = false;
      } else {
        std::string content = m.content;
        if (size_t p = content.rfind("</think>"); p != std::string::npos) {
          content = content.substr(p + 8);
        }
        out += "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>";
      }
    } else if (m.role == "tool") {
      in_tool_outputs = true;
      if (first_tool_output) {
        out +=
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + m.content + "<｜tool▁output▁end｜>";
        first_tool_output = false;
      } else {
        out += "\n<｜tool▁output▁begin｜>" + m.content + "<｜tool▁output▁end｜>";
      }
    }
  }
  if (in_tool_outputs) out += "<｜tool▁outputs▁end｜>";
  if (gen && !in_tool_outputs) out += "<｜Assistant｜><think>\n";
  return out;
}

std::string render_tmpl_granite33(const std::vector<ChatMessage>& msgs, bool gen,
                                  const ChatTemplateContext& ctx) {
  std::string system;
  size_t first = 0;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = msgs[0].content;
    first = 1;
  } else {
    system =
        "Knowledge Cutoff Date: April 2024. Today's Date: " + format_date(ctx.date, "%B %d, %Y") +
        ". You are Granite, developed by IBM. You are a helpful AI assistant.";
  }
  std::string out = "<|start_of_role|>system<|end_of_role|>" + system + "<|end_of_text|>\n";
  for (size_t i = first; i < msgs.size(); ++i) {
    out += "<|start_of_role|>" + msgs[i].role + "<|end_of_role|>" + msgs[i].content +
           "<|end_of_text|>\n";
    if (i + 1 == msgs.size() && gen) out += "<|start_of_role|>assistant<|end_of_role|>";
  }
  return out;
}

std::string render_tmpl_gpt_oss(const std::vector<ChatMessage>& msgs, bool gen,
                                const ChatTemplateContext& ctx) {
  std::string out = "<|start|>system<|message|>";
  out += "You are ChatGPT, a large language model trained by OpenAI.\n";
  out += "Knowledge cutoff: 2024-06\n";
  out += "Current date: " + format_date(ctx.date, "%Y-%m-%d") + "\n\n";
  out += "Reasoning: medium\n\n";
  out +=
      "# Valid channels: analysis, commentary, final. Channel must be included for every "
      "message.<|end|>";
  size_t first = 0;
  if (!msgs.empty() && (msgs[0].role == "system" || msgs[0].role == "developer")) {
    first = 1;
    if (!msgs[0].content.empty()) {
      out += "<|start|>developer<|message|># Instructions\n\n" + msgs[0].content + "\n\n<|end|>";
    }
  }
  for (size_t i = first; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.role == "assistant") {
      const bool closing = i + 1 == msgs.size() && !gen;
      out += "<|start|>assistant<|channel|>final<|message|>" + m.content +
             (closing ? "<|return|>" : "<|end|>");
    } else if (m.role == "user") {
      out += "<|start|>user<|message|>" + m.content + "<|end|>";
    }
  }
  if (gen) out += "<|start|>assistant";
  return out;
}

struct NamedFamily {
  std::string_view name;
  Family family;
};

// Names from_name accepts. Template formatters whose text is read from the template itself
// (Mistral Small 3, SmolLM3) are not nameable.
constexpr std::array<NamedFamily, 23> kNames = {{
    {"chatml", Family::kChatMl},
    {"llama2", Family::kLlama2},
    {"llama2-sys", Family::kLlama2Sys},
    {"llama2-sys-bos", Family::kLlama2SysBos},
    {"llama2-sys-strip", Family::kLlama2SysStrip},
    {"llama3", Family::kLlama3},
    {"mistral-v7", Family::kMistralV7},
    {"mistral-v7-tekken", Family::kMistralV7Tekken},
    {"mistral-v3-tekken", Family::kMistralV3Tekken},
    {"gemma", Family::kGemma},
    {"phi3", Family::kPhi3},
    {"zephyr", Family::kZephyr},
    {"deepseek3", Family::kDeepSeek3},
    {"granite", Family::kGranite},
    {"gpt-oss", Family::kGptOss},
    {"llama3.1", Family::kTmplLlama31},
    {"qwen2.5", Family::kTmplQwen25},
    {"qwen3", Family::kTmplQwen3},
    {"mistral-nemo", Family::kTmplMistralNemo},
    {"gemma2", Family::kTmplGemma2},
    {"phi3.5", Family::kTmplPhi35},
    {"deepseek-r1", Family::kTmplDeepSeekR1},
    {"granite-3.3", Family::kTmplGranite33},
}};

}  // namespace

std::tm local_date_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

std::string ChatTemplate::detect_builtin_name(std::string_view t) {
  // The order follows llama.cpp's llm_chat_detect_template: earlier checks win.
  if (contains(t, "<|im_start|>")) return "chatml";
  if (t.starts_with("mistral") || contains(t, "[INST]")) {
    if (contains(t, "[SYSTEM_PROMPT]")) return "mistral-v7";
    if (contains(t, "' [INST] ' + system_message") || contains(t, "[AVAILABLE_TOOLS]")) {
      if (contains(t, " [INST]")) return "";  // mistral-v1: not supported
      if (contains(t, "\"[INST]\"")) return "mistral-v3-tekken";
      return "";  // mistral-v3: not supported
    }
    if (!contains(t, "<<SYS>>")) return "llama2";
    if (contains(t, "content.strip()")) return "llama2-sys-strip";
    if (contains(t, "bos_token + '[INST]")) return "llama2-sys-bos";
    return "llama2-sys";
  }
  if (contains(t, "<|assistant|>") && contains(t, "<|end|>")) return "phi3";
  if (contains(t, "<|assistant|>") && contains(t, "<|user|>")) return "";  // falcon3 / glmedge
  if (contains(t, "<|user|>") && contains(t, "<|endoftext|>")) return "zephyr";
  if (contains(t, "<start_of_turn>")) return "gemma";
  if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) return "llama3";
  if (contains(t, "<｜Assistant｜>") && contains(t, "<｜User｜>") &&
      contains(t, "<｜end▁of▁sentence｜>")) {
    return "deepseek3";
  }
  if (contains(t, "<|start_of_role|>")) return "granite";
  if (contains(t, "<|start|>") && contains(t, "<|channel|>")) return "gpt-oss";
  return "";
}

ChatTemplate ChatTemplate::from_template_text(std::string_view t) {
  // Specific templates first: their formatters reproduce the template, defaults included.
  if (contains(t, "<|start_header_id|>") && contains(t, "Cutting Knowledge Date: December 2023")) {
    return ChatTemplate(Family::kTmplLlama31, "llama3.1");
  }
  if (contains(t, "<|im_start|>") && contains(t, kQwenDefaultSystem)) {
    return ChatTemplate(Family::kTmplQwen25, "qwen2.5");
  }
  if (contains(t, "<|im_start|>") && contains(t, "reasoning_content") &&
      contains(t, "last_query_index")) {
    return ChatTemplate(Family::kTmplQwen3, "qwen3");
  }
  if (contains(t, "<|im_start|>") && contains(t, "Reasoning Mode: ") &&
      contains(t, "## Custom Instructions")) {
    size_t custom = t.find("## Custom Instructions");
    std::string think = literal_after(t, "reasoning_mode == \"/think\" -%}", custom);
    size_t else_at = t.find("{%- else -%}", t.find("reasoning_mode == \"/think\" -%}", custom));
    std::string no_think =
        else_at == std::string_view::npos ? "" : literal_after(t, "{%- else -%}", else_at);
    if (!think.empty() && !no_think.empty()) {
      ChatTemplate tmpl(Family::kTmplSmolLm3, "smollm3");
      tmpl.default_system_ = std::move(think);
      tmpl.default_system_alt_ = std::move(no_think);
      return tmpl;
    }
  }
  if (contains(t, "[INST]") && contains(t, "\"[INST]\" + system_message + \"\\n\\n\"")) {
    return ChatTemplate(Family::kTmplMistralNemo, "mistral-nemo");
  }
  if (contains(t, "[SYSTEM_PROMPT]") && contains(t, "default_system_message")) {
    size_t at = t.find("set default_system_message =");
    std::string sys = at == std::string_view::npos
                          ? ""
                          : read_jinja_string_concat(
                                t, at + std::string_view("set default_system_message =").size());
    if (!sys.empty()) {
      ChatTemplate tmpl(Family::kTmplMistralSmall3, "mistral-small-3");
      tmpl.default_system_ = std::move(sys);
      return tmpl;
    }
  }
  if (contains(t, "<start_of_turn>") && contains(t, "System role not supported")) {
    return ChatTemplate(Family::kTmplGemma2, "gemma2");
  }
  if (contains(t, "<|assistant|>") && contains(t, "<|end|>") &&
      contains(t, "{% else %}{{ eos_token }}")) {
    return ChatTemplate(Family::kTmplPhi35, "phi3.5");
  }
  if (contains(t, "<｜User｜>") && contains(t, "<｜Assistant｜><think>")) {
    return ChatTemplate(Family::kTmplDeepSeekR1, "deepseek-r1");
  }
  if (contains(t, "<|start_of_role|>") && contains(t, "You are Granite, developed by IBM.") &&
      contains(t, "Knowledge Cutoff Date: April 2024")) {
    return ChatTemplate(Family::kTmplGranite33, "granite-3.3");
  }
  if (contains(t, "<|start|>") && contains(t, "<|channel|>") &&
      contains(t, "Knowledge cutoff: 2024-06")) {
    return ChatTemplate(Family::kTmplGptOss, "gpt-oss-harmony");
  }
  // Then llama.cpp's built-in formatters, as its --no-jinja mode would pick them.
  std::string builtin = detect_builtin_name(t);
  if (!builtin.empty()) {
    StatusOr<ChatTemplate> tmpl = from_name(builtin);
    if (tmpl.ok()) return *std::move(tmpl);
  }
  ChatTemplate fallback(Family::kChatMl, "chatml");
  fallback.fallback_ = true;
  if (t.empty()) {
    spdlog::warn("chat template: the model has no tokenizer.chat_template; using chatml");
  } else {
    spdlog::warn(
        "chat template: the model's tokenizer.chat_template ({} bytes, starts '{}') is not one "
        "hangar recognises; using chatml (pass --chat-template NAME to choose)",
        t.size(), std::string(t.substr(0, 60)));
  }
  return fallback;
}

StatusOr<ChatTemplate> ChatTemplate::from_name(std::string_view name) {
  for (const auto& n : kNames) {
    if (n.name == name) return ChatTemplate(n.family, std::string(n.name));
  }
  std::string list;
  for (const auto& n : kNames) list += (list.empty() ? "" : ", ") + std::string(n.name);
  return invalid_argument_error("chat template: unknown name '" + std::string(name) +
                                "'; known names: " + list);
}

std::vector<std::string> ChatTemplate::known_names() {
  std::vector<std::string> out;
  for (const auto& n : kNames) out.emplace_back(n.name);
  return out;
}

bool ChatTemplate::is_template_formatter() const {
  return static_cast<int>(family_) >= static_cast<int>(Family::kTmplLlama31);
}

StatusOr<std::string> ChatTemplate::render_once(const std::vector<ChatMessage>& msgs, bool gen,
                                                const ChatTemplateContext& ctx) const {
  switch (family_) {
    case Family::kChatMl:
      return render_chatml(msgs, gen);
    case Family::kLlama2:
    case Family::kLlama2Sys:
    case Family::kLlama2SysBos:
    case Family::kLlama2SysStrip:
      return render_llama2(family_, msgs);
    case Family::kLlama3:
      return render_llama3(msgs, gen);
    case Family::kMistralV7:
      return render_mistral_v7(msgs, false);
    case Family::kMistralV7Tekken:
      return render_mistral_v7(msgs, true);
    case Family::kMistralV3Tekken:
      return render_mistral_v3_tekken(msgs);
    case Family::kGemma:
      return render_gemma(msgs, gen);
    case Family::kPhi3:
      return render_tagged(msgs, gen, "<|end|>");
    case Family::kZephyr:
      return render_tagged(msgs, gen, "<|endoftext|>");
    case Family::kDeepSeek3:
      return render_deepseek3(msgs, gen);
    case Family::kGranite:
      return render_granite(msgs, gen);
    case Family::kGptOss:
      return render_gpt_oss(msgs, gen);
    case Family::kTmplLlama31:
      return render_tmpl_llama31(msgs, gen, ctx);
    case Family::kTmplQwen25:
      return render_tmpl_qwen25(msgs, gen);
    case Family::kTmplQwen3:
      return render_tmpl_qwen3(msgs, gen);
    case Family::kTmplSmolLm3:
      return render_tmpl_smollm3(msgs, gen, default_system_, default_system_alt_);
    case Family::kTmplMistralNemo:
      return render_tmpl_mistral_nemo(msgs, gen, ctx);
    case Family::kTmplMistralSmall3:
      return render_tmpl_mistral_small3(msgs, ctx, default_system_);
    case Family::kTmplGemma2:
      return render_tmpl_gemma2(msgs, gen, ctx);
    case Family::kTmplPhi35:
      return render_tmpl_phi35(msgs, gen, ctx);
    case Family::kTmplDeepSeekR1:
      return render_tmpl_deepseek_r1(msgs, gen, ctx);
    case Family::kTmplGranite33:
      return render_tmpl_granite33(msgs, gen, ctx);
    case Family::kTmplGptOss:
      return render_tmpl_gpt_oss(msgs, gen, ctx);
  }
  return internal_error("chat template: unhandled family " +
                        std::to_string(static_cast<int>(family_)));
}

StatusOr<std::string> ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt,
                                           const ChatTemplateContext& ctx) const {
  const bool prefill =
      is_template_formatter() && !messages.empty() && messages.back().role == "assistant";
  if (!prefill) return render_once(messages, add_generation_prompt, ctx);

  // llama-server's assistant prefill: render the conversation before the final assistant
  // message with the generation prompt, then the assistant text without an end of turn. The
  // generation prompt is found, as llama.cpp does, as what the rendering with it adds after the
  // common prefix of the renderings with and without it (which matters for Phi-3.5, whose
  // rendering without it ends with eos).
  const std::vector<ChatMessage> head(messages.begin(), messages.end() - 1);
  if (!head.empty() && head.back().role == "assistant") {
    return invalid_argument_error(
        "chat template '" + name_ +
        "': cannot have 2 or more assistant messages at the end of the list (messages " +
        std::to_string(head.size() - 1) + " and " + std::to_string(head.size()) + ")");
  }
  HANGAR_ASSIGN_OR_RETURN(std::string without, render_once(head, false, ctx));
  HANGAR_ASSIGN_OR_RETURN(std::string with, render_once(head, true, ctx));
  size_t common = 0;
  while (common < without.size() && common < with.size() && without[common] == with[common]) {
    ++common;
  }
  std::string out = without + with.substr(common);
  // Thinking templates get an empty reasoning block before the prefilled answer.
  switch (family_) {
    case Family::kTmplQwen3:
      out += "<think>\n\n</think>\n\n";
      break;
    case Family::kTmplSmolLm3:
      if (smollm3_mode(head).think) out += "<think></think>";
      break;
    case Family::kTmplGranite33:
      out += "<think></think>";
      break;
    case Family::kTmplDeepSeekR1:
      // The generation prompt opens "<think>\n"; the prefill closes it empty.
      if (out.ends_with("<think>\n")) out.pop_back();
      out += "</think>";
      break;
    case Family::kTmplGptOss:
      out += "<|channel|>analysis<|message|><|end|><|start|>assistant<|channel|>final<|message|>";
      break;
    default:
      break;
  }
  out += messages.back().content;
  return out;
}

}  // namespace hangar::worker
