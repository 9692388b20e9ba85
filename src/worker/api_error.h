#pragma once
// How the worker's API turns a Status into an HTTP error: the status code, OpenAI's error type
// and the body {"error":{"code":N,"message":"…","type":"…"}} (design §7).
//
// Thread-safety: pure functions.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hangar::worker {

// 400 for InvalidArgument/OutOfRange, 404 NotFound, 501 Unimplemented, 503 Unavailable and
// ResourceExhausted, 504 DeadlineExceeded, 500 otherwise.
int http_status_for(StatusCode code);
// "invalid_request_error" (400), "authentication_error" (401), "not_found_error" (404),
// "not_supported_error" (501), "unavailable_error" (503), "insufficient_memory_error" (507),
// "server_error" otherwise.
std::string_view error_type_for(int http_status);

nlohmann::json error_body(int http_status, std::string_view message);
// error_body for a non-OK Status, with its HTTP status in *http_status when given.
nlohmann::json error_body(const Status& status, int* http_status = nullptr);

// JSON text that never throws: invalid UTF-8 in strings becomes U+FFFD.
std::string dump_json(const nlohmann::json& j);

}  // namespace hangar::worker
