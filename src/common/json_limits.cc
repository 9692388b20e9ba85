#include "common/json_limits.h"

#include <string>

namespace hangar {

size_t json_nesting_depth(std::string_view text, size_t stop_at) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is, cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > stop_at) return deepest;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

Status check_json_depth(std::string_view text, size_t max_depth) {
  if (json_nesting_depth(text, max_depth) > max_depth) {
    return invalid_argument_error("request body nests arrays and objects more than " +
                                  std::to_string(max_depth) + " deep");
  }
  return ok_status();
}

}  // namespace hangar
