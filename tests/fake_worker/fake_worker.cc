// hangar-fake-worker: a stand-in for `hangar run` in the router's integration tests and
// benchmark (design §10). It speaks the worker protocol (JSON lines on --control-fd: listening,
// loading, ready, error; EOF on the control fd → exit; SIGTERM → stop accepting, finish in-flight
// requests, exit 0) and serves llama-server's endpoints with deterministic text derived from the
// prompt and the model name.
//
// Scripted behaviour, per model: the model file (-m FILE) may hold a JSON object:
//   {"load_ms": 200, "crash_at_load": true, "hang": true, "ignore_sigterm": true,
//    "memory": {"CPU": 1048576}, "chatter_ms": 50}
// ("chatter_ms": while hanging, write a log line this often: log lines are not progress.)
// Per request (fields a real worker ignores):
//   "fake_gate": "tag"      stream: hold every chunk after the first until a request with
//                           {"fake_release": "tag"} reaches /tokenize (causal streaming tests)
//   "fake_crash_after": N   stream: the process dies after sending N content chunks
// Without --control-fd it behaves as a --backend program: binds --port and serves /health.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/control_protocol.h"
#include "http/server.h"
#include "http/sse.h"

namespace {

using json = nlohmann::json;
using hangar::http::Headers;
using hangar::http::Request;
using hangar::http::Responder;
using hangar::http::Response;

struct Script {
  int load_ms = 0;
  bool crash_at_load = false;
  bool hang = false;
  bool ignore_sigterm = false;
  json memory = json::object();
  int chatter_ms = 0;
};

std::string g_model_id = "fake";
std::string g_model_path;
std::atomic<bool> g_ready{false};
int g_control_fd = -1;

// Gates for causal streaming tests: tag → released.
std::mutex g_gate_mu;
std::condition_variable g_gate_cv;
std::map<std::string, bool> g_gates;  // guarded by g_gate_mu

void control_write(const hangar::control::Event& event) {
  if (g_control_fd < 0) return;
  std::string line = hangar::control::encode(event) + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = write(g_control_fd, line.data() + off, line.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Response error(int code, const std::string& msg) {
  return hangar::http::error_response(code, msg, "invalid_request_error");
}

bool parse_body(const Request& req, json* out) {
  try {
    *out = json::parse(req.body);
    return out->is_object();
  } catch (const json::exception&) {
    return false;
  }
}

std::string prompt_of(const json& body) {
  std::string prompt;
  if (body.contains("messages") && body["messages"].is_array()) {
    for (const json& m : body["messages"]) {
      if (m.is_object() && m.contains("content") && m["content"].is_string()) {
        if (!prompt.empty()) prompt += " ";
        prompt += m["content"].get<std::string>();
      }
    }
  } else if (body.contains("prompt") && body["prompt"].is_string()) {
    prompt = body["prompt"].get<std::string>();
  } else if (body.contains("content") && body["content"].is_string()) {
    prompt = body["content"].get<std::string>();
  }
  return prompt;
}

// The deterministic answer: "<model> heard: <prompt>", as word pieces (each with its space).
std::vector<std::string> answer_pieces(const std::string& prompt) {
  std::vector<std::string> pieces;
  std::istringstream in(g_model_id + " heard: " + prompt);
  std::string word;
  while (in >> word) pieces.push_back(word + " ");
  return pieces;
}

json chunk_json(bool chat, const std::string& content, bool first, bool last) {
  json choice = {{"index", 0}, {"finish_reason", last ? json("stop") : json(nullptr)}};
  if (chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!last) delta["content"] = content;
    choice["delta"] = delta;
  } else {
    choice["text"] = content;
  }
  return {{"id", chat ? "chatcmpl-fake" : "cmpl-fake"},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", unix_now()},
          {"model", g_model_id},
          {"choices", json::array({choice})}};
}

void stream_answer(json body, bool chat, std::shared_ptr<Responder> r) {
  std::string gate = body.value("fake_gate", std::string());
  int crash_after = body.value("fake_crash_after", -1);
  Headers h;
  h.add("Content-Type", "text/event-stream");
  h.add("Cache-Control", "no-cache");
  if (!r->start(200, h)) return;
  std::vector<std::string> pieces = answer_pieces(prompt_of(body));
  auto gate_closed = std::make_shared<std::atomic<bool>>(false);
  r->on_close([gate_closed] {
    gate_closed->store(true);
    g_gate_cv.notify_all();
  });
  if (chat) r->write(hangar::http::sse_data(chunk_json(chat, "", true, false).dump()));
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (crash_after >= 0 && static_cast<int>(i) == crash_after) {
      std::fprintf(stderr, "fake-worker: scripted crash mid-stream after %d chunks\n",
                   crash_after);
      std::fflush(stderr);
      _exit(1);
    }
    if (i == 1 && !gate.empty()) {
      std::unique_lock lock(g_gate_mu);
      // 60 s: a hang detector for a test that forgot to release the gate.
      g_gate_cv.wait_for(lock, std::chrono::seconds(60),
                         [&] { return g_gates[gate] || gate_closed->load(); });
    }
    if (!r->write(hangar::http::sse_data(chunk_json(chat, pieces[i], !chat && i == 0, false).dump()))) {
      return;
    }
  }
  r->write(hangar::http::sse_data(chunk_json(chat, "", false, true).dump()));
  r->write(hangar::http::sse_data("[DONE]"));
  r->finish();
}

void handle_completion(const Request& req, std::shared_ptr<Responder> r, bool chat) {
  json body;
  if (!parse_body(req, &body)) {
    r->send(error(400, "request body is not a JSON object"));
    return;
  }
  if (body.value("stream", false)) {
    std::thread(stream_answer, std::move(body), chat, std::move(r)).detach();
    return;
  }
  std::string text;
  for (const std::string& p : answer_pieces(prompt_of(body))) text += p;
  json choice = {{"index", 0}, {"finish_reason", "stop"}};
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  json out = {{"id", chat ? "chatcmpl-fake" : "cmpl-fake"},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", unix_now()},
              {"model", g_model_id},
              {"choices", json::array({choice})},
              {"usage", {{"prompt_tokens", 1}, {"completion_tokens", 1}, {"total_tokens", 2}}}};
  r->send(Response::json(200, out.dump()));
}

void install_routes(hangar::http::Server& s) {
  s.route("GET", "/health", [](Request, std::shared_ptr<Responder> r) {
    if (g_ready) {
      r->send(Response::json(200, R"({"status":"ok"})"));
    } else {
      r->send(hangar::http::error_response(503, "Loading model", "unavailable_error"));
    }
  });
  s.route("GET", "/v1/models", [](Request, std::shared_ptr<Responder> r) {
    json m = {{"id", g_model_id}, {"object", "model"}, {"created", unix_now()},
              {"owned_by", "hangar"}};
    r->send(Response::json(200, json{{"object", "list"}, {"data", json::array({m})}}.dump()));
  });
  s.route("GET", "/props", [](Request, std::shared_ptr<Responder> r) {
    json p = {{"model_alias", g_model_id}, {"model_path", g_model_path}, {"total_slots", 1},
              {"role", "model"}};
    r->send(Response::json(200, p.dump()));
  });
  s.route("GET", "/metrics", [](Request, std::shared_ptr<Responder> r) {
    r->send(Response::text(200, "fake_worker_up 1\n"));
  });
  s.route("POST", "/v1/chat/completions", [](Request req, std::shared_ptr<Responder> r) {
    handle_completion(req, std::move(r), true);
  });
  s.route("POST", "/v1/completions", [](Request req, std::shared_ptr<Responder> r) {
    handle_completion(req, std::move(r), false);
  });
  s.route("POST", "/completion", [](Request req, std::shared_ptr<Responder> r) {
    handle_completion(req, std::move(r), false);
  });
  s.route("POST", "/tokenize", [](Request req, std::shared_ptr<Responder> r) {
    json body;
    if (!parse_body(req, &body)) return (void)r->send(error(400, "bad JSON"));
    if (body.contains("fake_release")) {
      std::string tag = body.value("fake_release", std::string());
      {
        std::lock_guard lock(g_gate_mu);
        g_gates[tag] = true;
      }
      g_gate_cv.notify_all();
      return (void)r->send(Response::json(200, json{{"released", tag}}.dump()));
    }
    json tokens = json::array();
    for (unsigned char c : body.value("content", std::string())) tokens.push_back(int(c));
    r->send(Response::json(200, json{{"tokens", tokens}}.dump()));
  });
  s.route("POST", "/detokenize", [](Request req, std::shared_ptr<Responder> r) {
    json body;
    if (!parse_body(req, &body)) return (void)r->send(error(400, "bad JSON"));
    std::string text;
    if (body.contains("tokens") && body["tokens"].is_array()) {
      for (const json& t : body["tokens"]) {
        if (t.is_number_integer()) text.push_back(static_cast<char>(t.get<int>() & 0xff));
      }
    }
    r->send(Response::json(200, json{{"content", text}}.dump()));
  });
  s.route("POST", "/apply-template", [](Request req, std::shared_ptr<Responder> r) {
    json body;
    if (!parse_body(req, &body)) return (void)r->send(error(400, "bad JSON"));
    r->send(Response::json(200, json{{"prompt", "<fake>" + prompt_of(body)}}.dump()));
  });
  s.route("POST", "/v1/embeddings", [](Request req, std::shared_ptr<Responder> r) {
    json body;
    if (!parse_body(req, &body)) return (void)r->send(error(400, "bad JSON"));
    std::string input = body.value("input", std::string());
    json v = json::array({double(input.size()), double(g_model_id.size()), 0.5, -0.5});
    json out = {{"object", "list"},
                {"model", g_model_id},
                {"data", json::array({{{"object", "embedding"}, {"index", 0}, {"embedding", v}}})},
                {"usage", {{"prompt_tokens", 1}, {"total_tokens", 1}}}};
    r->send(Response::json(200, out.dump()));
  });
}

Script read_script(const std::string& path) {
  Script s;
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    json j = json::parse(ss.str());
    if (!j.is_object()) return s;
    s.load_ms = j.value("load_ms", 0);
    s.crash_at_load = j.value("crash_at_load", false);
    s.hang = j.value("hang", false);
    s.ignore_sigterm = j.value("ignore_sigterm", false);
    if (j.contains("memory")) s.memory = j["memory"];
    s.chatter_ms = j.value("chatter_ms", 0);
  } catch (const json::exception&) {
    // Not a script (a real GGUF, or empty): default behaviour.
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string unix_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "-m" || a == "--model") {
      g_model_path = next();
    } else if (a == "--control-fd") {
      g_control_fd = std::atoi(next().c_str());
    } else if (a == "-a" || a == "--alias") {
      g_model_id = next();
    } else if (a == "--port") {
      port = std::atoi(next().c_str());
    } else if (a == "--listen") {  // unix:PATH, as the router starts hangar's own workers
      std::string v = next();
      if (v.starts_with("unix:")) unix_path = v.substr(5);
    }
  }
  if (g_model_id == "fake" && !g_model_path.empty()) {
    std::string base = g_model_path.substr(g_model_path.find_last_of('/') + 1);
    if (base.size() > 5 && base.ends_with(".gguf")) base.resize(base.size() - 5);
    g_model_id = base;
  }
  Script script = read_script(g_model_path);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);  // before any thread: they all inherit it
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  std::fprintf(stderr, "fake-worker: model %s from %s\n", g_model_id.c_str(),
               g_model_path.c_str());
  std::fflush(stderr);

  hangar::http::ServerOptions opts;
  opts.port = static_cast<uint16_t>(port);
  opts.unix_path = unix_path;
  opts.threads = 2;
  hangar::http::Server server(opts);
  install_routes(server);

  auto wait_events = [&](int timeout_ms) -> int {
    // Returns 1 on SIGTERM/SIGINT, 2 on control EOF, 0 on timeout.
    pollfd fds[2] = {{sfd, POLLIN, 0}, {g_control_fd, POLLIN, 0}};
    int n = g_control_fd >= 0 ? 2 : 1;
    int r = poll(fds, static_cast<nfds_t>(n), timeout_ms);
    if (r <= 0) return 0;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      (void)!read(sfd, &info, sizeof(info));
      return 1;
    }
    if (n == 2 && fds[1].revents) {
      char buf[256];
      ssize_t got = read(g_control_fd, buf, sizeof(buf));
      if (got <= 0) return 2;
    }
    return 0;
  };

  if (script.hang) {
    // Never ready, never a control event: the router's stall timeout must kill it, even
    // when it keeps logging (chatter_ms).
    while (true) {
      int ev = wait_events(script.chatter_ms > 0 ? script.chatter_ms : -1);
      if (ev == 2) return 0;
      if (ev == 1 && !script.ignore_sigterm) return 0;
      if (script.chatter_ms > 0) {
        std::fprintf(stderr, "fake-worker: still loading...\n");
        std::fflush(stderr);
      }
    }
  }
  auto bound = server.listen();
  if (!bound.ok()) {
    control_write(hangar::control::Error{bound.status().message()});
    std::fprintf(stderr, "fake-worker: %s\n", bound.status().message().c_str());
    return 1;
  }
  control_write(hangar::control::Listening{*bound, unix_path});
  control_write(hangar::control::Loading{0.0});
  if (script.crash_at_load) {
    std::fprintf(stderr, "fake-worker: scripted crash at load\n");
    std::fflush(stderr);
    _exit(3);
  }
  if (script.load_ms > 0) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(script.load_ms);
    while (std::chrono::steady_clock::now() < until) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      int ev = wait_events(static_cast<int>(std::max<int64_t>(1, left.count())));
      if (ev == 2 || (ev == 1 && !script.ignore_sigterm)) _exit(0);  // nothing in flight yet
    }
    control_write(hangar::control::Loading{1.0});
  }
  g_ready = true;
  hangar::control::Ready ready;
  ready.model_json = json{{"id", g_model_id}, {"path", g_model_path}}.dump();
  for (const auto& [device, bytes] : script.memory.items()) {
    if (bytes.is_number_unsigned()) ready.memory[device] = bytes.get<uint64_t>();
  }
  control_write(ready);
  std::fprintf(stderr, "fake-worker: ready on %s\n",
               unix_path.empty() ? ("port " + std::to_string(*bound)).c_str()
                                 : ("unix:" + unix_path).c_str());
  std::fflush(stderr);
  while (true) {
    int ev = wait_events(-1);
    if (ev == 2) {
      server.stop();
      server.drain(std::chrono::seconds(1));
      return 0;
    }
    if (ev == 1) {
      if (script.ignore_sigterm) continue;
      std::fprintf(stderr, "fake-worker: SIGTERM, finishing in-flight requests\n");
      std::fflush(stderr);
      server.stop();
      server.drain(std::chrono::seconds(30));
      return 0;
    }
  }
}
