#include "worker/api_error.h"

namespace hangar::worker {

int http_status_for(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
    case StatusCode::kResourceExhausted:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string_view error_type_for(int http_status) {
  switch (http_status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 501:
      return "not_supported_error";
    case 503:
      return "unavailable_error";
    case 507:
      return "insufficient_memory_error";
    default:
      return "server_error";
  }
}

nlohmann::json error_body(int http_status, std::string_view message) {
  return {{"error",
           {{"code", http_status},
            {"message", std::string(message)},
            {"type", std::string(error_type_for(http_status))}}}};
}

nlohmann::json error_body(const Status& status, int* http_status) {
  const int code = http_status_for(status.code());
  if (http_status != nullptr) *http_status = code;
  return error_body(code, status.message());
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace hangar::worker
