// SpinPool: every share of every region runs exactly once, whichever thread claims it, and
// run() returns only when all of them are done.
#include "engine/spin_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace hangar::engine {
namespace {

TEST(SpinPoolTest, EveryShareRunsExactlyOncePerRegionAndIsDoneWhenRunReturns) {
  for (int threads : {1, 2, 3, 4}) {
    SpinPool pool(threads);
    ASSERT_EQ(pool.size(), threads);
    std::vector<std::atomic<int>> runs(threads);
    for (int region = 1; region <= 20000; ++region) {
      pool.run([&](int ith, int nth) {
        ASSERT_EQ(nth, threads);
        ASSERT_GE(ith, 0);
        ASSERT_LT(ith, nth);
        runs[ith].fetch_add(1, std::memory_order_relaxed);
      });
      for (int i = 0; i < threads; ++i)
        ASSERT_EQ(runs[i].load(), region) << "threads " << threads << " share " << i;
    }
  }
}

TEST(SpinPoolTest, ParallelForCoversTheRangeOnceInContiguousChunks) {
  SpinPool pool(3);
  for (int64_t n : {1, 2, 3, 7, 100, 1001}) {
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](int64_t begin, int64_t end) {
      ASSERT_LT(begin, end);
      for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n " << n << " index " << i;
  }
}

}  // namespace
}  // namespace hangar::engine
