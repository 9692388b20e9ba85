#pragma once
// HubEnv: the set-up every download test shares — a temporary HOME and LLAMA_CACHE, the other
// cache and hub variables unset, a FakeHub on 127.0.0.1 named by HF_ENDPOINT, fast retries —
// and helpers to read the cache tree a download left.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "download/download.h"
#include "fake_hub.h"
#include "support/test_support.h"

namespace hangar::download {

class HubEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = hangar::testing::make_temp_dir("hangar-dl");
    for (const char* v : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME",
                          "HF_TOKEN", "MODEL_ENDPOINT", "LLAMA_OFFLINE", "HANGAR_CACHE_DIR"}) {
      unsetenv(v);
    }
    setenv("HOME", (tmp_ + "/home").c_str(), 1);
    cache_ = tmp_ + "/cache";
    setenv("LLAMA_CACHE", cache_.c_str(), 1);
    ASSERT_TRUE(hub_.start().ok());
    setenv("HF_ENDPOINT", hub_.endpoint().c_str(), 1);
    opts_.retry_delay = std::chrono::milliseconds(10);
    opts_.stall_timeout = std::chrono::milliseconds(1000);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }

  // Deterministic pseudo-random bytes.
  static std::string bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(rng());
    return out;
  }

  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  // The cache as "relative path" → "-> link target" | "file <sha256>" | "dir".
  std::map<std::string, std::string> tree(const std::string& root) const {
    namespace fs = std::filesystem;
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::string rel = it->path().lexically_relative(root).generic_string();
      if (it->is_symlink()) {
        out[rel] = "-> " + fs::read_symlink(it->path()).string();
      } else if (it->is_directory()) {
        out[rel] = "dir";
      } else {
        out[rel] = "file " + hangar::testing::sha256_hex(read(it->path().string()));
      }
    }
    return out;
  }

  std::string repo_root(const std::string& repo) const {
    std::string name = repo;
    name.replace(name.find('/'), 1, "--");
    return cache_ + "/models--" + name;
  }

  std::string tmp_;
  std::string cache_;
  hangar::testing::FakeHub hub_;
  Options opts_;
};

}  // namespace hangar::download
