// libFuzzer target for the GGUF reader and the model loader: any byte string must parse or fail
// with a Status, never crash, hang or read outside the input. A successful parse is then walked
// completely (every value, every tensor's first and last byte) so a wrong bound shows up as an
// ASan report; then the memory plan (src/estimate: the shape reader, every product of the
// layout) and the engine's loader (hyper-parameters, every tensor's shape and size checked
// against the file) run on it, as `hangar estimate` and a worker's load would — without
// inference, and without building the tokenizer (the loader's shape checks are the target).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/model.h"
#include "estimate/memory_plan.h"
#include "gguf/gguf.h"

namespace {

volatile uint64_t g_sink = 0;  // keeps the walk from being optimized away

void walk(const hangar::gguf::Value& v) {
  if (const hangar::gguf::Array* a = v.as_array()) {
    for (const hangar::gguf::Value& item : a->items) walk(item);
    return;
  }
  if (const std::string* s = v.as_string()) g_sink = g_sink + s->size();
  if (auto i = v.as_int()) g_sink = g_sink + static_cast<uint64_t>(*i);
  if (auto f = v.as_float()) g_sink = g_sink + (*f > 0 ? 1 : 0);
}

// The memory plan for a few worker shapes; a plan that succeeds must hold together.
void plan(const hangar::gguf::GgufFile& f) {
  for (const auto& [ctx, np] : {std::pair{0, 1}, std::pair{256, 4}, std::pair{4096, 1}}) {
    auto p = hangar::estimate::plan_memory(f, ctx, np);
    if (!p.ok()) continue;
    if (p->total() < p->devices[0].weights) __builtin_trap();  // a sum that wrapped
    g_sink = g_sink + p->total();
  }
}

// The engine's loader opens a path: hand it the same bytes through a memory file.
void load_model(const uint8_t* data, size_t size) {
  const int fd = memfd_create("gguf-fuzz", MFD_CLOEXEC);
  if (fd < 0) return;
  size_t written = 0;
  while (written < size) {
    const ssize_t n = write(fd, data + written, size - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  if (written == size) {
    hangar::engine::LoadOptions options;
    options.load_tokenizer = false;
    auto m = hangar::engine::Model::load("/proc/self/fd/" + std::to_string(fd), options);
    if (m.ok()) g_sink = g_sink + static_cast<uint64_t>((*m)->hparams().n_layer);
  }
  close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = hangar::gguf::GgufFile::parse(data, size, "fuzz");
  if (!f.ok()) return 0;
  for (const auto& [key, value] : (*f)->metadata()) {
    g_sink = g_sink + key.size();
    walk(value);
  }
  for (const hangar::gguf::TensorInfo& t : (*f)->tensors()) {
    if (t.bytes > 0) g_sink = g_sink + t.data[0] + t.data[t.bytes - 1];
    g_sink = g_sink + static_cast<uint64_t>(t.n_elements());
  }
  // The loader only runs on what the shape reader accepts (it reads the same keys first).
  if (!hangar::estimate::read_model_shape(**f).ok()) return 0;
  plan(**f);
  load_model(data, size);
  return 0;
}
