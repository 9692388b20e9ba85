// BF16 weights: the activation row is rounded to BF16 and the dot accumulates in F32, as ggml's
// ggml_vec_dot_bf16 (reference sums in double).
#include "engine/fp16.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

void from_float_bf16(const float* x, void* y, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = float_to_bf16(x[i]);
}

float dot_bf16_ref(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_float(x[i]) * bf16_to_float(y[i]));
  return static_cast<float>(sum);
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 inline __m256 load_bf16(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
#endif

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_bf16_avx2(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  const int64_t n32 = n & ~int64_t{31};
  for (int64_t i = 0; i < n32; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(load_bf16(x + i + 8 * k), load_bf16(y + i + 8 * k), acc[k]);
    }
  }
  float sum = avx2::hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (int64_t i = n32; i < n; ++i) sum += bf16_to_float(x[i]) * bf16_to_float(y[i]);
  return sum;
}
#endif

void to_float_bf16(const void* w, float* y, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_float(h[i]);
}

}  // namespace

const VecDot& vec_dot_bf16() {
  static const VecDot k{gguf::GgmlType::kBF16, gguf::GgmlType::kBF16, 1, 2, 2, from_float_bf16,
                        from_float_bf16, HANGAR_PICK_AVX2(dot_bf16_avx2, dot_bf16_ref), dot_bf16_ref, to_float_bf16};
  return k;
}

}  // namespace hangar::engine
