#include "router/preset.h"

#include <fstream>
#include <sstream>

#include "router/arg_table.h"

namespace hangar::router {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Values may carry a trailing comment after whitespace (`c = 512 ; small`); a `;`/`#` glued to
// text (a URL fragment, a path) stays part of the value.
std::string_view strip_trailing_comment(std::string_view v) {
  for (size_t i = 1; i < v.size(); ++i) {
    if ((v[i] == ';' || v[i] == '#') && (v[i - 1] == ' ' || v[i - 1] == '\t')) {
      return trim(v.substr(0, i));
    }
  }
  return v;
}

std::string where(const std::string& file, int line) {
  return "preset " + file + " line " + std::to_string(line);
}

}  // namespace

const PresetEntry* PresetSection::find(std::string_view key) const {
  for (const PresetEntry& e : entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

StatusOr<Preset> parse_preset(std::string_view text, const std::string& file) {
  Preset preset;
  preset.file = file;
  preset.defaults.name = std::string(1, '*');  // not = "*": gcc 12 -Wrestrict false positive
  PresetSection* current = nullptr;  // nullptr: before any section (only `version` allowed)
  bool saw_defaults = false;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty() || line.front() == ';' || line.front() == '#') {
      if (end == text.size()) break;
      continue;
    }
    if (line.front() == '[') {
      if (line.back() != ']' || line.size() < 3) {
        return invalid_argument_error(where(file, line_no) + ": malformed section header '" +
                                      std::string(line) + "' (expected [NAME])");
      }
      std::string name(trim(line.substr(1, line.size() - 2)));
      if (name.empty()) {
        return invalid_argument_error(where(file, line_no) + ": empty section name");
      }
      if (name == "*") {
        if (saw_defaults) {
          return invalid_argument_error(where(file, line_no) + ": duplicate section [*]");
        }
        saw_defaults = true;
        preset.defaults.line = line_no;
        current = &preset.defaults;
      } else {
        for (const PresetSection& s : preset.sections) {
          if (s.name == name) {
            return invalid_argument_error(where(file, line_no) + ": duplicate model section [" +
                                          name + "] (first at line " +
                                          std::to_string(s.line) + ")");
          }
        }
        preset.sections.push_back(PresetSection{name, line_no, {}});
        current = &preset.sections.back();
      }
      if (end == text.size()) break;
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return invalid_argument_error(where(file, line_no) + ": malformed line '" +
                                    std::string(line) + "' (expected key = value)");
    }
    std::string key(trim(line.substr(0, eq)));
    std::string value(strip_trailing_comment(trim(line.substr(eq + 1))));
    if (key.empty()) {
      return invalid_argument_error(where(file, line_no) + ": missing key before '='");
    }
    if (current == nullptr) {
      if (key == "version") {
        if (value != "1") {
          return invalid_argument_error(where(file, line_no) + ": key 'version' has value '" +
                                        value + "'; only version = 1 is supported");
        }
        continue;
      }
      return invalid_argument_error(where(file, line_no) + ": key '" + key +
                                    "' appears before any [section]");
    }
    bool negated = false;
    const ArgSpec* spec = find_arg(key, &negated);
    if (spec == nullptr) {
      return invalid_argument_error(where(file, line_no) + ": unknown key '" + key + "' in [" +
                                    current->name + "]");
    }
    if (negated) {
      bool b = false;
      if (!parse_bool(value, &b)) {
        return invalid_argument_error(where(file, line_no) + ": key '" + key +
                                      "' needs a boolean (true/false/1/0/on/off), got '" +
                                      value + "'");
      }
      value = b ? "false" : "true";
    }
    if (spec->kind == ArgKind::kFlag) {
      bool b = false;
      if (!parse_bool(value, &b)) {
        return invalid_argument_error(where(file, line_no) + ": key '" + key +
                                      "' needs a boolean (true/false/1/0/on/off), got '" +
                                      value + "'");
      }
    }
    std::string canonical(spec->long_name);
    // A key set twice in one section: the later line wins, as in llama.cpp's reader (its
    // README's own example sets model-draft twice).
    bool replaced = false;
    for (PresetEntry& e : current->entries) {
      if (e.key == canonical) {
        e.value = value;
        e.line = line_no;
        replaced = true;
      }
    }
    if (replaced) {
      if (end == text.size()) break;
      continue;
    }
    current->entries.push_back(PresetEntry{canonical, value, line_no});
    if (end == text.size()) break;
  }
  return preset;
}

StatusOr<Preset> load_preset_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found_error("preset " + path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_preset(ss.str(), path);
}

}  // namespace hangar::router
