#pragma once
// The fault tests' view of processes: which live ones mention a path on their command line
// (workers started for a model file), and a hang-detector wait until none does.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace hangar::testing {

// The pids of live (not zombie) processes whose command line contains `needle`.
inline std::vector<pid_t> live_pids_mentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(needle) == std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string st;
    std::getline(stat, st);
    const size_t paren = st.rfind(')');
    if (paren != std::string::npos && paren + 2 < st.size() && st[paren + 2] == 'Z') continue;
    out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

// Waits (a hang detector, not a speed limit) until no live process mentions `needle`.
inline bool no_process_mentions(const std::string& needle,
                                std::chrono::seconds hang_detector = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + hang_detector;
  while (!live_pids_mentioning(needle).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return live_pids_mentioning(needle).empty();
}

}  // namespace hangar::testing
