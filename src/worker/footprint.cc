#include "worker/footprint.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace hangar::worker {
namespace {

// The value in kB of the line "key: N kB" of a /proc file, in bytes; 0 when absent.
uint64_t proc_kb_field(const char* path, const char* key) {
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return 0;
  char line[256];
  const size_t key_len = std::strlen(key);
  uint64_t bytes = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, key, key_len) != 0) continue;
    unsigned long long kb = 0;
    if (std::sscanf(line + key_len, " %llu", &kb) == 1) bytes = static_cast<uint64_t>(kb) * 1024;
    break;
  }
  std::fclose(f);
  return bytes;
}

}  // namespace

ProcessMemory read_process_memory() {
  ProcessMemory m;
  m.rss = proc_kb_field("/proc/self/status", "VmRSS:");
  m.pss = proc_kb_field("/proc/self/smaps_rollup", "Pss:");
  return m;
}

uint64_t touch_mapped_weights(const gguf::GgufFile& file) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uint64_t covered = 0;
  // A running sum the compiler cannot drop: each read really faults the page in.
  volatile uint8_t sink = 0;
  for (const gguf::TensorInfo& t : file.tensors()) {
    if (t.data == nullptr || t.bytes == 0) continue;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data);
    const uintptr_t aligned = begin & ~(page - 1);
    madvise(reinterpret_cast<void*>(aligned), t.bytes + (begin - aligned), MADV_WILLNEED);
    uint8_t acc = 0;
    for (uint64_t off = 0; off < t.bytes; off += page) acc ^= t.data[off];
    acc ^= t.data[t.bytes - 1];
    sink = sink ^ acc;
    covered += t.bytes;
  }
  (void)sink;
  return covered;
}

}  // namespace hangar::worker
