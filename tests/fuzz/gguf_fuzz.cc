// libFuzzer target for the GGUF reader: any byte string must parse or fail with a Status, never
// crash, hang or read outside the input. A successful parse is then walked completely (every
// value, every tensor's first and last byte) so a wrong bound shows up as an ASan report.
#include <cstddef>
#include <cstdint>

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
  return 0;
}
