// F16 weights: the activation row is rounded to F16 and the dot accumulates in F32, as ggml's
// ggml_vec_dot_f16 (its scalar form sums in double, which the reference copies).
#include "engine/fp16.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

void from_float_f16_ref(const float* x, void* y, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = float_to_half(x[i]);
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 void from_float_f16_avx2(const float* x, void* y, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(y);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i v = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), v);
  }
  for (; i < n; ++i) h[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}
#endif

float dot_f16_ref(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(half_to_float(x[i]) * half_to_float(y[i]));
  return static_cast<float>(sum);
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_f16_avx2(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  const int64_t n32 = n & ~int64_t{31};
  for (int64_t i = 0; i < n32; i += 32) {
    for (int k = 0; k < 4; ++k) {
      const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i + 8 * k)));
      const __m256 yv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i + 8 * k)));
      acc[k] = _mm256_fmadd_ps(xv, yv, acc[k]);
    }
  }
  float sum = avx2::hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (int64_t i = n32; i < n; ++i) sum += avx2::h2f(x[i]) * avx2::h2f(y[i]);
  return sum;
}

HANGAR_TARGET_AVX2 void to_float_f16_avx2(const void* w, float* y, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
  }
  for (; i < n; ++i) y[i] = avx2::h2f(h[i]);
}
#endif

void to_float_f16_ref(const void* w, float* y, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  for (int64_t i = 0; i < n; ++i) y[i] = half_to_float(h[i]);
}

using DotFn = float (*)(int64_t, const void*, const void*);
const DotFn kDotF16 = HANGAR_PICK_AVX2(dot_f16_avx2, dot_f16_ref);

}  // namespace

// Shared with attention (Q·K over the F16 cache).
float dot_f16(int64_t n, const void* w, const void* a) { return kDotF16(n, w, a); }

const VecDot& vec_dot_f16() {
  static const VecDot k{gguf::GgmlType::kF16,
                        gguf::GgmlType::kF16,
                        1,
                        2,
                        2,
                        HANGAR_PICK_AVX2(from_float_f16_avx2, from_float_f16_ref),
                        from_float_f16_ref,
                        HANGAR_PICK_AVX2(dot_f16_avx2, dot_f16_ref),
                        dot_f16_ref,
                        HANGAR_PICK_AVX2(to_float_f16_avx2, to_float_f16_ref)};
  return k;
}

}  // namespace hangar::engine
