#pragma once
// Responder: how a handler answers one request, now or later, from any thread.
//
// A handler gets (Request, std::shared_ptr<Responder>). It either calls send() once with a whole
// Response, or streams: start(status, headers), write(chunk)..., finish(). Without a
// Content-Length in start()'s headers the body goes out with chunked transfer encoding; with
// one, exactly that many bytes must be written. If the last reference to a Responder is dropped
// without an answer, the server answers 500; dropped mid-stream without finish(), the response
// is aborted (a handler bug never hangs a client).
//
// Backpressure: write() never blocks. Bytes not yet on the socket count in buffered_bytes();
// a producer that wants to keep pace pauses while buffered_bytes() > kHighWaterBytes and resumes
// from on_drained(). A producer that ignores this is bounded all the same: once more than the
// server's max_buffered_bytes are queued, the connection is aborted (is_closed() turns true,
// on_close fires) rather than growing memory without bound.
//
// Disconnects: the server keeps reading the socket while a response is pending, so a client
// that goes away is seen at once: is_closed() turns true and the on_close callbacks run (on an
// io thread; keep them short — set a flag, cancel a computation).
//
// Thread-safety: every method may be called from any thread, concurrently. Callbacks run on the
// connection's io thread and must not block.

#include <cstddef>
#include <functional>
#include <string>

#include "http/message.h"

namespace hangar::http {

class Responder {
 public:
  // A producer should pause while buffered_bytes() is above this and wait for on_drained().
  static constexpr size_t kHighWaterBytes = 256 * 1024;

  virtual ~Responder() = default;

  // Sends a whole response (Content-Length from the body). Returns false, doing nothing, when a
  // response was already sent or started, or the client is gone.
  virtual bool send(Response response) = 0;

  // Starts a streamed response: the status line and headers go out now (so an SSE client sees
  // them before the first event). Hop-by-hop headers in `headers` (Connection,
  // Transfer-Encoding, Keep-Alive...) are ignored; the server sets its own. Returns false when
  // already answered or the client is gone.
  virtual bool start(int status, Headers headers) = 0;

  // Queues one body chunk (sent as one HTTP chunk). An empty chunk is ignored. Returns false
  // when not started, already finished, or the client is gone (the chunk is dropped).
  virtual bool write(std::string chunk) = 0;

  // Ends a streamed response (the terminating chunk). Idempotent; ignored when not started.
  virtual void finish() = 0;

  // Ends the exchange abnormally: closes the connection after the bytes already queued, without
  // a terminating chunk, so the client sees a truncated body (an upstream died mid-stream).
  // Before start()/send() it simply closes the connection.
  virtual void abort() = 0;

  // True once the client disconnected or the connection was aborted/closed.
  virtual bool is_closed() const = 0;
  // True once send() or start() was accepted.
  virtual bool started() const = 0;

  // Runs `fn` once when the connection closes before the response completed (client gone,
  // aborted, buffer limit, server stop). Runs at once (on the caller's thread) if already closed.
  // Several callbacks may be registered.
  virtual void on_close(std::function<void()> fn) = 0;

  // Bytes accepted by write()/send() and not yet written to the socket.
  virtual size_t buffered_bytes() const = 0;

  // Runs `fn` once, the next time buffered_bytes() falls to kHighWaterBytes / 4 or below (at once
  // if it already is), or when the connection closes. Replaces a previous pending callback.
  virtual void on_drained(std::function<void()> fn) = 0;
};

}  // namespace hangar::http
