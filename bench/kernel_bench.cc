// kernel_bench (issue 14): the generation matmul kernels alone (1-3 tokens, gemm.h), in GB/s of
// weights read, for one instruction set:
//   - in cache: 1 thread over 256 KiB of weights, many times;
//   - from memory: -t threads over --mib MiB of weights (each thread its own contiguous rows in
//     one call, as the engine shares a matmul), each pass followed by this machine's read
//     bandwidth on the same weights (bench/read_probe.h), and the ratio of the two.
// The weights are random quants with sane block scales; the results are not checked (gemm_test
// does that). A benchmark: it prints figures and asserts nothing.
//
//   kernel_bench [--types q4_0,q8_0,q4_k,q6_k] [--isa avx512|avx2|scalar] [-t 2] [--mib 600]
//                [-n 2048] [--tokens 1] [--passes 6]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/cpu_features.h"
#include "engine/gemm.h"
#include "engine/vec_dot.h"
#include "read_probe.h"

namespace {

using namespace hangar;
using Clock = std::chrono::steady_clock;

struct Kind {
  const char* name;
  gguf::GgmlType type;
  engine::GemmFn (*gemm_for)(engine::Isa);
  size_t block_bytes;
  int block_elems;
  std::vector<size_t> half_one_at;  // offsets of F16 scales in a block, set to 1.0
};

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> k = {
      {"q4_0", gguf::GgmlType::kQ4_0, engine::gemm_q4_0_for, 18, 32, {0}},
      {"q8_0", gguf::GgmlType::kQ8_0, engine::gemm_q8_0_for, 34, 32, {0}},
      {"q4_k", gguf::GgmlType::kQ4_K, engine::gemm_q4_k_for, 144, 256, {0, 2}},
      {"q6_k", gguf::GgmlType::kQ6_K, engine::gemm_q6_k_for, 210, 256, {208}},
  };
  return k;
}

struct Options {
  std::vector<std::string> types = {"q4_0", "q8_0", "q4_k", "q6_k"};
  engine::Isa isa = engine::best_isa();
  int threads = 2;
  size_t mib = 600;
  int64_t n = 2048;
  int tokens = 1;
  int passes = 6;
};

// Weights of `rows` rows: random bytes, every block's F16 scales 1.0 (0x3c00).
std::vector<uint8_t> make_weights(const Kind& k, int64_t n, size_t rows) {
  const size_t row_bytes = static_cast<size_t>(n / k.block_elems) * k.block_bytes;
  std::vector<uint8_t> w(rows * row_bytes);
  std::mt19937_64 rng(7);
  for (size_t i = 0; i + 8 <= w.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(&w[i], &v, 8);
  }
  const uint16_t one = 0x3c00;
  for (size_t b = 0; b < w.size() / k.block_bytes; ++b) {
    for (size_t off : k.half_one_at) std::memcpy(&w[b * k.block_bytes + off], &one, 2);
  }
  return w;
}

// GB/s of weights: `threads` threads, thread i computing rows [i * per, (i + 1) * per) in one
// call, `reps` times.
double run_kernel(engine::GemmFn fn, const std::vector<uint8_t>& w, size_t row_bytes, size_t rows, int64_t n,
                  const std::vector<uint8_t>& act, size_t act_stride, int tokens, int threads, int reps) {
  std::vector<float> out(rows * static_cast<size_t>(tokens));
  const size_t per = rows / static_cast<size_t>(threads);
  const auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&, i] {
      for (int r = 0; r < reps; ++r) {
        fn(n, w.data() + per * i * row_bytes, row_bytes, static_cast<int>(per), act.data(), act_stride, tokens,
           out.data() + per * i, rows);
      }
    });
  }
  for (auto& t : ts) t.join();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(per * threads * row_bytes) * reps / s / 1e9;
}

int parse_args(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "-t") o->threads = std::atoi(next());
    else if (a == "--mib") o->mib = static_cast<size_t>(std::atoll(next()));
    else if (a == "-n") o->n = std::atoll(next());
    else if (a == "--tokens") o->tokens = std::atoi(next());
    else if (a == "--passes") o->passes = std::atoi(next());
    else if (a == "--isa") {
      const std::string v = next();
      if (v == "scalar") o->isa = engine::Isa::kScalar;
      else if (v == "avx2") o->isa = engine::Isa::kAvx2;
      else if (v == "avx512") o->isa = engine::Isa::kAvx512;
      else return 2;
    } else if (a == "--types") {
      o->types.clear();
      const std::string s = next();
      for (size_t p = 0; p <= s.size();) {
        const size_t q = std::min(s.find(',', p), s.size());
        if (q > p) o->types.push_back(s.substr(p, q - p));
        p = q + 1;
      }
    } else {
      return 2;
    }
  }
  if (o->threads < 1 || o->tokens < 1 || o->tokens > 3 || o->passes < 1 || o->n < 256 || o->n % 256 != 0) return 2;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (parse_args(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: kernel_bench [--types q4_0,q8_0,q4_k,q6_k] [--isa avx512|avx2|scalar] [-t N] [--mib N]\n"
                 "  [-n N (a multiple of 256)] [--tokens 1..3] [--passes N]\n");
    return 2;
  }
  const engine::CpuFeatures& f = engine::cpu_features();
  if ((o.isa == engine::Isa::kAvx512 && !f.avx512) || (o.isa == engine::Isa::kAvx2 && !f.avx2)) {
    std::fprintf(stderr, "kernel_bench: this CPU lacks the instruction set asked for\n");
    return 2;
  }
  const char* isa_name = o.isa == engine::Isa::kAvx512 ? "avx512" : o.isa == engine::Isa::kAvx2 ? "avx2" : "scalar";
  std::printf("kernel_bench: %s, n %lld, %d token(s); in cache: 1 thread, 256 KiB; from memory: %d threads, %zu MiB\n",
              isa_name, static_cast<long long>(o.n), o.tokens, o.threads, o.mib);
  for (const std::string& name : o.types) {
    const auto it = std::find_if(kinds().begin(), kinds().end(), [&](const Kind& k) { return name == k.name; });
    if (it == kinds().end()) {
      std::fprintf(stderr, "kernel_bench: unknown type '%s'\n", name.c_str());
      return 2;
    }
    const Kind& k = *it;
    const engine::GemmFn fn = k.gemm_for(o.isa);
    const engine::VecDot& vd = *engine::find_vec_dot(k.type);
    const size_t row_bytes = static_cast<size_t>(o.n / k.block_elems) * k.block_bytes;
    // Activations: random floats converted as the engine converts them.
    const size_t act_stride = vd.act_row_bytes(o.n);
    std::vector<uint8_t> act(act_stride * static_cast<size_t>(o.tokens));
    std::mt19937 rng(3);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(o.n));
    for (int t = 0; t < o.tokens; ++t) {
      for (float& v : x) v = dist(rng);
      vd.from_float(x.data(), act.data() + act_stride * t, o.n);
    }

    const size_t small_rows = std::max<size_t>((256 << 10) / row_bytes / 16 * 16, 16);
    const auto small = make_weights(k, o.n, small_rows);
    std::printf("\n%s (row %zu bytes)\n  in cache, GB/s:", k.name, row_bytes);
    for (int p = 0; p < o.passes; ++p) {
      std::printf(" %.1f", run_kernel(fn, small, row_bytes, small_rows, o.n, act, act_stride, o.tokens, 1, 2000));
    }
    const size_t big_rows = (o.mib << 20) / row_bytes / (16 * o.threads) * (16 * o.threads);
    const auto big = make_weights(k, o.n, big_rows);
    bench::ReadProbe probe(o.threads, o.mib << 20);
    std::printf("\n  from memory, GB/s (kernel / read bandwidth right after = ratio):");
    for (int p = 0; p < o.passes; ++p) {
      const double kg = run_kernel(fn, big, row_bytes, big_rows, o.n, act, act_stride, o.tokens, o.threads, 6);
      const double bw = probe.measure();
      std::printf(" %.1f/%.1f=%.0f%%", kg, bw, 100.0 * kg / bw);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
