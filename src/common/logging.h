#pragma once
// Logging: spdlog with one process-wide set-up. Code logs with spdlog::info/warn/error/debug
// directly; this header only configures the sink. All logs go to stderr (a worker's stdout is
// never used for logs: the router reads stderr and prefixes it with the model name).
// init_logging is called once from main before any other thread starts.

#include <string_view>

#include "common/status.h"

namespace hangar {

enum class LogFormat { kText, kJson };

// level: trace|debug|info|warn|error|off. format: text|json.
Status init_logging(std::string_view level, std::string_view format);

}  // namespace hangar
