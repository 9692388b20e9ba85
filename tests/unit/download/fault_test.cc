// Every fault of the fake hub ends in the right file or a clear error, and the cache never holds
// a blob whose SHA-256 is wrong.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "download/download.h"
#include "hub_env.h"

namespace hangar::download {
namespace {

namespace fs = std::filesystem;
using hangar::testing::Fault;
using hangar::testing::FaultKind;

constexpr char kRepo[] = "org/F";
constexpr char kFile[] = "f-Q4_K_M.gguf";

class FaultTest : public HubEnv {
 protected:
  void SetUp() override {
    HubEnv::SetUp();
    data_ = bytes(400'000, 7);
    sha_ = hangar::testing::sha256_hex(data_);
    hub_.add_repo(kRepo, {{kFile, data_, "", true}});
  }
  std::string blob() const { return repo_root(kRepo) + "/blobs/" + sha_; }
  std::string partial() const { return blob() + ".downloadInProgress"; }

  // The download succeeds with the right bytes, and every blob in the cache hashes to its name.
  void expect_right_file() {
    auto m = ensure_downloaded(kRepo, opts_);
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(read(m->path), data_);
    expect_blobs_verified();
  }
  void expect_blobs_verified() {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(repo_root(kRepo) + "/blobs", ec)) {
      EXPECT_EQ(hangar::testing::sha256_hex(read(e.path().string())), e.path().filename().string());
    }
  }
  std::vector<std::string> ranges() const {
    std::vector<std::string> out;
    for (const auto& s : hub_.seen(std::string("/") + kFile)) out.push_back(s.range);
    return out;
  }

  std::string data_, sha_;
};

TEST_F(FaultTest, DroppedConnectionResumesFromThePartialFile) {
  hub_.fault_file(kFile, {FaultKind::kDrop, 1, 0, 100'000});
  expect_right_file();
  EXPECT_EQ(ranges(), (std::vector<std::string>{"", "bytes=100000-"}));
}

TEST_F(FaultTest, AnInterruptedDownloadResumesFromItsPartialFile) {
  fs::create_directories(repo_root(kRepo) + "/blobs");
  std::ofstream(partial(), std::ios::binary) << data_.substr(0, 123'456);
  expect_right_file();
  EXPECT_EQ(ranges(), std::vector<std::string>{"bytes=123456-"});
  EXPECT_FALSE(fs::exists(partial()));
}

TEST_F(FaultTest, RangeIgnoredRestartsFromByteZero) {
  hub_.fault_file(kFile, {FaultKind::kDrop, 1, 0, 100'000});
  hub_.fault_file(kFile, {FaultKind::kIgnoreRange, 1});
  std::vector<uint64_t> done;
  auto m = ensure_downloaded(kRepo, opts_, [&](const Progress& p) { done.push_back(p.done); });
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(read(m->path), data_);
  for (size_t i = 1; i < done.size(); ++i) EXPECT_GE(done[i], done[i - 1]);  // never backwards
}

TEST_F(FaultTest, ServerErrorsAndRateLimitsAreRetried) {
  hub_.fault_file(kFile, {FaultKind::kStatus, 1, 500});
  hub_.fault_file(kFile, {FaultKind::kStatus, 1, 429});
  expect_right_file();
  EXPECT_EQ(ranges().size(), 3u);
}

TEST_F(FaultTest, PersistentServerErrorsFailClearlyAfterTheAttempts) {
  hub_.fault_file(kFile, {FaultKind::kStatus, -1, 503});
  auto m = ensure_downloaded(kRepo, opts_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(m.status().message().find("answered 503"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("after 3 attempts"), std::string::npos);
  EXPECT_NE(m.status().message().find(kFile), std::string::npos);
  EXPECT_FALSE(fs::exists(blob()));
}

TEST_F(FaultTest, WrongBytesNeverEnterTheCache) {
  hub_.fault_file(kFile, {FaultKind::kCorrupt, -1, 0, 200'000});
  auto m = ensure_downloaded(kRepo, opts_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(m.status().message().find(sha_), std::string::npos) << m.status().message();
  std::string bad = data_;
  bad[200'000] ^= 0x5a;
  EXPECT_NE(m.status().message().find(hangar::testing::sha256_hex(bad)), std::string::npos);
  EXPECT_FALSE(fs::exists(blob()));
  EXPECT_FALSE(fs::exists(partial()));
  EXPECT_TRUE(list_cache(opts_).empty());
}

TEST_F(FaultTest, AWrongPartialFileIsDiscardedAndDownloadedAgain) {
  fs::create_directories(repo_root(kRepo) + "/blobs");
  std::string bad = data_.substr(0, 50'000);
  bad[10] ^= 1;
  std::ofstream(partial(), std::ios::binary) << bad;
  expect_right_file();
  EXPECT_EQ(ranges(), (std::vector<std::string>{"bytes=50000-", ""}));
}

TEST_F(FaultTest, SlowTrickleCompletes) {
  hub_.fault_file(kFile, {FaultKind::kTrickle, 1, 0, 0, 50'000, std::chrono::milliseconds(5)});
  expect_right_file();
}

TEST_F(FaultTest, AStalledTransferIsRetriedFromItsPartialFile) {
  hub_.fault_file(kFile, {FaultKind::kStall, 1, 0, 150'000});
  expect_right_file();
  EXPECT_EQ(ranges(), (std::vector<std::string>{"", "bytes=150000-"}));
}

TEST_F(FaultTest, RedirectsAreFollowed) {
  hub_.fault_file(kFile, {FaultKind::kRedirect, 1});
  expect_right_file();
}

TEST_F(FaultTest, CancellingRemovesThePartialFile) {
  hub_.fault_file(kFile, {FaultKind::kTrickle, 1, 0, 0, 1000, std::chrono::milliseconds(20)});
  CancelToken cancel;
  auto m = ensure_downloaded(
      kRepo, opts_,
      [&](const Progress& p) {
        if (p.done > 0) cancel.cancel();
      },
      cancel);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kCancelled);
  EXPECT_FALSE(fs::exists(partial()));
  EXPECT_FALSE(fs::exists(blob()));
  // A later call starts afresh and completes.
  expect_right_file();
}

}  // namespace
}  // namespace hangar::download
