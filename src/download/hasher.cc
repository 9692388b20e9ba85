// Hasher on OpenSSL's EVP interface (the SHA256_* functions are deprecated in OpenSSL 3).
#include "download/hasher.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace hangar::download {

struct Hasher::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Hasher::Hasher(Kind kind, uint64_t content_size) : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx_->md, kind == Kind::kSha256 ? EVP_sha256() : EVP_sha1(), nullptr);
  if (kind == Kind::kGitSha1) {
    std::string head = "blob " + std::to_string(content_size);
    EVP_DigestUpdate(ctx_->md, head.data(), head.size() + 1);  // with the '\0'
  }
}

Hasher::~Hasher() { EVP_MD_CTX_free(ctx_->md); }

void Hasher::update(const void* data, size_t n) { EVP_DigestUpdate(ctx_->md, data, n); }

std::string Hasher::finish_hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, digest, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

Status hash_file_prefix(const std::string& path, uint64_t bytes, Hasher& h) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unavailable_error("download: cannot read '" + path + "': " + strerror(errno));
  std::vector<char> buf(1 << 20);
  uint64_t left = bytes;
  while (left > 0) {
    ssize_t n = ::read(fd, buf.data(), std::min<uint64_t>(buf.size(), left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return data_loss_error("download: '" + path + "' ends before byte " + std::to_string(bytes));
    }
    h.update(buf.data(), static_cast<size_t>(n));
    left -= static_cast<uint64_t>(n);
  }
  ::close(fd);
  return ok_status();
}

}  // namespace hangar::download
