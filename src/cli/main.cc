// hangar: one binary, one subcommand per file in src/cli (design §6).
#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>
#include <string>

#include "cli/command.h"
#include "common/logging.h"
#include "common/version.h"
#include "router/arg_table.h"

namespace {

// Every option of every subcommand also reads HANGAR_<OPTION> from the environment
// (--ctx-size → HANGAR_CTX_SIZE), unless the option names its own variable.
void add_env_names(CLI::App* app) {
  for (CLI::Option* opt : app->get_options()) {
    if (!opt->get_envname().empty() || opt->get_lnames().empty()) continue;
    std::string env = "HANGAR_";
    for (char c : opt->get_lnames().front()) env += c == '-' ? '_' : static_cast<char>(toupper(c));
    if (env == "HANGAR_HELP" || env == "HANGAR_VERSION") continue;
    opt->envname(env);
  }
  for (CLI::App* sub : app->get_subcommands({})) add_env_names(sub);
}

// llama.cpp spells some long options with one dash and several letters (`-np 4`, `-ub 512`),
// which CLI11 cannot name; they are rewritten to their long forms before parsing. The table of
// spellings is the router's argument table (router/arg_table.h), so `run` and `serve` agree.
std::vector<std::string> llama_spellings(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0) {
      if (auto long_form = hangar::router::long_option_for(a)) a = *long_form;
    }
    args.push_back(std::move(a));
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hangar: many GGUF models behind one OpenAI-compatible endpoint", "hangar"};
  app.set_version_flag("--version", std::string("hangar ") + hangar::kVersion + " (" +
                                        hangar::kBuildInfo + ")");
  app.require_subcommand(1);
  app.allow_extras();  // checked below: only `serve` takes arguments it does not know
  std::string log_level = "info";
  std::string log_format = "text";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")->capture_default_str();

  hangar::cli::Commands commands;
  hangar::cli::register_inspect(app, commands);
  hangar::cli::register_make_model(app, commands);
  hangar::cli::register_tokenize(app, commands);
  hangar::cli::register_serve(app, commands);
  hangar::cli::register_list(app, commands);
  hangar::cli::register_pull(app, commands);
  hangar::cli::register_generate(app, commands);
  hangar::cli::register_bench(app, commands);
  hangar::cli::register_run(app, commands);
  hangar::cli::register_estimate(app, commands);
  // Further subcommands register here as they land (see command.h).

  for (auto& c : commands) {
    // Global options may come after the subcommand too.
    c.app->fallthrough();
  }
  add_env_names(&app);

  try {
    std::vector<std::string> args = llama_spellings(argc, argv);
    args.erase(args.begin());                 // CLI11 takes them without argv[0],
    std::reverse(args.begin(), args.end());  // last first

    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (hangar::Status s = hangar::init_logging(log_level, log_format); !s.ok()) {
    std::fprintf(stderr, "hangar: %s\n", s.message().c_str());
    return 2;
  }
  for (auto& c : commands) {
    if (!c.app->parsed()) continue;
    if (c.app->get_name() != "serve" && !app.remaining(true).empty()) {
      std::string extra;
      for (const std::string& a : app.remaining(true)) extra += " " + a;
      std::fprintf(stderr, "hangar %s: unexpected arguments:%s\n", c.app->get_name().c_str(),
                   extra.c_str());
      return 2;
    }
    return c.run();
  }
  return 2;
}
