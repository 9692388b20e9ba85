#pragma once
// hangar's own HTTP message types: Headers, Request, Response, and the helpers that build
// OpenAI-shaped error bodies and parse query strings. No other folder sees Beast or Asio; these
// plain values are all they exchange with src/http.
//
// Thread-safety: plain values (copy, move, return); not synchronized.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace hangar::http {

// Header fields in arrival order; names compare case-insensitively (RFC 9110 §5.1). Repeated
// fields stay separate entries.
class Headers {
 public:
  using Field = std::pair<std::string, std::string>;  // name as sent, value without OWS

  Headers() = default;
  Headers(std::initializer_list<Field> fields) : fields_(fields) {}

  // Appends a field (keeps existing ones with the same name).
  void add(std::string name, std::string value);
  // Replaces every field named `name` with one field.
  void set(std::string name, std::string value);
  // Removes every field named `name`; returns how many were removed.
  size_t remove(std::string_view name);
  // The first field's value named `name`, or nullopt.
  std::optional<std::string_view> get(std::string_view name) const;
  // The first value, or `fallback` when absent.
  std::string get_or(std::string_view name, std::string_view fallback) const;
  bool has(std::string_view name) const { return get(name).has_value(); }

  const std::vector<Field>& fields() const { return fields_; }
  std::vector<Field>::const_iterator begin() const { return fields_.begin(); }
  std::vector<Field>::const_iterator end() const { return fields_.end(); }
  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }

 private:
  std::vector<Field> fields_;
};

// True when a and b are equal ignoring ASCII case.
bool iequals(std::string_view a, std::string_view b);

// A request as a handler sees it: the whole body has been read (up to the server's
// max_body_bytes; chunked request bodies are already de-chunked).
struct Request {
  std::string method;                        // "GET", "POST", ... as sent
  std::string target;                        // raw request-target: "/models?model=a%20b"
  std::string path;                          // percent-decoded path without query: "/models"
  std::map<std::string, std::string> query;  // decoded ?k=v&k2 (last wins; "k2" → "")
  Headers headers;
  std::string body;
  bool keep_alive = true;  // what the client asked for (HTTP/1.1 default: true)
  std::string remote;      // "127.0.0.1:54321" (server side only)

  // The query parameter, or nullopt.
  std::optional<std::string_view> query_param(std::string_view name) const;
};

// A whole response (status, headers, body). Content-Length is set by the server from `body`;
// do not set Transfer-Encoding (use Responder::start for streamed bodies).
struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  // status + Content-Type: application/json + body.
  static Response json(int status, std::string body);
  // status + Content-Type: text/plain; charset=utf-8 + body.
  static Response text(int status, std::string body);
};

// The standard reason phrase ("OK", "Not Found", ...), "Unknown" for codes it does not know.
std::string_view reason_phrase(int status);

// `s` as a JSON string literal including the quotes, with control characters, quotes and
// backslashes escaped; valid UTF-8 passes through and each byte of invalid UTF-8 becomes U+FFFD,
// so the result is always valid JSON text whatever bytes `s` holds.
std::string json_quote(std::string_view s);

// OpenAI-shaped error JSON: {"error":{"code":502,"message":"…","type":"unavailable_error"}}.
std::string error_json(int code, std::string_view message, std::string_view type);
// A Response carrying error_json(status, message, type).
Response error_response(int status, std::string_view message, std::string_view type);

// Percent-decodes `s` ("a%20b" → "a b"); with plus_as_space, '+' → ' ' (query strings).
// A malformed escape ("%zz", a trailing '%') is an InvalidArgument naming the offset.
StatusOr<std::string> percent_decode(std::string_view s, bool plus_as_space);
// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
std::string percent_encode(std::string_view s);
// Parses "a=1&b=x%20y&c" into {a:1, b:"x y", c:""}. Malformed escapes are InvalidArgument.
StatusOr<std::map<std::string, std::string>> parse_query(std::string_view query);
// Splits a request-target into the decoded path and the query map. "/p?x=1" → "/p", {x:1}.
Status parse_target(std::string_view target, std::string* path,
                    std::map<std::string, std::string>* query);

}  // namespace hangar::http
