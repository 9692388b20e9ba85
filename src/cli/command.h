#pragma once
// How subcommands plug into `hangar`: each src/cli/<name>.cc defines one register_<name>()
// that adds a CLI11 subcommand and the function that runs it (returning the exit code).
// main.cc calls every register_*() and runs the one the user named.

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace hangar::cli {

struct Command {
  CLI::App* app;
  std::function<int()> run;  // exit code: 0 ok, 1 error in the input/work, 2 usage
};
using Commands = std::vector<Command>;

void register_inspect(CLI::App& root, Commands& commands);
void register_make_model(CLI::App& root, Commands& commands);
void register_tokenize(CLI::App& root, Commands& commands);
void register_generate(CLI::App& root, Commands& commands);
void register_bench(CLI::App& root, Commands& commands);
void register_estimate(CLI::App& root, Commands& commands);
void register_run(CLI::App& root, Commands& commands);
void register_serve(CLI::App& root, Commands& commands);
void register_list(CLI::App& root, Commands& commands);
void register_pull(CLI::App& root, Commands& commands);

}  // namespace hangar::cli
