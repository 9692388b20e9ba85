#pragma once
// Which SIMD instruction sets the engine's kernels may use on this CPU, read once with cpuid
// (__builtin_cpu_supports). The engine is compiled for baseline x86-64 and picks its kernels at
// run time from these flags, so one binary runs on any x86-64 and uses AVX2 or AVX-512/VNNI
// where the CPU has them.
//
// HANGAR_ENGINE_ISA (environment, read once) caps the choice for tests and benchmarks:
// "scalar" (the scalar references only), "avx2" (no AVX-512), unset or anything else: the best
// the CPU has.
// Thread-safety: cpu_features() is initialized once (a function-local static); safe from any
// thread.

namespace hangar::engine {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + F16C
  bool avx512 = false;  // AVX-512 F/BW/VL + VNNI (implies avx2)
};

const CpuFeatures& cpu_features();

// "avx512-vnni", "avx2" or "scalar": what the kernels use (for logs and benchmarks).
const char* cpu_isa_name();

}  // namespace hangar::engine
