#pragma once
// What a worker process holds in memory, measured (design §5): the resident set (VmRSS from
// /proc/self/status) and the proportional set (Pss from /proc/self/smaps_rollup: private pages
// plus this process's share of shared and file-mapped pages, so a mapped model file counts
// once across the workers that map it). And prefaulting a model's mapped weights, so the
// footprint measured after load is the one the worker will have while serving, not a fraction
// that grows as requests touch weights (llama.cpp maps with MAP_POPULATE for the same reason).
//
// Thread-safety: the readers are reentrant; touch_mapped_weights only reads the mapping.

#include <cstdint>

#include "gguf/gguf.h"

namespace hangar::worker {

struct ProcessMemory {
  uint64_t rss = 0;  // bytes, VmRSS
  uint64_t pss = 0;  // bytes, Pss (0 where smaps_rollup is unavailable)
};
ProcessMemory read_process_memory();

// Reads one byte of every page of every tensor's data (after MADV_WILLNEED, so the kernel
// reads ahead). Returns the bytes of tensor data covered.
uint64_t touch_mapped_weights(const gguf::GgufFile& file);

}  // namespace hangar::worker
