// `hangar tokenize -m FILE.gguf [--json] [--no-bos] [--parse-special] TEXT`: the token ids of
// TEXT for the model's vocabulary, as llama.cpp's llama_tokenize gives them. Vocab-only GGUF
// files work. Text mode prints the ids on one line, space-separated; --json prints
// {"tokens":[ids],"pieces":[each token's text]}.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "engine/tokenizer.h"
#include "gguf/gguf.h"

namespace hangar::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  bool json = false;
  bool no_bos = false;
  bool parse_special = false;
};

int tokenize(const TokenizeOptions& o) {
  auto file = gguf::GgufFile::open(o.model);
  if (!file.ok()) {
    std::fprintf(stderr, "hangar tokenize: %s\n", file.status().message().c_str());
    return 1;
  }
  auto tokenizer = engine::Tokenizer::from_gguf(**file);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "hangar tokenize: %s\n", tokenizer.status().message().c_str());
    return 1;
  }
  const std::vector<engine::TokenId> ids =
      (*tokenizer)->tokenize(o.text, /*add_special=*/!o.no_bos, o.parse_special);
  if (o.json) {
    nlohmann::ordered_json pieces = nlohmann::ordered_json::array();
    for (engine::TokenId id : ids) pieces.push_back((*tokenizer)->token_to_piece(id, true));
    const nlohmann::ordered_json out = {{"tokens", ids}, {"pieces", pieces}};
    // A byte-fallback piece can be part of a UTF-8 character: replace, never fail.
    std::printf("%s\n",
                out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    return 0;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& root, Commands& commands) {
  CLI::App* app =
      root.add_subcommand("tokenize", "Print the token ids of TEXT for a GGUF file's vocabulary");
  auto o = std::make_shared<TokenizeOptions>();
  app->add_option("-m,--model", o->model, "the .gguf file (a vocab-only file is fine)")->required();
  app->add_flag("--json", o->json, R"(print {"tokens":[...],"pieces":[...]})");
  app->add_flag("--no-bos", o->no_bos, "do not add BOS (llama_tokenize's add_special off)");
  app->add_flag("--parse-special", o->parse_special,
                "recognise special tokens such as <|im_start|> in TEXT as single ids");
  app->add_option("text", o->text, "the text to tokenize")->required();
  commands.push_back({app, [o] { return tokenize(*o); }});
}

}  // namespace hangar::cli
