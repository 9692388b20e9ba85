#include "common/control_protocol.h"

#include <nlohmann/json.hpp>

namespace hangar::control {
namespace {

using json = nlohmann::json;

std::string text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Status bad(std::string_view event, std::string_view what) {
  return invalid_argument_error("control: '" + std::string(event) + "' event: " +
                                std::string(what));
}

}  // namespace

std::string encode(const Event& event) {
  struct Encoder {
    json operator()(const Listening& e) const {
      if (!e.unix_path.empty()) return {{"event", "listening"}, {"unix", e.unix_path}};
      return {{"event", "listening"}, {"port", e.port}};
    }
    json operator()(const Loading& e) const {
      return {{"event", "loading"}, {"progress", e.progress}};
    }
    json operator()(const Ready& e) const {
      json model = json::parse(e.model_json, nullptr, false);
      if (model.is_discarded()) model = json::object();
      return {{"event", "ready"}, {"model", model}, {"memory", e.memory}};
    }
    json operator()(const Error& e) const {
      return {{"event", "error"}, {"message", e.message}};
    }
  };
  return text(std::visit(Encoder{}, event));
}

StatusOr<Event> decode(std::string_view line) {
  // The worker writes these lines itself: a shallow document, parsed without exceptions.
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_argument_error("control: not a JSON object: " +
                                  std::string(line.substr(0, 200)));
  }
  auto kind = j.find("event");
  if (kind == j.end() || !kind->is_string()) {
    return invalid_argument_error("control: no \"event\" string in: " +
                                  std::string(line.substr(0, 200)));
  }
  const std::string name = kind->get<std::string>();
  if (name == "listening") {
    Listening e;
    if (auto u = j.find("unix"); u != j.end()) {
      if (!u->is_string() || u->get<std::string>().empty()) return bad(name, "bad \"unix\"");
      e.unix_path = u->get<std::string>();
      return Event(e);
    }
    auto p = j.find("port");
    if (p == j.end() || !p->is_number_integer() || p->get<int64_t>() < 1 ||
        p->get<int64_t>() > 65535) {
      return bad(name, "\"port\" must be an integer in 1..65535");
    }
    e.port = static_cast<uint16_t>(p->get<int64_t>());
    return Event(e);
  }
  if (name == "loading") {
    Loading e;
    auto p = j.find("progress");
    if (p != j.end()) {
      if (!p->is_number()) return bad(name, "\"progress\" must be a number");
      const double v = p->get<double>();
      if (!(v >= 0 && v <= 1)) return bad(name, "\"progress\" must be in 0..1");
      e.progress = v;
    }
    return Event(e);
  }
  if (name == "ready") {
    Ready e;
    if (auto m = j.find("model"); m != j.end()) e.model_json = text(*m);
    if (auto mem = j.find("memory"); mem != j.end()) {
      if (!mem->is_object()) return bad(name, "\"memory\" must be an object");
      for (const auto& [device, bytes] : mem->items()) {
        if (!bytes.is_number_unsigned()) return bad(name, "memory of '" + device + "' is not bytes");
        e.memory[device] = bytes.get<uint64_t>();
      }
    }
    return Event(e);
  }
  if (name == "error") {
    Error e;
    auto m = j.find("message");
    e.message = (m != j.end() && m->is_string()) ? m->get<std::string>() : "(no message)";
    return Event(e);
  }
  return invalid_argument_error("control: unknown event '" + name + "'");
}

}  // namespace hangar::control
