#pragma once
// Finding the model a proxied POST names: the top-level "model" string of its JSON body
// (design §7). The router only routes; the worker parses and validates the whole body. So this
// scans instead of building a document: it stops at the top-level "model" member and skips
// every other value without allocating (a chat request may carry a prompt of megabytes, and
// this runs on an io thread for every request). Malformed JSON *before* that member is an
// error; anything after it is the worker's to judge.
//
// Thread-safety: a pure function.

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hangar::router {

// The decoded value of the top-level "model" member of `body`; nullopt when the object has no
// such member. InvalidArgument naming the problem and its byte offset when `body` is not a
// JSON object, is malformed before that member, or the member is not a string.
StatusOr<std::optional<std::string>> model_of_body(std::string_view body);

}  // namespace hangar::router
