#pragma once
// Address: where an HTTP server listens or a client connects — a TCP host:port or a Unix
// socket path (design §6: the router's own workers listen on Unix sockets in a directory only
// the router's user can enter). Plain value type.

#include <cstdint>
#include <string>

namespace hangar::http {

struct Address {
  std::string host = "127.0.0.1";  // TCP only
  uint16_t port = 0;               // TCP only
  std::string unix_path;           // non-empty: a Unix socket (host and port unused)

  static Address tcp(std::string host, uint16_t port) { return {std::move(host), port, {}}; }
  static Address unix_socket(std::string path) { return {{}, 0, std::move(path)}; }

  bool is_unix() const { return !unix_path.empty(); }
  // Nothing to connect to: no socket path and no port.
  bool empty() const { return unix_path.empty() && port == 0; }
  // "host:port" or "unix:PATH", for logs and errors.
  std::string to_string() const {
    return is_unix() ? "unix:" + unix_path : host + ":" + std::to_string(port);
  }
  // The Host header a request to it carries.
  std::string host_header() const { return is_unix() ? "localhost" : to_string(); }

  friend bool operator==(const Address&, const Address&) = default;
};

}  // namespace hangar::http
