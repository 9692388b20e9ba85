// hangar-fake-hub: the fake hub as a program, for trying `hangar pull` or llama.cpp by hand and
// for the benchmark's curl baseline. Serves every *.gguf of a folder as repository test/models
// (and each file also as test/<stem> at the root), prints the endpoint, runs until SIGINT/SIGTERM.
//   hangar-fake-hub FOLDER
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "fake_hub.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hangar-fake-hub FOLDER\n");
    return 2;
  }
  std::vector<hangar::testing::HubFile> files;
  for (const auto& e : std::filesystem::directory_iterator(argv[1])) {
    if (e.path().extension() == ".gguf") {
      files.push_back({e.path().filename().string(), "", e.path().string(), true});
    }
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  hangar::testing::FakeHub hub;
  hub.add_repo("test/models", files);
  if (hangar::Status s = hub.start(); !s.ok()) {
    std::fprintf(stderr, "hangar-fake-hub: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("%s\n", hub.endpoint().c_str());
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
