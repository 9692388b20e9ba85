// download_bench: hangar's downloader against curl fetching the same file from the fake hub on
// 127.0.0.1 in the same run (issue 13's goal: ≥ 0.9× curl), and the cost of SHA-256 per GiB.
//   download_bench [MiB=512] [runs=3]
// Prints the best of `runs` for each, and the ratio. Both write to the same filesystem (the
// system's temp folder); hangar also hashes and renames, as it always does.
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "download/download.h"
#include "fake_hub.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 512;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  const uint64_t size = mib << 20;
  const fs::path dir = fs::temp_directory_path() / ("hangar-dl-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string src = (dir / "source.gguf").string();
  {
    std::ofstream out(src, std::ios::binary);
    std::mt19937_64 rng(1);
    std::vector<uint64_t> block(1 << 17);  // 1 MiB
    for (uint64_t i = 0; i < mib; ++i) {
      for (uint64_t& v : block) v = rng();
      out.write(reinterpret_cast<const char*>(block.data()),
                static_cast<std::streamsize>(block.size() * 8));
    }
  }
  hangar::testing::FakeHub hub;
  hub.add_repo("bench/model", {{"model-Q4_K_M.gguf", "", src, true}});
  if (!hub.start().ok()) return 1;
  const std::string url =
      hub.endpoint() + "bench/model/resolve/" + hub.commit_of("bench/model") + "/model-Q4_K_M.gguf";
  setenv("HOME", dir.c_str(), 1);
  unsetenv("HF_TOKEN");

  double best_curl = 1e9, best_hangar = 1e9;
  for (int i = 0; i < runs; ++i) {
    const std::string out = (dir / "curl.out").string();
    const std::string cmd = "curl -sS --fail -o '" + out + "' '" + url + "'";
    auto t = Clock::now();
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "curl failed\n");
      return 1;
    }
    best_curl = std::min(best_curl, seconds_since(t));
    fs::remove(out);

    hangar::download::Options o;
    o.cache_dir = (dir / "cache").string();
    o.endpoint = hub.endpoint();
    t = Clock::now();
    auto m = hangar::download::ensure_downloaded("bench/model", o);
    if (!m.ok()) {
      std::fprintf(stderr, "hangar: %s\n", m.status().message().c_str());
      return 1;
    }
    best_hangar = std::min(best_hangar, seconds_since(t));
    fs::remove_all(dir / "cache");
  }

  // SHA-256 alone, over 1 GiB from memory.
  std::vector<char> buf(64 << 20, 'x');
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  auto t = Clock::now();
  for (int i = 0; i < 16; ++i) EVP_DigestUpdate(ctx, buf.data(), buf.size());
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, d, &n);
  const double sha_s = seconds_since(t);
  EVP_MD_CTX_free(ctx);

  const double gib = static_cast<double>(size) / (1ull << 30);
  std::printf("file: %llu MiB from the fake hub on 127.0.0.1, best of %d\n",
              static_cast<unsigned long long>(mib), runs);
  std::printf("curl:   %.3f s  %.0f MiB/s\n", best_curl, mib / best_curl);
  std::printf("hangar: %.3f s  %.0f MiB/s  (verify + rename included)\n", best_hangar,
              mib / best_hangar);
  std::printf("ratio hangar/curl throughput: %.2fx (goal >= 0.90x)\n", best_curl / best_hangar);
  std::printf("sha256: %.3f s per GiB (%.0f MiB/s); %.1f%% of hangar's time for this file\n", sha_s,
              1024 / sha_s, 100.0 * sha_s * gib / best_hangar);
  fs::remove_all(dir);
  return 0;
}
