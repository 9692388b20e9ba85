#include "engine/vec_dot.h"

namespace hangar::engine {

const VecDot* find_vec_dot(gguf::GgmlType weight_type) {
  switch (weight_type) {
    case gguf::GgmlType::kF32: return &vec_dot_f32();
    case gguf::GgmlType::kF16: return &vec_dot_f16();
    case gguf::GgmlType::kBF16: return &vec_dot_bf16();
    case gguf::GgmlType::kQ8_0: return &vec_dot_q8_0();
    case gguf::GgmlType::kQ4_0: return &vec_dot_q4_0();
    case gguf::GgmlType::kQ4_1: return &vec_dot_q4_1();
    case gguf::GgmlType::kQ5_0: return &vec_dot_q5_0();
    case gguf::GgmlType::kQ5_1: return &vec_dot_q5_1();
    case gguf::GgmlType::kQ2_K: return &vec_dot_q2_k();
    case gguf::GgmlType::kQ3_K: return &vec_dot_q3_k();
    case gguf::GgmlType::kQ4_K: return &vec_dot_q4_k();
    case gguf::GgmlType::kQ5_K: return &vec_dot_q5_k();
    case gguf::GgmlType::kQ6_K: return &vec_dot_q6_k();
    case gguf::GgmlType::kIQ4_XS: return &vec_dot_iq4_xs();
    default: return nullptr;
  }
}

}  // namespace hangar::engine
