// The router's HTTP API (design §7): llama.cpp's router endpoints, hangar's additions, and the
// proxied routes. Handlers run on io threads and never block.
#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include "common/json_limits.h"
#include "common/version.h"
#include "http/sse.h"
#include "router/body_model.h"
#include "router/router_impl.h"
#include "router/status_page.h"

namespace hangar::router {
namespace {

using json = nlohmann::json;
using http::Request;
using http::Responder;
using http::Response;

Response bad_request(const std::string& msg) {
  return http::error_response(400, msg, "invalid_request_error");
}

Response unavailable(const std::string& msg) {
  Response r = http::error_response(503, msg, "unavailable_error");
  r.headers.set("Retry-After", "5");
  return r;
}

// The status a scheduling failure is answered with, for a proxied request.
Response scheduling_error(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:  // never fits (design §3 5a): 400 on a proxied request
      return bad_request(s.message());
    default:
      return unavailable(s.message());
  }
}

// The status a failed /models/load is answered with: a model that can never fit is 507
// (design §3 5a), the rest as for a proxied request.
Response load_error(const Status& s) {
  if (s.code() == StatusCode::kOutOfRange) {
    return http::error_response(507, s.message(), "insufficient_memory_error");
  }
  return scheduling_error(s);
}

// The body of /models/load and /models/unload: a JSON object whose "model" names a model of
// `reg`. Otherwise answers the error on `r` and returns nullptr.
const ModelConfig* model_of_body(const Request& req, const Registry& reg, json* body,
                                 Responder& r) {
  if (Status deep = check_json_depth(req.body); !deep.ok()) {
    r.send(bad_request(deep.message()));
    return nullptr;
  }
  try {
    *body = json::parse(req.body);
  } catch (const json::exception& e) {
    r.send(bad_request(std::string("request body is not valid JSON: ") + e.what()));
    return nullptr;
  }
  if (!body->is_object() || !body->contains("model") || !(*body)["model"].is_string()) {
    r.send(bad_request("field 'model' (a string) is required"));
    return nullptr;
  }
  const std::string name = (*body)["model"].get<std::string>();
  const ModelConfig* m = reg.resolve(name);
  if (m == nullptr) {
    r.send(http::error_response(404, "model '" + name + "' not found", "not_found_error"));
  }
  return m;
}

// Equal strings, compared in a time that depends only on their lengths, so a client cannot
// find the key byte by byte by timing the answers.
bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// Routes anyone may reach without the key: the health check, CORS preflights (a browser sends
// those without credentials, so they must not need the key), and the status page, which holds
// no data and asks for the key before it reads any (design §7).
bool is_open_route(const Request& req) {
  if (req.method == "OPTIONS") return true;
  if (req.method != "GET" && req.method != "HEAD") return false;
  return req.path == "/health" || req.path == "/" || req.path == "/ui";
}

}  // namespace

bool Router::Impl::authorized(const Request& req) const {
  if (options.api_key.empty() || is_open_route(req)) return true;
  if (auto auth = req.headers.get("Authorization")) {
    std::string_view v = *auth;
    if (v.size() > 7 && http::iequals(v.substr(0, 7), "Bearer ") &&
        constant_time_equal(v.substr(7), options.api_key)) {
      return true;
    }
  }
  if (auto key = req.headers.get("X-Api-Key"); key && constant_time_equal(*key, options.api_key)) {
    return true;
  }
  return false;
}

namespace {

// The answer to a CORS preflight: any origin may call the API with the headers clients send.
Response preflight() {
  Response r;
  r.status = 204;
  r.headers.set("Access-Control-Allow-Origin", "*");
  r.headers.set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
  r.headers.set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key");
  r.headers.set("Access-Control-Max-Age", "86400");
  return r;
}

}  // namespace

std::shared_ptr<http::Upstream> Router::Impl::upstream_for(const std::string& id,
                                                          const http::Address& address) {
  std::lock_guard lock(upstream_mu_);
  auto it = upstreams_.find(id);
  if (it != upstreams_.end() && it->second->address() == address) return it->second;
  auto up = http::Upstream::create(*server, address);
  upstreams_[id] = up;
  return up;
}

void Router::Impl::drop_upstream(const std::string& id) {
  std::shared_ptr<http::Upstream> up;
  {
    std::lock_guard lock(upstream_mu_);
    auto it = upstreams_.find(id);
    if (it == upstreams_.end()) return;
    up = std::move(it->second);
    upstreams_.erase(it);
  }
  up->close_idle();
}

void Router::Impl::forward_to(const std::string& id, const http::Address& address, Request req,
                              std::shared_ptr<Responder> r) {
  auto up = upstream_for(id, address);
  // A --backend whose template takes {api_key} gets the key only the router knows, in place of
  // whatever credentials the client gave the router.
  if (!worker_key.empty()) {
    req.headers.remove("X-Api-Key");
    req.headers.set("Authorization", "Bearer " + worker_key);
  }
  http::forward(std::move(req), std::move(r), std::move(up),
                [this, id](const http::ForwardResult&) { scheduler.release(id); });
}

void Router::Impl::proxy(Request req, std::shared_ptr<Responder> r, const std::string& name) {
  requests_total.fetch_add(1, std::memory_order_relaxed);
  std::string id;
  {
    auto reg = registry();
    const ModelConfig* m = reg->resolve(name);
    if (m == nullptr) {
      r->send(bad_request("model '" + name + "' not found"));
      return;
    }
    id = m->id;
  }
  bool autoload = options.models_autoload;
  if (auto a = req.query_param("autoload")) autoload = (*a == "true" || *a == "1");
  Lease lease;
  uint64_t waiter = 0;
  // Filled before acquire(): the waiter callback may run on another thread at any time after.
  auto shared_req = std::make_shared<Request>(std::move(req));
  auto result = scheduler.acquire(
      id, autoload, &lease,
      [this, id, shared_req, r](StatusOr<Lease> l) {
        if (!l.ok()) {
          r->send(scheduling_error(l.status()));
          return;
        }
        if (r->is_closed()) {
          scheduler.release(id);
          return;
        }
        forward_to(id, l->address, std::move(*shared_req), r);
      },
      &waiter);
  if (!result.ok()) {
    r->send(scheduling_error(result.status()));
    return;
  }
  if (*result == Scheduler::Acquired::kGranted) {
    forward_to(id, lease.address, std::move(*shared_req), std::move(r));
    return;
  }
  r->on_close([this, id, waiter] { scheduler.cancel_waiter(id, waiter); });
}

void Router::Impl::publish(const std::string& model, const std::string& event,
                           const std::string& data_json) {
  const std::string frame = http::sse_data("{\"model\":" + http::json_quote(model) +
                                           ",\"event\":" + http::json_quote(event) +
                                           ",\"data\":" + data_json + "}");
  std::lock_guard lock(sse_mu_);
  std::erase_if(subscribers_, [&](const std::shared_ptr<Responder>& s) {
    return s->is_closed() || !s->write(frame);
  });
}

std::string Router::Impl::models_json() const {
  auto reg = registry();
  std::map<std::string, ModelStatus> status;
  for (ModelStatus& s : scheduler.status()) status[s.id] = std::move(s);
  const std::map<std::string, std::map<std::string, uint64_t>> measured =
      supervisor->measured_by_model();
  json data = json::array();
  for (const ModelConfig& listed : reg->models()) {
    const ModelConfig m = effective(listed);  // a downloaded model's path filled in
    const ModelStatus& s = status[m.id];
    // Where it serves once started (the socket directory until then).
    const http::Address shown_address =
        !s.address.empty() || socket_dir_.empty() ? s.address
                                                  : http::Address::unix_socket(socket_dir_);
    json st = {{"value", model_state_name(s.state)}, {"args", worker_argv(m, shown_address)}};
    if (s.state == ModelState::kLoading) st["progress"] = s.progress;
    if (s.state == ModelState::kDownloading) {
      std::lock_guard lock(downloads_mu_);
      auto it = download_progress_.find(m.id);
      st["progress"] = it == download_progress_.end()
                           ? json{{"done", 0}, {"total", 0}, {"files", json::array()}}
                           : json::parse(it->second, nullptr, false);
    }
    if (s.failed) {
      st["failed"] = true;
      st["exit_code"] = s.exit_code;
      st["last_error"] = s.last_error;
    }
    json memory = {{"estimate", s.need}, {"reserved", s.reserved}, {"measured", json::object()}};
    if (!s.need_error.empty()) memory["error"] = s.need_error;
    if (auto it = measured.find(m.id); it != measured.end()) memory["measured"] = it->second;
    data.push_back({{"id", m.id},
                    {"object", "model"},
                    {"owned_by", "hangar"},
                    {"created", created_unix},
                    {"aliases", m.aliases},
                    {"path", m.path},
                    {"source", m.source},
                    {"hf_repo", m.hf_repo},
                    {"status", st},
                    {"memory", memory},
                    {"in_flight", s.in_flight},
                    {"queued", s.queued},
                    {"last_used", s.last_used_unix_ms / 1000},
                    {"pinned", m.pin},
                    {"ttl", m.ttl_s}});
  }
  return json_text(json{{"object", "list"}, {"data", data}});
}

void Router::Impl::install_routes() {
  // Wraps a handler with the API key check (everything but /health).
  auto guard = [this](auto fn) {
    return [this, fn](Request req, std::shared_ptr<Responder> r) {
      if (!authorized(req)) {
        r->send(http::error_response(401, "Invalid API Key", "authentication_error"));
        return;
      }
      fn(std::move(req), std::move(r));
    };
  };

  auto health = [](Request, std::shared_ptr<Responder> r) {
    r->send(Response::json(200, R"({"status":"ok"})"));
  };
  server->route("GET", "/health", health);
  server->route("HEAD", "/health", health);

  if (options.ui) {
    auto page = [html = std::make_shared<const std::string>(
                     status_page(!options.api_key.empty()))](Request, std::shared_ptr<Responder> r) {
      Response resp;
      resp.status = 200;
      resp.headers.set("Content-Type", "text/html; charset=utf-8");
      resp.headers.set("Cache-Control", "no-cache");
      // Everything is inline and talks only to this server.
      resp.headers.set("Content-Security-Policy",
                       "default-src 'none'; script-src 'unsafe-inline'; style-src "
                       "'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
      resp.headers.set("Referrer-Policy", "no-referrer");
      resp.headers.set("X-Content-Type-Options", "nosniff");
      resp.body = *html;
      r->send(std::move(resp));
    };
    for (const char* path : {"/", "/ui"}) {
      server->route("GET", path, page);
      server->route("HEAD", path, page);
    }
  }

  auto list_models = [this](Request req, std::shared_ptr<Responder> r) {
    if (auto reload = req.query_param("reload"); reload && (*reload == "1" || *reload == "true")) {
      if (Status s = reload_registry(); !s.ok()) {
        r->send(http::error_response(500, "reload failed: " + s.message(), "server_error"));
        return;
      }
    }
    r->send(Response::json(200, models_json()));
  };
  server->route("GET", "/models", guard(list_models));
  server->route("GET", "/v1/models", guard(list_models));

  server->route("POST", "/models/load", guard([this](Request req, std::shared_ptr<Responder> r) {
    json body;
    auto reg = registry();
    const ModelConfig* m = model_of_body(req, *reg, &body, *r);
    if (m == nullptr) return;
    bool wait = false;
    if (body.contains("wait")) {
      if (!body["wait"].is_boolean()) {
        r->send(bad_request("field 'wait' must be a boolean"));
        return;
      }
      wait = body["wait"].get<bool>();
    }
    const std::string id = m->id;
    if (!wait) {
      Status s = scheduler.load(id);
      if (!s.ok()) {
        r->send(load_error(s));
        return;
      }
      r->send(Response::json(200, R"({"success":true})"));
      return;
    }
    // wait: hold a request pin until ready, then drop it at once.
    Lease lease;
    uint64_t waiter = 0;
    auto result = scheduler.acquire(
        id, true, &lease,
        [this, id, r](StatusOr<Lease> l) {
          if (!l.ok()) {
            r->send(load_error(l.status()));
            return;
          }
          scheduler.release(id);
          r->send(Response::json(200, R"({"success":true})"));
        },
        &waiter);
    if (!result.ok()) {
      r->send(load_error(result.status()));
      return;
    }
    if (*result == Scheduler::Acquired::kGranted) {
      scheduler.release(id);
      r->send(Response::json(200, R"({"success":true})"));
      return;
    }
    r->on_close([this, id, waiter] { scheduler.cancel_waiter(id, waiter); });
  }));

  // POST /models {"model":"owner/repo[:TAG]"}: download (llama.cpp's router API). A model the
  // router knows downloads (without loading); a new repository is fetched into the cache and
  // then listed.
  server->route("POST", "/models", guard([this](Request req, std::shared_ptr<Responder> r) {
    if (Status deep = check_json_depth(req.body); !deep.ok()) {
      r->send(bad_request(deep.message()));
      return;
    }
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("model") || !body["model"].is_string()) {
      r->send(bad_request("field 'model' (a string: owner/repo[:TAG]) is required"));
      return;
    }
    const std::string name = body["model"].get<std::string>();
    auto reg = registry();
    if (const ModelConfig* m = reg->resolve(name)) {
      if (!effective(*m).path.empty()) {
        r->send(Response::json(200, R"({"success":true,"cached":true})"));
        return;
      }
      Status s = scheduler.fetch(m->id);
      if (!s.ok()) {
        r->send(scheduling_error(s));
        return;
      }
      r->send(Response::json(200, R"({"success":true})"));
      return;
    }
    auto spec = download::parse_spec(name);
    if (!spec.ok()) {
      r->send(bad_request(spec.status().message()));
      return;
    }
    ModelConfig fetch;
    fetch.id = spec->to_string();
    fetch.hf_repo = fetch.id;
    start_download(fetch, false);
    r->send(Response::json(200, R"({"success":true})"));
  }));

  // DELETE /models?model=ID: removes a cached model that is not running (its blobs too, when no
  // other model uses them); a download in progress is cancelled instead.
  server->route("DELETE", "/models", guard([this](Request req, std::shared_ptr<Responder> r) {
    auto name = req.query_param("model");
    if (!name) {
      r->send(bad_request("query parameter 'model' is required"));
      return;
    }
    auto reg = registry();
    const ModelConfig* m = reg->resolve(*name);
    if (m == nullptr) {
      r->send(http::error_response(404, "model '" + std::string(*name) + "' not found",
                                   "not_found_error"));
      return;
    }
    auto st = scheduler.status(m->id);
    if (st && st->state == ModelState::kDownloading) {
      (void)scheduler.unload(m->id);
      r->send(Response::json(200, R"({"success":true,"cancelled":true})"));
      return;
    }
    if (st && st->state != ModelState::kUnloaded) {
      r->send(bad_request("model '" + m->id + "' is " + std::string(model_state_name(st->state)) +
                          "; unload it first"));
      return;
    }
    if (m->hf_repo.empty()) {
      r->send(bad_request("model '" + m->id + "' is not from the model cache (its source is " +
                          m->source + "); hangar removes only cached downloads"));
      return;
    }
    if (Status s = download::remove_cached(m->hf_repo, options.sources.download); !s.ok()) {
      r->send(bad_request(s.message()));
      return;
    }
    {
      std::lock_guard lock(downloads_mu_);
      downloaded_.erase(m->id);
    }
    if (Status s = reload_registry(); !s.ok()) {
      r->send(http::error_response(500, "removed, but the reload failed: " + s.message(),
                                   "server_error"));
      return;
    }
    r->send(Response::json(200, R"({"success":true})"));
  }));

  server->route("POST", "/models/unload", guard([this](Request req, std::shared_ptr<Responder> r) {
    json body;
    auto reg = registry();
    const ModelConfig* m = model_of_body(req, *reg, &body, *r);
    if (m == nullptr) return;
    Status s = scheduler.unload(m->id);
    if (!s.ok()) {
      r->send(bad_request(s.message()));
      return;
    }
    r->send(Response::json(200, R"({"success":true})"));
  }));

  server->route("GET", "/devices", guard([this](Request, std::shared_ptr<Responder> r) {
    r->send(Response::json(200, devices_json()));
  }));

  server->route("GET", "/models/sse", guard([this](Request, std::shared_ptr<Responder> r) {
    http::Headers h;
    h.add("Content-Type", "text/event-stream");
    h.add("Cache-Control", "no-cache");
    {
      // Under sse_mu_ so no event published after the client saw the head is missed.
      std::lock_guard lock(sse_mu_);
      std::erase_if(subscribers_, [](const auto& s) { return s->is_closed(); });
      if (subscribers_.size() >= kMaxSseSubscribers) {
        r->send(unavailable("too many /models/sse subscribers (" +
                            std::to_string(kMaxSseSubscribers) + "); retry later"));
        return;
      }
      if (!r->start(200, h)) return;
      subscribers_.push_back(r);
    }
    // A subscriber that leaves is dropped at once, not at the next event. (Registered outside
    // sse_mu_: it runs at once, here, when the client is already gone.)
    Responder* raw = r.get();
    r->on_close([this, raw] {
      std::lock_guard lock(sse_mu_);
      std::erase_if(subscribers_, [raw](const auto& s) { return s.get() == raw; });
    });
  }));

  auto props = [this](Request req, std::shared_ptr<Responder> r) {
    if (auto model = req.query_param("model")) {
      proxy(std::move(req), std::move(r), std::string(*model));
      return;
    }
    json p = {{"role", "router"},
              {"max_instances", options.models_max},
              {"models_autoload", options.models_autoload},
              {"build_info", kBuildInfo},
              {"model_path", ""},
              {"total_slots", 0}};
    r->send(Response::json(200, json_text(p)));
  };
  server->route("GET", "/props", guard(props));

  server->route("GET", "/metrics", guard([this](Request req, std::shared_ptr<Responder> r) {
    if (auto model = req.query_param("model")) {
      proxy(std::move(req), std::move(r), std::string(*model));
      return;
    }
    std::string out;
    out += "# TYPE hangar_requests_total counter\nhangar_requests_total " +
           std::to_string(requests_total.load()) + "\n";
    out += "# TYPE hangar_loads_total counter\nhangar_loads_total " +
           std::to_string(loads_total.load()) + "\n";
    out += "# TYPE hangar_worker_failures_total counter\nhangar_worker_failures_total " +
           std::to_string(failures_total.load()) + "\n";
    out += "# TYPE hangar_model_state gauge\n";
    for (const ModelStatus& s : scheduler.status()) {
      out += "hangar_model_state{model=" + http::json_quote(s.id) + ",state=\"" +
             std::string(model_state_name(s.state)) + "\"} 1\n";
      out += "hangar_model_in_flight{model=" + http::json_quote(s.id) + "} " +
             std::to_string(s.in_flight) + "\n";
      out += "hangar_model_queue_length{model=" + http::json_quote(s.id) + "} " +
             std::to_string(s.queued) + "\n";
    }
    const std::map<std::string, uint64_t> measured = measured_by_device();
    out += "# TYPE hangar_device_budget_bytes gauge\n# TYPE hangar_device_reserved_bytes gauge\n"
           "# TYPE hangar_device_measured_bytes gauge\n";
    for (const Scheduler::DeviceUse& d : scheduler.device_use()) {
      const std::string label = "{device=" + http::json_quote(d.name) + "} ";
      if (d.budget) out += "hangar_device_budget_bytes" + label + std::to_string(*d.budget) + "\n";
      out += "hangar_device_reserved_bytes" + label + std::to_string(d.reserved) + "\n";
      auto m = measured.find(d.name);
      out += "hangar_device_measured_bytes" + label +
             std::to_string(m == measured.end() ? 0 : m->second) + "\n";
    }
    Response resp = Response::text(200, out);
    resp.headers.set("Content-Type", "text/plain; version=0.0.4");
    r->send(std::move(resp));
  }));

  // Everything else: POST routes by the body's "model", GET routes by ?model=.
  server->set_fallback(guard([this](Request req, std::shared_ptr<Responder> r) {
    if (req.method == "OPTIONS") {
      r->send(preflight());
      return;
    }
    if (req.method == "GET" || req.method == "HEAD" || req.method == "DELETE") {
      auto model = req.query_param("model");
      if (!model) {
        r->send(http::error_response(404, "no route for " + req.method + " " + req.path +
                                              " (add ?model= to reach a model)",
                                     "not_found_error"));
        return;
      }
      proxy(std::move(req), std::move(r), std::string(*model));
      return;
    }
    auto model = model_of_body(req.body);
    if (!model.ok()) {
      r->send(bad_request(model.status().message()));
      return;
    }
    if (!model->has_value()) {
      r->send(bad_request("field 'model' is required to route " + req.path));
      return;
    }
    std::string name = std::move(**model);
    proxy(std::move(req), std::move(r), name);
  }));
}

}  // namespace hangar::router
