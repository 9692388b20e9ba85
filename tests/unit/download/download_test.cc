// ensure_downloaded against the fake hub: the layout it writes, reuse, offline, fallbacks, disk
// space, tokens, model-url.
#include "download/download.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "hub_env.h"

namespace hangar::download {
namespace {

namespace fs = std::filesystem;
using hangar::testing::HubFile;

class DownloadTest : public HubEnv {
 protected:
  void SetUp() override {
    HubEnv::SetUp();
    q4_ = bytes(300'000, 1);
    q8_ = bytes(200'000, 2);
    mm_ = bytes(50'000, 3);
    hub_.add_repo("org/Tiny-GGUF", {{"README.md", "# tiny\n", "", false},
                                    {"sub/tiny-Q8_0.gguf", q8_, "", true},
                                    {"sub/tiny-Q4_K_M.gguf", q4_, "", true},
                                    {"mmproj-tiny-F16.gguf", mm_, "", true}});
  }
  std::string q4_, q8_, mm_;
};

TEST_F(DownloadTest, WritesExactlyTheLayoutOfHfCacheMd) {
  auto m = ensure_downloaded("org/Tiny-GGUF", opts_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const std::string commit = hub_.commit_of("org/Tiny-GGUF");
  const std::string sq4 = hangar::testing::sha256_hex(q4_);
  const std::string smm = hangar::testing::sha256_hex(mm_);
  const std::string r = "models--org--Tiny-GGUF";
  // The tree the rules give: blobs by lfs.oid, relative links (one more ../ per folder), refs.
  std::map<std::string, std::string> expected = {
      {r, "dir"},
      {r + "/blobs", "dir"},
      {r + "/blobs/" + sq4, "file " + sq4},
      {r + "/blobs/" + smm, "file " + smm},
      {r + "/refs", "dir"},
      {r + "/refs/main", "file " + hangar::testing::sha256_hex(commit)},
      {r + "/snapshots", "dir"},
      {r + "/snapshots/" + commit, "dir"},
      {r + "/snapshots/" + commit + "/sub", "dir"},
      {r + "/snapshots/" + commit + "/sub/tiny-Q4_K_M.gguf", "-> ../../../blobs/" + sq4},
      {r + "/snapshots/" + commit + "/mmproj-tiny-F16.gguf", "-> ../../blobs/" + smm},
  };
  EXPECT_EQ(tree(cache_), expected);
  EXPECT_EQ(m->id, "org/Tiny-GGUF:Q4_K_M");
  EXPECT_EQ(m->path, cache_ + "/" + r + "/snapshots/" + commit + "/sub/tiny-Q4_K_M.gguf");
  EXPECT_EQ(read(m->path), q4_);
  EXPECT_EQ(read(m->mmproj), mm_);
  EXPECT_EQ(m->bytes, q4_.size() + mm_.size());
  // What we wrote is what the listing finds.
  std::vector<CachedModel> list = list_cache(opts_);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, "org/Tiny-GGUF:Q4_K_M");
}

TEST_F(DownloadTest, NonLfsFilesAreVerifiedByTheirGitOid) {
  hub_.add_repo("org/Plain", {{"plain-Q8_0.gguf", q8_, "", false}});
  auto m = ensure_downloaded("org/Plain:Q8_0", opts_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(fs::read_symlink(m->path).filename().string(),
            hub_.git_oid_of("org/Plain", "plain-Q8_0.gguf"));
  EXPECT_EQ(read(m->path), q8_);
}

TEST_F(DownloadTest, ACachedModelIsNotDownloadedAgain) {
  ASSERT_TRUE(ensure_downloaded("org/Tiny-GGUF:Q8_0", opts_).ok());
  const size_t gets = hub_.seen("tiny-Q8_0.gguf").size();
  auto again = ensure_downloaded("org/Tiny-GGUF:q8_0", opts_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, "org/Tiny-GGUF:Q8_0");
  EXPECT_EQ(hub_.seen("tiny-Q8_0.gguf").size(), gets);
}

TEST_F(DownloadTest, SplitModelsDownloadEveryShard) {
  hub_.add_repo("org/Split", {{"s-Q4_K_M-00001-of-00002.gguf", q4_, "", true},
                              {"s-Q4_K_M-00002-of-00002.gguf", q8_, "", true}});
  auto m = ensure_downloaded("org/Split:Q4_K_M", opts_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->files.size(), 2u);
  EXPECT_EQ(read(m->files[0]), q4_);
  EXPECT_EQ(read(m->files[1]), q8_);
  EXPECT_EQ(list_cache(opts_).at(0).id, "org/Split:Q4_K_M");
}

TEST_F(DownloadTest, ProgressCoversEveryFileAndEndsAtTheTotal) {
  std::vector<Progress> seen;
  auto m = ensure_downloaded("org/Tiny-GGUF", opts_, [&](const Progress& p) { seen.push_back(p); });
  ASSERT_TRUE(m.ok());
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().total, q4_.size() + mm_.size());
  EXPECT_EQ(seen.back().done, seen.back().total);
  ASSERT_EQ(seen.back().files.size(), 2u);
  EXPECT_EQ(seen.back().files[0].path, "sub/tiny-Q4_K_M.gguf");
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i].done, seen[i - 1].done);
}

TEST_F(DownloadTest, OfflineNeverTouchesTheNetworkAndNamesWhatIsMissing) {
  Options off = opts_;
  off.offline = true;
  auto missing = ensure_downloaded("org/Tiny-GGUF", off);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("org/Tiny-GGUF is not in the cache"), std::string::npos)
      << missing.status().message();
  ASSERT_TRUE(ensure_downloaded("org/Tiny-GGUF", opts_).ok());
  const size_t before = hub_.seen("").size();
  setenv("LLAMA_OFFLINE", "1", 1);  // the environment's spelling
  auto cached = ensure_downloaded("org/Tiny-GGUF", opts_);
  unsetenv("LLAMA_OFFLINE");
  ASSERT_TRUE(cached.ok()) << cached.status().message();
  EXPECT_EQ(read(cached->path), q4_);
  EXPECT_EQ(hub_.seen("").size(), before);
}

TEST_F(DownloadTest, HubErrorsFallBackToTheCachedCopy) {
  ASSERT_TRUE(ensure_downloaded("org/Tiny-GGUF", opts_).ok());
  for (int status : {500, 429, 404}) {
    hub_.fault_api(status, -1);
    auto m = ensure_downloaded("org/Tiny-GGUF", opts_);
    ASSERT_TRUE(m.ok()) << status << ": " << m.status().message();
    EXPECT_EQ(read(m->path), q4_);
  }
  hub_.clear_faults();
  unsetenv("HF_ENDPOINT");
  Options unreachable = opts_;
  unreachable.endpoint = "http://127.0.0.1:1/";  // nothing listens there
  EXPECT_TRUE(ensure_downloaded("org/Tiny-GGUF", unreachable).ok());
}

TEST_F(DownloadTest, HubErrorsWithoutACachedCopyAreClear) {
  hub_.fault_api(500, -1);
  auto m = ensure_downloaded("org/Tiny-GGUF", opts_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(m.status().message().find("api/models/org/Tiny-GGUF/refs answered 500"),
            std::string::npos)
      << m.status().message();
  hub_.clear_faults();
  auto absent = ensure_downloaded("org/Nope", opts_);
  EXPECT_EQ(absent.status().code(), StatusCode::kNotFound);
  auto no_tag = ensure_downloaded("org/Tiny-GGUF:IQ1_S", opts_);
  EXPECT_EQ(no_tag.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_tag.status().message().find("Q4_K_M"), std::string::npos);
}

TEST_F(DownloadTest, TooLittleDiskSpaceFailsBeforeAnyByteIsWritten) {
  Options small = opts_;
  std::string asked;
  small.free_space = [&](const std::string& path) -> StatusOr<uint64_t> {
    asked = path;
    return uint64_t{1000};
  };
  auto m = ensure_downloaded("org/Tiny-GGUF", small);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kResourceExhausted);
  const std::string needed = std::to_string(q4_.size() + mm_.size());
  EXPECT_NE(m.status().message().find("needs " + needed + " bytes"), std::string::npos)
      << m.status().message();
  EXPECT_NE(m.status().message().find("only 1000 bytes"), std::string::npos);
  EXPECT_NE(m.status().message().find(asked), std::string::npos);
  EXPECT_FALSE(fs::exists(repo_root("org/Tiny-GGUF") + "/blobs"));
  EXPECT_TRUE(hub_.seen("tiny-Q4_K_M.gguf").empty());
}

TEST_F(DownloadTest, TokenGoesToTheHubAndNotToAnotherHost) {
  setenv("HF_TOKEN", "secret", 1);
  hub_.fault_file("sub/tiny-Q4_K_M.gguf", {hangar::testing::FaultKind::kRedirect});
  hub_.fault_file("mmproj-tiny-F16.gguf", {hangar::testing::FaultKind::kRedirectOtherHost});
  auto m = ensure_downloaded("org/Tiny-GGUF", opts_);
  unsetenv("HF_TOKEN");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(read(m->path), q4_);
  EXPECT_EQ(read(m->mmproj), mm_);
  for (const auto& s : hub_.seen("/refs")) EXPECT_EQ(s.auth, "Bearer secret");
  auto same = hub_.seen("/cdn/org/Tiny-GGUF/sub/tiny-Q4_K_M.gguf");
  ASSERT_EQ(same.size(), 1u);
  EXPECT_EQ(same[0].auth, "Bearer secret");
  auto other = hub_.seen("/cdn/org/Tiny-GGUF/mmproj-tiny-F16.gguf");
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].auth, "");
}

TEST_F(DownloadTest, RemoveAfterDownloadLeavesNothing) {
  ASSERT_TRUE(ensure_downloaded("org/Tiny-GGUF", opts_).ok());
  ASSERT_TRUE(remove_cached("org/Tiny-GGUF:Q4_K_M", opts_).ok());
  EXPECT_FALSE(fs::exists(repo_root("org/Tiny-GGUF")));
  EXPECT_TRUE(list_cache(opts_).empty());
}

TEST_F(DownloadTest, ModelUrlIsReusedWhileItsEtagHolds) {
  hub_.add_url_file("plain.gguf", q8_, "\"v1\"");
  const std::string url = hub_.endpoint() + "urls/plain.gguf";
  auto a = ensure_url(url, opts_);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(read(*a), q8_);
  const uint64_t sent = hub_.body_bytes_sent();
  auto b = ensure_url(url, opts_);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, *a);
  EXPECT_EQ(hub_.body_bytes_sent(), sent);  // 304: no body
  hub_.add_url_file("plain.gguf", q4_, "\"v2\"");
  auto c = ensure_url(url, opts_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(read(*c), q4_);
  Options off = opts_;
  off.offline = true;
  EXPECT_TRUE(ensure_url(url, off).ok());
  EXPECT_EQ(ensure_url(hub_.endpoint() + "urls/other.gguf", off).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace hangar::download
