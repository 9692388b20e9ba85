// router_bench: what the router adds (issue 5 item 8). One run, side by side: the same fake
// worker reached straight and through an in-process Router on 127.0.0.1 (whose worker listens on
// a Unix socket, as `hangar serve` starts them; a second router with a worker on TCP is measured
// beside it).
//   - latency p50/p99 of small non-streaming requests (keep-alive client, sequential)
//   - latency p50/p99 to the first SSE chunk of a streamed chat completion
//   - requests/s with several concurrent keep-alive clients
// Prints the added microseconds and the throughput ratio. Goal: <= 30 us added at p50,
// >= 0.95x direct throughput (floor: 50 us, 0.9x).
//
// Usage: router_bench [FAKE_WORKER_PATH] [--requests N] [--clients C] [--seconds S] [--rounds R]
//                     [--threads T (the router's io threads, default 2 as `hangar serve`)]
//                     [--model GGUF (a real model: FAKE_WORKER_PATH is then the `hangar` binary
//                      and the workers are `hangar run`)]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "http/client.h"
#include "http/server.h"
#include "http/upstream.h"
#include "router/router.h"

namespace {

using Clock = std::chrono::steady_clock;
using hangar::http::Client;

struct Stats {
  double p50_us = 0, p99_us = 0;
};

Stats summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  if (us.empty()) return {};
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

double elapsed_us(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

const std::string kSmallBody = R"({"model":"m","content":"hi"})";
const std::string kStreamBody =
    R"({"model":"m","stream":true,"max_tokens":4,"temperature":0,)"
    R"("messages":[{"role":"user","content":"a b c d"}]})";

// Sequential small requests, one to each port in turn, so drift hits all alike.
std::vector<Stats> small_latency(const std::vector<uint16_t>& ports, int n) {
  std::vector<std::unique_ptr<Client>> clients;
  for (uint16_t p : ports) clients.push_back(std::make_unique<Client>("127.0.0.1", p));
  std::vector<std::vector<double>> lat(ports.size());
  hangar::http::Headers h{{"Content-Type", "application/json"}};
  for (int i = 0; i < n + 100; ++i) {
    for (size_t which = 0; which < ports.size(); ++which) {
      auto t0 = Clock::now();
      auto resp = clients[which]->request("POST", "/tokenize", kSmallBody, h);
      auto t1 = Clock::now();
      if (!resp.ok() || resp->status != 200) {
        std::fprintf(stderr, "request failed: %s\n",
                     resp.ok() ? resp->body.c_str() : resp.status().message().c_str());
        std::exit(1);
      }
      if (i >= 100) lat[which].push_back(elapsed_us(t0, t1));  // after warm-up
    }
  }
  std::vector<Stats> out;
  for (auto& l : lat) out.push_back(summarize(std::move(l)));
  return out;
}

double first_chunk_us(uint16_t port) {
  hangar::http::FetchOptions o;
  o.method = "POST";
  o.body = kStreamBody;
  o.headers.add("Content-Type", "application/json");
  auto t0 = Clock::now();
  double first = -1;
  (void)hangar::http::fetch_stream(
      "http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions", o,
      [](int, const hangar::http::Headers&) {},
      [&](std::string_view) {
        if (first < 0) first = elapsed_us(t0, Clock::now());
        return true;
      });
  return first;
}

void sse_latency(uint16_t direct, uint16_t routed, int n, Stats* d, Stats* r) {
  std::vector<double> ld, lr;
  for (int i = 0; i < n + 20; ++i) {
    double a = first_chunk_us(direct), b = first_chunk_us(routed);
    if (i >= 20) {
      ld.push_back(a);
      lr.push_back(b);
    }
  }
  *d = summarize(ld);
  *r = summarize(lr);
}

double throughput(uint16_t port, int clients, double seconds) {
  std::atomic<uint64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      Client cl("127.0.0.1", port);
      hangar::http::Headers h{{"Content-Type", "application/json"}};
      while (!stop.load(std::memory_order_relaxed)) {
        auto resp = cl.request("POST", "/tokenize", kSmallBody, h);
        if (resp.ok() && resp->status == 200) done.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // the measured window
  stop = true;
  uint64_t n = done.load();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& t : threads) t.join();
  return static_cast<double>(n) / s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string worker = "hangar-fake-worker";
  int n = 2000, clients = 4, threads = 2, rounds = 3;
  std::string model;  // a real GGUF: then FAKE_WORKER_PATH is the `hangar` binary
  double seconds = 2;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--requests") && i + 1 < argc) {
      n = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--clients") && i + 1 < argc) {
      clients = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--model") && i + 1 < argc) {
      model = argv[++i];
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      worker = argv[i];
    }
  }
  (void)hangar::init_logging("warn", "text");
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("hangar-router-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  if (model.empty()) {
    std::ofstream(dir / "m.gguf") << "{}";  // the fake worker's (empty) script
  } else {
    std::error_code ec;
    fs::create_symlink(fs::absolute(model), dir / "m.gguf", ec);
    if (ec) {
      std::fprintf(stderr, "cannot link %s: %s\n", model.c_str(), ec.message().c_str());
      return 1;
    }
  }

  // Two routers over the same model file: hangar's default, whose workers listen on Unix
  // sockets (design §6), and one whose workers listen on 127.0.0.1, which gives the direct
  // baseline (a TCP port a client can reach) and the routed-over-TCP figures to compare with.
  auto start_router = [&](bool unix_workers, uint16_t* port)
      -> std::unique_ptr<hangar::router::Router> {
    hangar::router::RouterOptions o;
    o.port = 0;
    o.worker_bin = worker;
    o.sources.models_dir = dir.string();
    o.http_threads = threads;
    o.memory_margin_mib = 0;  // the fake worker's script is not a GGUF file to estimate
    o.worker_unix_sockets = unix_workers;
    auto created = hangar::router::Router::create(o);
    if (!created.ok()) {
      std::fprintf(stderr, "router: %s\n", created.status().message().c_str());
      return nullptr;
    }
    auto router = std::move(created).value();
    auto p = router->start();
    if (!p.ok()) return nullptr;
    auto load = hangar::http::fetch(
        "POST", "http://127.0.0.1:" + std::to_string(*p) + "/models/load",
        R"({"model":"m","wait":true})");
    if (!load.ok() || load->status != 200) {
      std::fprintf(stderr, "load failed\n");
      return nullptr;
    }
    *port = *p;
    return router;
  };
  uint16_t tcp_router_port = 0, unix_router_port = 0;
  auto tcp_router = start_router(false, &tcp_router_port);
  auto router = start_router(true, &unix_router_port);
  if (!tcp_router || !router) return 1;
  const uint16_t* port = &unix_router_port;
  uint16_t direct = 0;
  std::string unix_path;
  for (const auto& s : tcp_router->model_status()) {
    if (s.id == "m") direct = s.address.port;
  }
  for (const auto& s : router->model_status()) {
    if (s.id == "m") unix_path = s.address.unix_path;
  }
  if (direct == 0 || unix_path.empty()) {
    std::fprintf(stderr, "the workers did not report where they listen\n");
    return 1;
  }
  std::printf("router_bench: worker port %u (and %s), routers %u (Unix worker) and %u (TCP "
              "worker), %d requests, %d clients, %.1f s\n",
              direct, unix_path.c_str(), *port, tcp_router_port, n, clients, seconds);

  // The same hop without the router: a bare http::Server forwarding to the same worker with
  // as many io threads. routed - bare = what src/router adds on top of src/http's proxy.
  hangar::http::ServerOptions bare_options;
  bare_options.threads = threads;
  hangar::http::Server bare(bare_options);
  auto bare_upstream = hangar::http::Upstream::create(bare, "127.0.0.1", direct);
  bare.set_fallback([&](hangar::http::Request req, std::shared_ptr<hangar::http::Responder> r) {
    hangar::http::forward(std::move(req), std::move(r), bare_upstream,
                          [](const hangar::http::ForwardResult&) {});
  });
  auto bare_port = bare.listen();
  if (!bare_port.ok()) return 1;

  // Each round measures everything once; the summary takes the median of the rounds, so one
  // round disturbed by the machine does not decide the figures.
  std::vector<double> added, added_sse, ratio;
  for (int round = 1; round <= rounds; ++round) {
    if (rounds > 1) std::printf("-- round %d of %d\n", round, rounds);
    std::vector<Stats> lat = small_latency({direct, *bare_port, *port, tcp_router_port}, n);
    const Stats &d0 = lat[0], &b0 = lat[1], &r0 = lat[2], &t0 = lat[3];
    std::printf("small request  direct p50 %8.1f us p99 %8.1f us | "
                "routed p50 %8.1f us p99 %8.1f us | added p50 %6.1f us p99 %6.1f us\n",
                d0.p50_us, d0.p99_us, r0.p50_us, r0.p99_us, r0.p50_us - d0.p50_us,
                r0.p99_us - d0.p99_us);
    std::printf("  of which the bare http forward (no router) adds p50 %6.1f us p99 %6.1f us;"
                " the router on top of it p50 %6.1f us\n",
                b0.p50_us - d0.p50_us, b0.p99_us - d0.p99_us, r0.p50_us - b0.p50_us);
    std::printf("  routed to a worker on TCP instead of a Unix socket: p50 %8.1f us p99 %8.1f "
                "us (the Unix socket saves %5.1f us at p50)\n",
                t0.p50_us, t0.p99_us, t0.p50_us - r0.p50_us);
    Stats d, r;
    sse_latency(direct, *port, std::max(50, n / 10), &d, &r);
    std::printf("first SSE chunk direct p50 %8.1f us p99 %8.1f us | "
                "routed p50 %8.1f us p99 %8.1f us | added p50 %6.1f us p99 %6.1f us\n",
                d.p50_us, d.p99_us, r.p50_us, r.p99_us, r.p50_us - d.p50_us, r.p99_us - d.p99_us);
    double td = throughput(direct, clients, seconds);
    double tr = throughput(*port, clients, seconds);
    double tb = throughput(*bare_port, clients, seconds);
    double tt = throughput(tcp_router_port, clients, seconds);
    std::printf("throughput     direct %9.0f req/s | routed %9.0f req/s | ratio %.3fx"
                " (bare http forward %9.0f req/s, %.3fx; routed to a TCP worker %9.0f req/s, "
                "%.3fx)\n",
                td, tr, tr / td, tb, tb / td, tt, tt / td);
    added.push_back(r0.p50_us - d0.p50_us);
    added_sse.push_back(r.p50_us - d.p50_us);
    ratio.push_back(tr / td);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("median of %d rounds: small request added p50 %.1f us | first SSE chunk added p50 "
              "%.1f us | throughput ratio %.3fx  (goal <= 30 us, >= 0.95x; floor 50 us, 0.9x)\n",
              rounds, median(added), median(added_sse), median(ratio));
  bare.drain(std::chrono::seconds(5));
  router->shutdown(std::chrono::seconds(5));
  tcp_router->shutdown(std::chrono::seconds(5));
  fs::remove_all(dir);
  return 0;
}
