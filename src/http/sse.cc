// Server-Sent Events framing and parsing (see sse.h).

#include "http/sse.h"

namespace hangar::http {
namespace {

void append_data_lines(std::string& out, std::string_view payload) {
  size_t pos = 0;
  while (true) {
    size_t nl = payload.find('\n', pos);
    out += "data: ";
    out.append(payload.substr(pos, nl == std::string_view::npos ? payload.npos : nl - pos));
    out += '\n';
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  out += '\n';
}

}  // namespace

std::string sse_data(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  append_data_lines(out, payload);
  return out;
}

std::string sse_event(std::string_view event, std::string_view payload) {
  std::string out = "event: ";
  out.append(event);
  out += '\n';
  append_data_lines(out, payload);
  return out;
}

void SseParser::feed(std::string_view bytes,
                     const std::function<void(const SseEvent&)>& on_event) {
  for (char c : bytes) {
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') continue;  // the LF of a CRLF line end
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = (c == '\r');
      std::string l = std::move(line_);
      line_.clear();
      line(l, on_event);
    } else {
      line_.push_back(c);
    }
  }
}

void SseParser::line(std::string_view l, const std::function<void(const SseEvent&)>& on_event) {
  if (l.empty()) {  // a blank line dispatches the event
    if (has_data_) on_event(current_);
    current_ = SseEvent{};
    has_data_ = false;
    return;
  }
  if (l.front() == ':') return;  // a comment
  size_t colon = l.find(':');
  std::string_view field = l.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : l.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) current_.data += '\n';
    current_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    current_.event = std::string(value);
  } else if (field == "id") {
    current_.id = std::string(value);
  }
}

}  // namespace hangar::http
