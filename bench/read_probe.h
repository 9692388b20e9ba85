#pragma once
// This machine's read bandwidth, for the benchmarks' rooflines (engine_bench, kernel_bench).
// Header-only; benchmarks only.

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/cpu_features.h"

namespace hangar::bench {

// One thread's pass over [p, p + n): 256-bit loads, optionally with software prefetches 1 KiB
// ahead.
template <bool kPrefetch>
__attribute__((target("avx2"))) inline uint64_t read_avx2(const uint8_t* p, size_t n) {
  __m256i acc = _mm256_setzero_si256();
  for (size_t i = 0; i + 128 <= n; i += 128) {
    if constexpr (kPrefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(p + i + 1024), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + 1024 + 64), _MM_HINT_T0);
    }
    const __m256i* v = reinterpret_cast<const __m256i*>(p + i);
    acc = _mm256_add_epi64(acc, _mm256_xor_si256(_mm256_load_si256(v), _mm256_load_si256(v + 1)));
    acc = _mm256_add_epi64(acc, _mm256_xor_si256(_mm256_load_si256(v + 2), _mm256_load_si256(v + 3)));
  }
  alignas(32) uint64_t out[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), acc);
  return out[0] + out[1] + out[2] + out[3];
}

inline uint64_t read_scalar(const uint8_t* p, size_t n) {
  uint64_t acc = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    acc += v;
  }
  return acc;
}

// This machine's read bandwidth with `threads` threads, in GB/s (1e9 bytes): each thread reads
// its own contiguous part of a buffer (1 GiB unless told; made once), in two ways: plain loads, and the same
// with software prefetches (which some machines serve faster). The best pass of either way is
// the figure, so the roofline is never understated. The bandwidth of a shared machine drifts
// by tens of percent within minutes, so it is measured right before and after every run.
class ReadProbe {
 public:
  explicit ReadProbe(int threads, size_t bytes = size_t{1} << 30)
      : threads_(threads), bytes_(bytes / 128 * 128), buf_(static_cast<uint8_t*>(std::aligned_alloc(64, bytes_))) {
    if (buf_) std::memset(buf_, 1, bytes_);
  }
  ~ReadProbe() { std::free(buf_); }
  ReadProbe(const ReadProbe&) = delete;
  ReadProbe& operator=(const ReadProbe&) = delete;

  double measure() {
    if (!buf_) return 0.0;
    const bool avx2 = engine::cpu_features().avx2;
    plain_ = prefetched_ = 0.0;
    for (int pass = 0; pass < 3; ++pass) {
      plain_ = std::max(plain_, pass_gbs(avx2 ? read_avx2<false> : read_scalar));
      if (avx2) prefetched_ = std::max(prefetched_, pass_gbs(read_avx2<true>));
    }
    return std::max(plain_, prefetched_);
  }
  double plain() const { return plain_; }            // of the last measure()
  double prefetched() const { return prefetched_; }  // 0 without AVX2

 private:
  using Clock = std::chrono::steady_clock;
  double pass_gbs(uint64_t (*read)(const uint8_t*, size_t)) {
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int i = 0; i < threads_; ++i) {
      ts.emplace_back([&, i] {
        const size_t per = bytes_ / threads_ / 128 * 128;
        sink_ += read(buf_ + per * i, per);
      });
    }
    for (auto& t : ts) t.join();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return static_cast<double>(bytes_ / threads_ / 128 * 128 * threads_) / s / 1e9;
  }
  const int threads_;
  const size_t bytes_;
  uint8_t* buf_;
  std::atomic<uint64_t> sink_{0};
  double plain_ = 0.0, prefetched_ = 0.0;
};

}  // namespace hangar::bench
