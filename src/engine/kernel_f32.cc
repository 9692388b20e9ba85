// F32 weights: activations stay F32. Reference: products summed in double, as ggml's scalar
// ggml_vec_dot_f32.
#include <cstring>

#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

void copy_f32(const float* x, void* y, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * 4); }

float dot_f32_ref(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_f32_avx2(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  const int64_t n32 = n & ~int64_t{31};
  for (int64_t i = 0; i < n32; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k),
                               acc[k]);
    }
  }
  float sum = avx2::hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (int64_t i = n32; i < n; ++i) sum += x[i] * y[i];
  return sum;
}
#endif

void to_float_f32(const void* w, float* y, int64_t n) { copy_f32(static_cast<const float*>(w), y, n); }

}  // namespace

const VecDot& vec_dot_f32() {
  static const VecDot k{gguf::GgmlType::kF32, gguf::GgmlType::kF32, 1, 4, 4, copy_f32, copy_f32,
                        HANGAR_PICK_AVX2(dot_f32_avx2, dot_f32_ref), dot_f32_ref, to_float_f32};
  return k;
}

}  // namespace hangar::engine
