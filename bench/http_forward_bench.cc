// Router overhead benchmark: small requests to a worker directly vs through a proxy Server
// that forward()s them, measured side by side in one run (design §10). Prints p50/p99 latency
// of sequential requests and the throughput of parallel keep-alive clients, with the ratios.
//
// Usage: http_forward_bench [requests=20000] [clients=4]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/server.h"
#include "http/upstream.h"

namespace {

using hangar::http::Client;
using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

// Sequential latency in microseconds for each request; alternates targets in rounds so both
// see the same machine state.
void latency(uint16_t direct, uint16_t proxied, int n, std::vector<double>* d,
             std::vector<double>* p) {
  Client cd("127.0.0.1", direct), cp("127.0.0.1", proxied);
  const std::string body = R"({"model":"m","prompt":"hi"})";
  for (int i = 0; i < n; ++i) {
    for (int which = 0; which < 2; ++which) {
      Client& c = which == 0 ? cd : cp;
      auto t0 = Clock::now();
      auto r = c.request("POST", "/v1/completions", body);
      auto us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      if (!r.ok() || r->status != 200) {
        std::fprintf(stderr, "request failed: %s\n", r.status().to_string().c_str());
        std::exit(1);
      }
      (which == 0 ? d : p)->push_back(us);
    }
  }
}

double throughput(uint16_t port, int clients, int per_client) {
  std::atomic<int> failures{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      Client client("127.0.0.1", port);
      for (int i = 0; i < per_client; ++i) {
        auto r = client.request("POST", "/v1/completions", R"({"model":"m"})");
        if (!r.ok() || r->status != 200) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failures) std::fprintf(stderr, "%d requests failed\n", failures.load());
  return clients * per_client / s;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  int clients = argc > 2 ? std::atoi(argv[2]) : 4;
  hangar::http::Server worker{hangar::http::ServerOptions{}};
  worker.route("POST", "/v1/completions",
               [](hangar::http::Request, std::shared_ptr<hangar::http::Responder> r) {
                 r->send(hangar::http::Response::json(200, R"({"id":"cmpl-1","object":"text_completion"})"));
               });
  if (!worker.listen().ok()) return 1;
  hangar::http::Server proxy{hangar::http::ServerOptions{}};
  auto upstream = hangar::http::Upstream::create(proxy, "127.0.0.1", worker.port());
  proxy.set_fallback([&](hangar::http::Request req, std::shared_ptr<hangar::http::Responder> r) {
    hangar::http::forward(std::move(req), std::move(r), upstream,
                          [](const hangar::http::ForwardResult&) {});
  });
  if (!proxy.listen().ok()) return 1;

  std::vector<double> d, p;
  latency(worker.port(), proxy.port(), std::max(100, n / 10), &d, &p);  // warm-up
  d.clear();
  p.clear();
  latency(worker.port(), proxy.port(), n, &d, &p);
  double d50 = percentile(d, 0.5), p50 = percentile(p, 0.5);
  double d99 = percentile(d, 0.99), p99 = percentile(p, 0.99);
  std::printf("latency (us, %d sequential requests each, keep-alive)\n", n);
  std::printf("  direct   p50 %8.1f  p99 %8.1f\n", d50, d99);
  std::printf("  forward  p50 %8.1f  p99 %8.1f\n", p50, p99);
  std::printf("  added    p50 %8.1f  p99 %8.1f\n", p50 - d50, p99 - d99);

  int per_client = std::max(100, n / clients);
  double td = throughput(worker.port(), clients, per_client);
  double tp = throughput(proxy.port(), clients, per_client);
  double td2 = throughput(worker.port(), clients, per_client);
  double tp2 = throughput(proxy.port(), clients, per_client);
  std::printf("throughput (req/s, %d keep-alive clients, %d requests each, 2 rounds)\n", clients,
              per_client);
  std::printf("  direct   %10.0f %10.0f\n", td, td2);
  std::printf("  forward  %10.0f %10.0f\n", tp, tp2);
  std::printf("  ratio    %10.3f %10.3f\n", tp / td, tp2 / td2);
  std::printf("upstream connections opened: %llu\n",
              static_cast<unsigned long long>(upstream->stats().connections_opened));
  proxy.drain(std::chrono::seconds(5));
  worker.drain(std::chrono::seconds(5));
  return 0;
}
