// Runs the fuzz target over files (or every file in folders) without libFuzzer: with gcc this
// replays the seed corpus as a regression test; with the fuzz build it reproduces a crash file.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool run_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "gguf_fuzz_replay: cannot open %s\n", path.c_str());
    return false;
  }
  std::vector<uint8_t> bytes;
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  std::fclose(f);
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  // Every prefix of the first 4 KB too, so truncation paths run in this replay as well.
  for (size_t cut = 0; cut < bytes.size() && cut < 4096; cut += 13) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + cut);
    LLVMFuzzerTestOneInput(prefix.data(), prefix.size());
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      std::fprintf(stderr, "gguf_fuzz_replay: %s does not exist\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (!run_file(argv[i])) return 1;
      ++files;
      continue;
    }
    DIR* d = opendir(argv[i]);
    while (dirent* e = d ? readdir(d) : nullptr) {
      if (e->d_name[0] == '.') continue;
      if (!run_file(std::string(argv[i]) + "/" + e->d_name)) return 1;
      ++files;
    }
    if (d) closedir(d);
  }
  std::printf("gguf_fuzz_replay: %d files ran cleanly\n", files);
  return files > 0 ? 0 : 1;
}
