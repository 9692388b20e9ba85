// The cache as llama.cpp leaves it: roots by precedence, listing, lookup, removal. The trees are
// built here by hf-cache.md's rules, with no download involved.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "download/download.h"
#include "hub_env.h"

namespace hangar::download {
namespace {

namespace fs = std::filesystem;

class CacheTest : public HubEnv {
 protected:
  // Writes a blob and links snapshots/<commit>/<path> to it (relative), refs/main = commit.
  void put(const std::string& root, const std::string& repo, const std::string& path,
           const std::string& content, const std::string& commit = std::string(40, 'a'),
           bool write_blob = true) {
    std::string dir = root + "/models--" + repo.substr(0, repo.find('/')) + "--" +
                      repo.substr(repo.find('/') + 1);
    std::string oid = hangar::testing::sha256_hex(content);
    fs::create_directories(dir + "/blobs");
    fs::create_directories(dir + "/refs");
    if (write_blob) std::ofstream(dir + "/blobs/" + oid, std::ios::binary) << content;
    std::ofstream(dir + "/refs/main") << commit;
    fs::path link = dir + "/snapshots/" + commit + "/" + path;
    fs::create_directories(link.parent_path());
    std::string target = "../../";
    for (char c : path) {
      if (c == '/') target += "../";
    }
    fs::create_symlink(target + "blobs/" + oid, link);
  }
};

TEST_F(CacheTest, RootFollowsLlamaCppPrecedence) {
  EXPECT_EQ(cache_roots(opts_)[0], cache_);
  unsetenv("LLAMA_CACHE");
  setenv("HF_HUB_CACHE", "/x/hub", 1);
  setenv("HF_HOME", "/y", 1);
  EXPECT_EQ(cache_roots(opts_)[0], "/x/hub");
  unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(cache_roots(opts_)[0], "/y/hub");
  unsetenv("HF_HOME");
  setenv("XDG_CACHE_HOME", "/z", 1);
  EXPECT_EQ(cache_roots(opts_)[0], "/z/huggingface/hub");
  unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(cache_roots(opts_)[0], tmp_ + "/home/.cache/huggingface/hub");
  Options o = opts_;
  o.cache_dir = "/explicit";
  EXPECT_EQ(cache_roots(o)[0], "/explicit");
}

TEST_F(CacheTest, ListsACacheLaidOutAsLlamaCppLeavesIt) {
  put(cache_, "org/Tiny-GGUF", "tiny-Q4_K_M.gguf", "q4");
  put(cache_, "org/Tiny-GGUF", "tiny-Q8_0.gguf", "q8");
  put(cache_, "org/Tiny-GGUF", "mmproj-tiny-F16.gguf", "mm");
  put(cache_, "org/Big", "Q4/big-Q4_K_M-00001-of-00002.gguf", "s1");
  put(cache_, "org/Big", "Q4/big-Q4_K_M-00002-of-00002.gguf", "s2");
  std::vector<CachedModel> list = list_cache(opts_);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].id, "org/Big:Q4_K_M");
  EXPECT_EQ(list[0].model.files.size(), 2u);
  EXPECT_EQ(list[1].id, "org/Tiny-GGUF:Q4_K_M");
  EXPECT_EQ(read(list[1].model.path), "q4");
  EXPECT_EQ(read(list[1].model.mmproj), "mm");
  EXPECT_TRUE(list[1].writable);
  EXPECT_EQ(list[2].id, "org/Tiny-GGUF:Q8_0");
}

TEST_F(CacheTest, DanglingLinksAndMissingShardsAreNotCached) {
  put(cache_, "org/A", "a-Q4_K_M.gguf", "x", std::string(40, 'a'), /*write_blob=*/false);
  put(cache_, "org/B", "b-Q8_0-00001-of-00002.gguf", "s1");
  EXPECT_TRUE(list_cache(opts_).empty());
  auto found = find_cached("org/A:Q4_K_M", opts_);
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
  Options off = opts_;
  off.offline = true;
  auto r = ensure_downloaded("org/A:Q4_K_M", off);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("a-Q4_K_M.gguf"), std::string::npos) << r.status().message();
}

TEST_F(CacheTest, OtherExistingRootsAreListedReadOnly) {
  const std::string user = tmp_ + "/home/.cache/huggingface/hub";
  put(user, "org/Old", "old-Q4_K_M.gguf", "old");
  put(cache_, "org/New", "new-Q8_0.gguf", "new");
  std::vector<CachedModel> list = list_cache(opts_);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, "org/New:Q8_0");
  EXPECT_TRUE(list[0].writable);
  EXPECT_EQ(list[1].id, "org/Old:Q4_K_M");
  EXPECT_FALSE(list[1].writable);
  // Removal works on the writable root only.
  EXPECT_EQ(remove_cached("org/Old:Q4_K_M", opts_).code(), StatusCode::kNotFound);
  EXPECT_TRUE(fs::exists(list[1].model.path));
  auto found = find_cached("org/Old", opts_);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(read((*found)->path), "old");
}

TEST_F(CacheTest, RemoveDeletesLinksThenOnlyUnreferencedBlobs) {
  put(cache_, "org/T", "t-Q4_K_M.gguf", "q4");
  put(cache_, "org/T", "t-Q8_0.gguf", "q8");
  put(cache_, "org/T", "mmproj-t-F16.gguf", "mm");  // shared by both tags
  const std::string blobs = repo_root("org/T") + "/blobs/";
  ASSERT_TRUE(remove_cached("org/T:Q4_K_M", opts_).ok());
  EXPECT_FALSE(fs::exists(blobs + hangar::testing::sha256_hex("q4")));
  EXPECT_TRUE(fs::exists(blobs + hangar::testing::sha256_hex("q8")));
  EXPECT_TRUE(fs::exists(blobs + hangar::testing::sha256_hex("mm")));
  std::vector<CachedModel> list = list_cache(opts_);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, "org/T:Q8_0");
  ASSERT_TRUE(remove_cached("org/T:Q8_0", opts_).ok());
  EXPECT_FALSE(fs::exists(repo_root("org/T")));
  EXPECT_EQ(remove_cached("org/T:Q8_0", opts_).code(), StatusCode::kNotFound);
}

TEST_F(CacheTest, AnyValidRefServesWhenMainIsAbsent) {
  put(cache_, "org/R", "r-Q4_K_M.gguf", "q4", std::string(40, 'b'));
  fs::rename(repo_root("org/R") + "/refs/main", repo_root("org/R") + "/refs/v1");
  auto found = find_cached("org/R", opts_);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->commit, std::string(40, 'b'));
}

}  // namespace
}  // namespace hangar::download
