#pragma once
// The worker ↔ router control protocol (design §6), defined once for the hangar worker, the
// router and the tests' fake worker: one JSON object per line on the control socket, from the
// worker to the router.
//   {"event":"listening","port":P}           or {"event":"listening","unix":PATH}
//   {"event":"loading","progress":0.4}        0..1
//   {"event":"ready","model":{…},"memory":{"CPU":bytes,…}}
//   {"event":"error","message":"…"}
// EOF on the socket (the router's end closed) makes the worker exit.
//
// Thread-safety: pure functions over values.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.h"

namespace hangar::control {

struct Listening {
  uint16_t port = 0;      // TCP on 127.0.0.1, or
  std::string unix_path;  // a Unix socket (non-empty wins)
};
struct Loading {
  double progress = 0;  // 0..1
};
struct Ready {
  std::string model_json = "{}";          // the worker's model object, JSON text
  std::map<std::string, uint64_t> memory;  // measured footprint per device, bytes
};
struct Error {
  std::string message;
};
using Event = std::variant<Listening, Loading, Ready, Error>;

// One line of JSON, without the newline.
std::string encode(const Event& event);
// The event on `line`. InvalidArgument naming what is wrong: not JSON, no "event", an unknown
// event, a field of the wrong type or out of range (a port outside 1..65535, progress not in
// 0..1).
StatusOr<Event> decode(std::string_view line);

}  // namespace hangar::control
