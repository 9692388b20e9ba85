// Writes the fuzzer's seed corpus into a folder: small GGUF files made by our own writer that
// reach every value type, nested arrays, every tensor type, a custom alignment and tiny models of
// each architecture. (The first KB of each fixture file are added by scripts/fuzz.)
#include <cstdio>
#include <string>

#include "gguf/gguf_writer.h"
#include "gguf/model_maker.h"

namespace {

using hangar::gguf::GgmlType;
using hangar::gguf::GgufWriter;
using hangar::gguf::Value;
using hangar::gguf::ValueType;

bool write(const GgufWriter& w, const std::string& path) {
  if (hangar::Status s = w.write(path); !s.ok()) {
    std::fprintf(stderr, "gguf_fuzz_seeds: %s\n", s.message().c_str());
    return false;
  }
  return true;
}

void all_values(GgufWriter* w) {
  w->set("general.architecture", Value::str("llama"));
  w->set("u8", Value::u8(1));
  w->set("i8", Value::i8(-1));
  w->set("u16", Value::u16(2));
  w->set("i16", Value::i16(-2));
  w->set("u32", Value::u32(3));
  w->set("i32", Value::i32(-3));
  w->set("f32", Value::f32(0.5f));
  w->set("bool", Value::boolean(true));
  w->set("str", Value::str("hello"));
  w->set("u64", Value::u64(4));
  w->set("i64", Value::i64(-4));
  w->set("f64", Value::f64(0.25));
  w->set("arr", Value::array(ValueType::kString, {Value::str("a"), Value::str("bc")}));
  w->set("nested", Value::array(ValueType::kArray,
                                {Value::array(ValueType::kInt16, {Value::i16(7)}),
                                 Value::array(ValueType::kInt16, {})}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gguf_fuzz_seeds OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;
  {
    GgufWriter w;
    all_values(&w);
    ok &= write(w, dir + "/values.gguf");
  }
  {
    GgufWriter w;
    all_values(&w);
    for (uint32_t id = 0; id < 64; ++id) {
      auto t = hangar::gguf::type_traits(id);
      if (!t) continue;
      std::vector<uint8_t> data(*hangar::gguf::row_bytes(t->type, t->block_size), 0x5A);
      ok &= w.add_tensor("t." + std::string(t->name), t->type, {t->block_size}, data).ok();
    }
    ok &= write(w, dir + "/every-type.gguf");
  }
  {
    GgufWriter w;
    w.set("general.alignment", Value::u32(64));
    ok &= w.add_tensor("a", GgmlType::kF32, {2, 3, 1, 2}, std::vector<uint8_t>(48, 1)).ok();
    ok &= w.add_tensor("b", GgmlType::kQ8_0, {32}, std::vector<uint8_t>(34, 2)).ok();
    ok &= write(w, dir + "/aligned-64.gguf");
  }
  for (const char* arch : {"llama", "qwen2", "qwen3"}) {
    hangar::gguf::ModelSpec spec;
    spec.arch = arch;
    spec.n_embd = 32;
    spec.n_head = 2;
    spec.n_head_kv = 1;
    spec.n_ff = 32;
    spec.n_layer = 1;
    spec.n_vocab = 259;
    spec.type = GgmlType::kQ4_0;
    spec.tie_embeddings = true;
    spec.threads = 1;
    if (hangar::Status s = hangar::gguf::write_model(spec, dir + "/tiny-" + arch + ".gguf"); !s.ok()) {
      std::fprintf(stderr, "gguf_fuzz_seeds: %s\n", s.message().c_str());
      ok = false;
    }
  }
  return ok ? 0 : 1;
}
