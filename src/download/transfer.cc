// libcurl behind stream_get()/http_get().
#include "download/transfer.h"

#include <curl/curl.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace hangar::download {
namespace {

using Clock = std::chrono::steady_clock;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct State {
  const StreamRequest* req = nullptr;
  StreamOutcome out;
  ResponseHead block;  // the header block being read (a redirect starts a new one)
  Clock::time_point last_byte;
};

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

bool iprefix(const std::string& line, const char* name, std::string* value) {
  size_t n = std::strlen(name);
  if (line.size() < n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  }
  *value = trim(line.substr(n));
  return true;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* st = static_cast<State*>(user);
  std::string line(data, size * count);
  std::string v;
  if (line.rfind("HTTP/", 0) == 0) {
    st->block = ResponseHead();
    size_t sp = line.find(' ');
    if (sp != std::string::npos) st->block.status = std::atoi(line.c_str() + sp + 1);
  } else if (iprefix(line, "content-length:", &v)) {
    st->block.content_length = std::strtoull(v.c_str(), nullptr, 10);
  } else if (iprefix(line, "content-range:", &v)) {
    st->block.content_range = v;
  } else if (iprefix(line, "etag:", &v)) {
    st->block.etag = v;
  } else if (iprefix(line, "retry-after:", &v)) {
    st->block.retry_after = v;
  }
  return size * count;
}

bool fire_head(State* st) {
  if (st->out.head_seen) return true;
  st->out.head_seen = true;
  st->out.head = st->block;
  if (st->req->on_head && !st->req->on_head(st->out.head)) {
    st->out.aborted = true;
    return false;
  }
  return true;
}

size_t on_write(char* data, size_t size, size_t count, void* user) {
  auto* st = static_cast<State*>(user);
  size_t n = size * count;
  if (!fire_head(st)) return CURL_WRITEFUNC_ERROR;
  st->last_byte = Clock::now();
  if (st->req->on_body && !st->req->on_body(data, n)) {
    st->out.aborted = true;
    return CURL_WRITEFUNC_ERROR;
  }
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* st = static_cast<State*>(user);
  if (st->req->cancelled && st->req->cancelled()) {
    st->out.cancelled = true;
    return 1;
  }
  if (st->req->stall_timeout.count() > 0 && Clock::now() - st->last_byte > st->req->stall_timeout) {
    st->out.stalled = true;
    return 1;
  }
  return 0;
}

}  // namespace

StreamOutcome stream_get(const StreamRequest& req) {
  global_init();
  State st;
  st.req = &req;
  st.last_byte = Clock::now();
  CURL* curl = curl_easy_init();
  if (!curl) {
    st.out.error = "curl_easy_init failed";
    return st.out;
  }
  curl_slist* headers = nullptr;
  if (!req.token.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + req.token).c_str());
  }
  for (const std::string& h : req.headers) headers = curl_slist_append(headers, h.c_str());
  headers = curl_slist_append(headers, "User-Agent: hangar");

  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
  if (req.total_timeout.count() > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(req.total_timeout.count()));
  }
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &st);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &st);

  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    if (fire_head(&st)) st.out.complete = true;
  } else {
    st.out.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (st.out.stalled) st.out.error = "no byte received within the stall timeout";
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return st.out;
}

StatusOr<SmallResponse> http_get(const std::string& url, const std::string& token,
                                 std::chrono::milliseconds connect_timeout,
                                 std::chrono::milliseconds total_timeout, size_t max_body) {
  SmallResponse resp;
  bool too_big = false;
  StreamRequest req;
  req.url = url;
  req.token = token;
  req.connect_timeout = connect_timeout;
  req.stall_timeout = total_timeout;
  req.total_timeout = total_timeout;
  req.on_body = [&](const char* data, size_t n) {
    if (resp.body.size() + n > max_body) {
      too_big = true;
      return false;
    }
    resp.body.append(data, n);
    return true;
  };
  StreamOutcome out = stream_get(req);
  if (too_big) {
    return unavailable_error("download: " + url + " answered more than " +
                             std::to_string(max_body) + " bytes");
  }
  if (!out.complete) return unavailable_error("download: GET " + url + ": " + out.error);
  resp.status = out.head.status;
  resp.retry_after = out.head.retry_after;
  return resp;
}

}  // namespace hangar::download
