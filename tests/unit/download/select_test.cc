// File choice and naming rules of hf-cache.md, as pure functions.
#include "download/select.h"

#include <gtest/gtest.h>

namespace hangar::download {
namespace {

std::vector<RemoteFile> files_of(std::vector<std::string> paths) {
  std::vector<RemoteFile> out;
  for (std::string& p : paths) out.push_back({std::move(p), 1, "oid", ""});
  return out;
}

std::vector<std::string> chosen(const std::vector<RemoteFile>& files, std::string_view tag) {
  auto sel = select_files(files, "o/r", tag);
  if (!sel.ok()) return {"error: " + sel.status().message()};
  std::vector<std::string> out;
  for (size_t i : sel->files) out.push_back(files[i].path);
  if (sel->mmproj) out.push_back("+" + files[*sel->mmproj].path);
  return out;
}

TEST(SelectTest, RepoIdsFollowTheHubRules) {
  EXPECT_TRUE(valid_repo_id("ggml-org/gemma-3-1b-it-GGUF"));
  EXPECT_TRUE(valid_repo_id("a/b.c_d"));
  EXPECT_FALSE(valid_repo_id("noslash"));
  EXPECT_FALSE(valid_repo_id("a/b/c"));
  EXPECT_FALSE(valid_repo_id("../x"));
  EXPECT_FALSE(valid_repo_id("a/.x"));
  EXPECT_FALSE(valid_repo_id("a/x-"));
  EXPECT_FALSE(valid_repo_id("a b/x"));
  EXPECT_FALSE(valid_repo_id("a/" + std::string(300, 'x')));
}

TEST(SelectTest, ParseSpecSplitsTagAndRefusesPathsAndEmptyTags) {
  auto s = parse_spec("owner/repo:Q4_K_M");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->repo, "owner/repo");
  EXPECT_EQ(s->tag, "Q4_K_M");
  EXPECT_EQ(parse_spec("owner/repo")->tag, "");
  EXPECT_FALSE(parse_spec("owner/../etc").ok());
  EXPECT_FALSE(parse_spec("owner/repo:").ok());
  EXPECT_FALSE(parse_spec("owner/repo:a/b").ok());
}

TEST(SelectTest, DefaultIsQ4KMThenQ8ZeroThenFirstModelFile) {
  EXPECT_EQ(chosen(files_of({"m-F16.gguf", "m-Q8_0.gguf", "m-Q4_K_M.gguf"}), ""),
            std::vector<std::string>{"m-Q4_K_M.gguf"});
  EXPECT_EQ(chosen(files_of({"m-F16.gguf", "m-Q8_0.gguf"}), ""),
            std::vector<std::string>{"m-Q8_0.gguf"});
  EXPECT_EQ(chosen(files_of({"README.md", "mmproj-F16.gguf", "m-F16.gguf", "m-BF16.gguf"}), ""),
            (std::vector<std::string>{"m-F16.gguf", "+mmproj-F16.gguf"}));
}

TEST(SelectTest, TagMatchesCaseInsensitivelyBeforeDotOrDash) {
  auto files = files_of({"m-Q4_K_S.gguf", "m-q4_k_m.gguf", "m-Q4_K.gguf"});
  EXPECT_EQ(chosen(files, "Q4_K_M"), std::vector<std::string>{"m-q4_k_m.gguf"});
  EXPECT_EQ(chosen(files, "q4_k"), std::vector<std::string>{"m-Q4_K.gguf"});
  EXPECT_NE(chosen(files, "Q2_K")[0].find("no .gguf model file matching tag 'Q2_K'"),
            std::string::npos);
}

TEST(SelectTest, SidecarsAreNeverTheModel) {
  auto files = files_of(
      {"imatrix-Q4_K_M.gguf", "mtp-m-Q4_K_M.gguf", "eagle3-m-Q4_K_M.gguf", "m-Q4_K_M.gguf"});
  EXPECT_EQ(chosen(files, "Q4_K_M"), std::vector<std::string>{"m-Q4_K_M.gguf"});
}

TEST(SelectTest, SplitModelTakesEveryShardInOrder) {
  auto files = files_of({"Q4/m-Q4_K_M-00002-of-00003.gguf", "Q4/m-Q4_K_M-00001-of-00003.gguf",
                         "Q4/m-Q4_K_M-00003-of-00003.gguf", "m-Q8_0.gguf"});
  EXPECT_EQ(chosen(files, "Q4_K_M"), (std::vector<std::string>{"Q4/m-Q4_K_M-00001-of-00003.gguf",
                                                               "Q4/m-Q4_K_M-00002-of-00003.gguf",
                                                               "Q4/m-Q4_K_M-00003-of-00003.gguf"}));
  auto missing = files_of({"m-Q4_K_M-00001-of-00002.gguf"});
  EXPECT_NE(chosen(missing, "")[0].find("lacks shard 'm-Q4_K_M-00002-of-00002.gguf'"),
            std::string::npos);
}

TEST(SelectTest, MmprojPrefersDeepestFolderThenExactTagThenNearestWidth) {
  auto files = files_of({"mmproj-F32.gguf", "sub/mmproj-F16.gguf", "sub/mmproj-Q8_0.gguf",
                         "sub/m-Q4_K_M.gguf", "other/mmproj-Q4_K_M.gguf"});
  // other/ is not an ancestor; sub/ is deeper than the root; Q8_0 is nearer 4 bits than F16.
  EXPECT_EQ(chosen(files, ""),
            (std::vector<std::string>{"sub/m-Q4_K_M.gguf", "+sub/mmproj-Q8_0.gguf"}));
  auto exact = files_of({"mmproj-m-Q8_0.gguf", "mmproj-m-F16.gguf", "m-F16.gguf"});
  EXPECT_EQ(chosen(exact, "F16"), (std::vector<std::string>{"m-F16.gguf", "+mmproj-m-F16.gguf"}));
}

TEST(SelectTest, TagOfAFileNameIsItsLastWordUpperCased) {
  EXPECT_EQ(tag_of("Qwen3-0.6B-Q8_0.gguf"), "Q8_0");
  EXPECT_EQ(tag_of("dir/gemma-3-1b-it-q4_k_m.gguf"), "Q4_K_M");
  EXPECT_EQ(tag_of("m-Q4_K_M-00001-of-00003.gguf"), "Q4_K_M");
  EXPECT_EQ(tag_of("model.f16.gguf"), "F16");
  EXPECT_EQ(tag_of("model.gguf"), "");
}

}  // namespace
}  // namespace hangar::download
