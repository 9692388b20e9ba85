#pragma once
// Limits on JSON a client sends, checked before any JSON library sees the text.
//
// Why a pre-scan and not a parser callback: JSON libraries build, copy, compare and serialise
// values recursively, so a body nested 400,000 arrays deep (800 KB) overflows the stack in
// whatever touches it next. One pass over the bytes that counts open brackets outside strings
// finds the depth without allocating and without depending on a JSON library (src/common has
// none), and a body that passes can be parsed, dumped and destroyed safely by any of them.
// The scan does not validate the JSON; the parser that follows still does.
//
// Thread-safety: pure functions.

#include <cstddef>
#include <string_view>

#include "common/status.h"

namespace hangar {

// Deeper than any request the OpenAI or llama-server APIs define (messages → content parts →
// a few levels of tool arguments), far shallower than what overflows a thread's stack.
inline constexpr size_t kMaxJsonDepth = 128;

// The deepest nesting of arrays and objects in `text` (0 for a scalar), counting only brackets
// outside strings. Stops counting at `stop_at` + 1 (so a hostile body costs no more than needed).
size_t json_nesting_depth(std::string_view text, size_t stop_at = kMaxJsonDepth);

// InvalidArgument ("request body nests arrays and objects more than 128 deep") when `text` is
// nested deeper than `max_depth`.
Status check_json_depth(std::string_view text, size_t max_depth = kMaxJsonDepth);

}  // namespace hangar
