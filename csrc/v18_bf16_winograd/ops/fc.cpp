// fc.cpp — fully connected layer: 2048 pooled features -> 1000 logits, weights [out][in] as torch stores them.
//
// Each output's dot product is taken 8 floats at a time with AVX2 fused multiply-adds into one vector
// accumulator, reduced to a float once per output; a scalar tail covers cin % 8 (13 inputs in the op tests), so
// nothing is read past the end of a row.
#include <immintrin.h>

#include "ops.h"

namespace {

// The sum of the 8 lanes of v: 8 -> 4 -> 2 -> 1.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void fc(const float* in, int cin, const float* weight, const float* bias, int cout, float* out) {
  for (int o = 0; o < cout; o++) {
    const float* w = weight + static_cast<size_t>(o) * cin;
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= cin; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(in + i), _mm256_loadu_ps(w + i), acc);
    float tail = 0.0f;
    for (; i < cin; i++) tail += in[i] * w[i];
    out[o] = hsum(acc) + tail + bias[o];
  }
}
