#pragma once
// Parallel keep-alive clients for the http tests: each sends `requests` POST /echo requests with
// a body of its own and checks the answer is that body. Returns how many answers were right.

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"

namespace hangar::http::testing {

inline int parallel_echo_clients(uint16_t port, int clients, int requests) {
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      Client client("127.0.0.1", port);
      for (int i = 0; i < requests; ++i) {
        std::string body = std::to_string(c) + ":" + std::to_string(i);
        auto r = client.request("POST", "/echo", body);
        if (r.ok() && r->status == 200 && r->body == body) good++;
      }
    });
  }
  for (auto& t : threads) t.join();
  return good.load();
}

}  // namespace hangar::http::testing
