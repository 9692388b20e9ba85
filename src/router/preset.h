#pragma once
// The --models-preset INI file, llama.cpp's format (design §3.5): `version = 1`, a `[*]` section
// of defaults for every model, and one `[NAME]` section per model. Keys are normalised to the
// argument's long name (`c`, `ctx-size` and `LLAMA_ARG_CTX_SIZE` all become "ctx-size"). Any
// unknown key, duplicate section or malformed line is an error naming file, line and key; a key
// set twice in one section takes its later value, as llama.cpp does.
// Plain values; parse_preset is a pure function, safe from any thread.

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace hangar::router {

struct PresetEntry {
  std::string key;    // canonical long name, e.g. "ctx-size"
  std::string value;  // as written, trimmed; "false" for a `no-NAME = true` flag
  int line = 0;       // 1-based line in the file
};

struct PresetSection {
  std::string name;  // the model id ("*" for the defaults)
  int line = 0;
  std::vector<PresetEntry> entries;

  // The entry for `key` (canonical), or nullptr.
  const PresetEntry* find(std::string_view key) const;
};

struct Preset {
  std::string file;                     // path, for messages
  PresetSection defaults;               // [*]; name "*"
  std::vector<PresetSection> sections;  // model sections in file order
};

// Parses preset text; `file` names it in messages.
StatusOr<Preset> parse_preset(std::string_view text, const std::string& file);
// Reads and parses a preset file.
StatusOr<Preset> load_preset_file(const std::string& path);

}  // namespace hangar::router
