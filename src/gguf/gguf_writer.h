#pragma once
// GGUF writer (version 3): metadata of every type, tensors of any type whose bytes the caller
// provides (see quantize.h to produce F16/BF16/Q8_0/Q4_0/... data). Tensors are laid out in the
// order added, each at an offset aligned to `general.alignment` (default 32), exactly as
// llama.cpp's gguf writers do, so reading a file and writing it back gives the same bytes.
// Not thread-safe; one writer per file.

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "gguf/gguf.h"

namespace hangar::gguf {

class GgufWriter {
 public:
  GgufWriter() = default;

  // Sets a key; a key set twice keeps its first position and takes the new value.
  void set(std::string key, Value value);

  // Adds a tensor; `data` must hold exactly row_bytes(type, shape[0]) * rows bytes.
  Status add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape,
                    std::vector<uint8_t> data);

  // Writes the whole file to `path` (via `path.partial` then rename, so a reader never sees a
  // half-written file).
  Status write(const std::string& path) const;
  // The whole file image in memory.
  StatusOr<std::vector<uint8_t>> to_bytes() const;

 private:
  std::vector<std::pair<std::string, Value>> metadata_;
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  std::vector<PendingTensor> tensors_;
};

}  // namespace hangar::gguf
