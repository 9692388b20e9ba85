#pragma once
// The table of llama-server / hangar worker arguments a preset key may name (design §3.5).
// A preset key is the long flag name without dashes (`ctx-size`), a short name (`c`) or the
// environment name (`LLAMA_ARG_CTX_SIZE`); all three map to one ArgSpec. The table also knows
// which keys belong to the router (stripped from worker arguments) and which are preset-only.
// Immutable after static initialisation: safe from any thread.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hangar::router {

enum class ArgKind {
  kValue,       // `--name VALUE`
  kFlag,        // `--name` when true; `--no-name` (if negatable) when false
  kPresetOnly,  // read by the router from a preset, never passed to a worker
  kRouterOwned, // the router's own setting (host, port, api-key, models-*): stripped
};

struct ArgSpec {
  std::string_view long_name;             // without dashes, e.g. "ctx-size"
  std::vector<std::string_view> aliases;  // other long or short names, without dashes
  std::string_view env;                   // LLAMA_ARG_..., may be empty
  ArgKind kind;
  bool negatable = false;  // kFlag: has a `--no-NAME` form
};

// What `hangar run` does with a worker argument (kValue or kFlag) a user passes through.
enum class WorkerSupport {
  kHonoured,     // it has a meaning for hangar's worker and is applied (--temp, -c, -b...)
  kIgnored,      // accepted and ignored: no meaning for a CPU engine (-ngl, -fa, --jinja,
                 // --mlock, endpoint switches that are always on...); `serve` warns once
  kUnsupported,  // would change the answers and hangar cannot do it (--lora, --rope-*...):
                 // an error, reported by `serve` at start and by `run`
};

// nullopt for router-owned and preset-only keys (never passed to a worker).
std::optional<WorkerSupport> worker_support(const ArgSpec& spec);

// Every argument the table knows, in table order (for `hangar run`, which accepts them all).
const std::vector<ArgSpec>& all_args();

// The long form of a llama.cpp single-dash spelling of several letters ("-ub" →
// "--ubatch-size", "-ngl" → "--n-gpu-layers"), which CLI11 cannot name; nullopt for anything
// else (single letters, long options, unknown words, values).
std::optional<std::string> long_option_for(std::string_view word);

// The spec a preset key names, or nullptr when the key is unknown. `no-NAME` keys of a negatable
// flag resolve to that flag with *negated = true.
const ArgSpec* find_arg(std::string_view key, bool* negated = nullptr);

// Parses a preset boolean: true/false/1/0/on/off (case-insensitive). False when not one.
bool parse_bool(std::string_view text, bool* value);

}  // namespace hangar::router
