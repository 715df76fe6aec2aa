// fc.cpp — fully connected layer: 2048 pooled features -> 1000 logits, weights [out][in] as torch stores them.
//
// One dot product per output, scalar.
#include "ops.h"

void fc(const float* in, int cin, const float* weight, const float* bias, int cout, float* out) {
  for (int o = 0; o < cout; o++) {
    const float* w = weight + static_cast<size_t>(o) * cin;
    float acc = 0.0f;
    for (int i = 0; i < cin; i++) acc += in[i] * w[i];
    out[o] = acc + bias[o];
  }
}
