#include "engine/cpu_features.h"

#include <cstdlib>
#include <cstring>

#include "engine/gemm.h"

namespace hangar::engine {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // Every AVX2 CPU has F16C; checked anyway since the AVX2 kernels use it.
  unsigned eax, ebx, ecx, edx;
  __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
  f.avx2 = f.avx2 && (ecx & (1u << 29)) != 0;
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
  const char* cap = std::getenv("HANGAR_ENGINE_ISA");
  if (cap && std::strcmp(cap, "scalar") == 0) f = CpuFeatures{};
  if (cap && std::strcmp(cap, "avx2") == 0) f.avx512 = false;
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

Isa best_isa() {
  const CpuFeatures& f = cpu_features();
  return f.avx512 ? Isa::kAvx512 : f.avx2 ? Isa::kAvx2 : Isa::kScalar;
}

const char* cpu_isa_name() {
  const CpuFeatures& f = cpu_features();
  return f.avx512 ? "avx512-vnni" : f.avx2 ? "avx2" : "scalar";
}

}  // namespace hangar::engine
