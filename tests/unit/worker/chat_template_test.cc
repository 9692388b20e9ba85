// Chat templates against llama.cpp's renderings (tests/data/templates, a copy of
// ../shared/fixtures/templates): every rendering must match byte for byte.
#include "worker/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_support.h"

namespace hangar::worker {
namespace {

using nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string dir() { return hangar::testing::test_data_dir() + "/templates/"; }

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

struct Conversation {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = true;
};

std::map<std::string, Conversation> conversations() {
  std::map<std::string, Conversation> out;
  for (const json& c : json::parse(read_file(dir() + "conversations.json"))) {
    Conversation conv;
    conv.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
    for (const json& m : c.at("messages")) {
      conv.messages.push_back(
          {m.at("role").get<std::string>(), m.at("content").get<std::string>()});
    }
    out[c.at("id").get<std::string>()] = conv;
  }
  return out;
}

// The context llama-server gave the templates: llama-spm's <s>/</s>, add_bos, 2025-01-15.
ChatTemplateContext oracle_context() {
  ChatTemplateContext ctx;
  ctx.bos_token = "<s>";
  ctx.eos_token = "</s>";
  ctx.add_bos = true;
  ctx.date.tm_year = 2025 - 1900;
  ctx.date.tm_mon = 0;
  ctx.date.tm_mday = 15;
  return ctx;
}

// Renders every line of a renderings file with the template `pick` chooses; expects all equal
// and prints the per-template pass counts.
template <typename Pick>
void expect_renderings_match(const std::string& file, const std::string& mode, Pick pick,
                             bool named_only = false) {
  const auto convs = conversations();
  std::map<std::string, std::pair<int, int>> counts;  // key → (passed, total)
  int lines = 0;
  for (const json& line : read_jsonl(dir() + file)) {
    if (line.at("mode") != mode) continue;
    if (named_only && !line.at("template").is_null()) continue;
    ++lines;
    StatusOr<ChatTemplate> tmpl = pick(line);
    const std::string key = line.at("template").is_null()
                                ? "name:" + line.at("builtin_name").get<std::string>()
                                : line.at("template").get<std::string>();
    auto& [passed, total] = counts[key];
    ++total;
    ASSERT_TRUE(tmpl.ok()) << key << ": " << tmpl.status().to_string();
    const Conversation& conv = convs.at(line.at("conversation").get<std::string>());
    ASSERT_EQ(conv.add_generation_prompt, line.at("add_generation_prompt").get<bool>());
    StatusOr<std::string> got =
        tmpl->render(conv.messages, conv.add_generation_prompt, oracle_context());
    ASSERT_TRUE(got.ok()) << key << " / " << line.at("conversation") << ": "
                          << got.status().to_string();
    const std::string want = line.at("prompt").get<std::string>();
    EXPECT_EQ(*got, want) << key << " (" << tmpl->name() << ") / " << line.at("conversation");
    if (*got == want) ++passed;
  }
  EXPECT_GT(lines, 0);
  for (const auto& [key, c] : counts) {
    std::printf("  %-48s %d/%d\n", key.c_str(), c.first, c.second);
  }
}

TEST(ChatTemplateTest, TemplateFormattersMatchLlamaCppJinjaRenderings) {
  expect_renderings_match("renderings.jsonl", "jinja", [](const json& line) {
    return StatusOr<ChatTemplate>(ChatTemplate::from_template_text(
        read_file(dir() + line.at("template").get<std::string>())));
  });
}

TEST(ChatTemplateTest, EveryFixtureTemplateIsRecognisedNotFallback) {
  for (const json& line : read_jsonl(dir() + "renderings.jsonl")) {
    const std::string file = line.at("template").get<std::string>();
    ChatTemplate t = ChatTemplate::from_template_text(read_file(dir() + file));
    EXPECT_FALSE(t.is_fallback()) << file;
    EXPECT_TRUE(t.is_template_formatter()) << file << " → " << t.name();
  }
}

TEST(ChatTemplateTest, BuiltinNamesMatchLlamaCppNoJinjaRenderings) {
  expect_renderings_match(
      "renderings-builtin.jsonl", "builtin",
      [](const json& line) {
        return ChatTemplate::from_name(line.at("builtin_name").get<std::string>());
      },
      /*named_only=*/true);
}

TEST(ChatTemplateTest, BuiltinDetectionPicksLlamaCppNames) {
  const json meta = json::parse(read_file(dir() + "meta.json"));
  int n = 0;
  for (const auto& [file, name] : meta.at("builtin_detected").items()) {
    EXPECT_EQ(ChatTemplate::detect_builtin_name(read_file(dir() + file)), name.get<std::string>())
        << file;
    ++n;
  }
  EXPECT_EQ(n, 12);
}

TEST(ChatTemplateTest, DetectedBuiltinsMatchLlamaCppRenderingsOfTheFiles) {
  expect_renderings_match("renderings-builtin.jsonl", "builtin", [](const json& line) {
    if (line.at("template").is_null()) {
      return ChatTemplate::from_name(line.at("builtin_name").get<std::string>());
    }
    return ChatTemplate::from_name(ChatTemplate::detect_builtin_name(
        read_file(dir() + line.at("template").get<std::string>())));
  });
}

TEST(ChatTemplateTest, TemplatesThatLlamaCppRefusesAreRejected) {
  const auto convs = conversations();
  const json failures = json::parse(read_file(dir() + "failures.json"));
  ASSERT_EQ(failures.size(), 3u);
  for (const json& f : failures) {
    ChatTemplate t =
        ChatTemplate::from_template_text(read_file(dir() + f.at("template").get<std::string>()));
    const Conversation& conv = convs.at(f.at("conversation").get<std::string>());
    StatusOr<std::string> got =
        t.render(conv.messages, conv.add_generation_prompt, oracle_context());
    ASSERT_FALSE(got.ok()) << f.at("template");
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(got.status().message().find("must alternate user/assistant"), std::string::npos)
        << got.status().message();
    EXPECT_NE(got.status().message().find("message 1"), std::string::npos)
        << got.status().message();
  }
}

TEST(ChatTemplateTest, UnknownTemplateFallsBackToChatMlWithFlag) {
  ChatTemplate t = ChatTemplate::from_template_text("{{ messages | weird_filter }}<<MYTURN>>");
  EXPECT_TRUE(t.is_fallback());
  EXPECT_EQ(t.name(), "chatml");
  auto got = t.render({{"user", "hi"}}, true, oracle_context());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, MissingTemplateFallsBackToChatMl) {
  ChatTemplate t = ChatTemplate::from_template_text("");
  EXPECT_TRUE(t.is_fallback());
  EXPECT_EQ(t.family(), ChatTemplate::Family::kChatMl);
}

TEST(ChatTemplateTest, RecognisedBuiltinIsNotFallback) {
  ChatTemplate t = ChatTemplate::from_template_text(
      "{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n"
      "{% endfor %}");
  EXPECT_FALSE(t.is_fallback());
  EXPECT_EQ(t.name(), "gemma");
}

TEST(ChatTemplateTest, UnknownNameIsAnErrorListingKnownNames) {
  StatusOr<ChatTemplate> t = ChatTemplate::from_name("vicuna-9000");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("'vicuna-9000'"), std::string::npos);
  EXPECT_NE(t.status().message().find("chatml"), std::string::npos);
  EXPECT_NE(t.status().message().find("llama3"), std::string::npos);
}

TEST(ChatTemplateTest, EveryKnownNameRenders) {
  for (const std::string& name : ChatTemplate::known_names()) {
    StatusOr<ChatTemplate> t = ChatTemplate::from_name(name);
    ASSERT_TRUE(t.ok()) << name;
    auto got = t->render({{"system", "S"}, {"user", "U"}}, true, oracle_context());
    ASSERT_TRUE(got.ok()) << name << ": " << got.status().to_string();
    EXPECT_NE(got->find("U"), std::string::npos) << name;
  }
}

TEST(ChatTemplateTest, PrefillRejectsTwoAssistantMessagesAtTheEnd) {
  auto t = ChatTemplate::from_name("qwen2.5");
  ASSERT_TRUE(t.ok());
  auto got =
      t->render({{"user", "U"}, {"assistant", "A"}, {"assistant", "B"}}, false, oracle_context());
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("2 or more assistant messages"), std::string::npos);
}

TEST(ChatTemplateTest, BosIsEmittedWhenTheTokenizerDoesNotAddIt) {
  auto t = ChatTemplate::from_name("llama3.1");
  ASSERT_TRUE(t.ok());
  ChatTemplateContext ctx = oracle_context();
  ctx.bos_token = "<|begin_of_text|>";
  ctx.add_bos = false;
  auto got = t->render({{"user", "U"}}, true, ctx);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->starts_with("<|begin_of_text|><|start_header_id|>system")) << *got;
}

}  // namespace
}  // namespace hangar::worker
