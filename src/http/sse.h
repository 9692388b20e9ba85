#pragma once
// Server-Sent Events: formatting frames and parsing a byte stream into events
// (WHATWG HTML "event stream interpretation": data/event/id fields, ':' comments, CRLF/LF/CR
// line ends, multi-line data joined with '\n').
//
// Thread-safety: SseParser is a plain value used by one thread at a time.

#include <functional>
#include <string>
#include <string_view>

namespace hangar::http {

// "data: <payload>\n\n" (a payload with newlines becomes several data: lines).
std::string sse_data(std::string_view payload);
// "event: <event>\ndata: <payload>\n\n".
std::string sse_event(std::string_view event, std::string_view payload);

struct SseEvent {
  std::string event;  // "" when the frame had no event: field ("message" per spec)
  std::string data;   // data: lines joined with '\n'
  std::string id;
};

class SseParser {
 public:
  // Feeds bytes as they arrive (any split); calls on_event for each complete event (a blank
  // line ends one). Frames with no data: field are not dispatched, per spec.
  void feed(std::string_view bytes, const std::function<void(const SseEvent&)>& on_event);
  // Bytes held for an incomplete line or event.
  size_t pending_bytes() const { return line_.size() + current_.data.size(); }

 private:
  void line(std::string_view l, const std::function<void(const SseEvent&)>& on_event);

  std::string line_;     // the incomplete line so far
  bool after_cr_ = false;  // the last byte was '\r' (a following '\n' is part of the line end)
  bool has_data_ = false;
  SseEvent current_;
};

}  // namespace hangar::http
