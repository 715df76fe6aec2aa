// avgpool.cpp — global average pooling: HWC -> C (ResNet-50 pools 7x7x2048 down to 2048 before fc).
//
// v7_fold: the loops are swapped, pixels outer and channels inner, so the inner loop reads contiguous floats
// and vectorises; the channel-outer order read one float per cache line, 2048 x 49 times (0.26 -> 0.01 ms).
// v13_bf16: a bf16-input overload of avgpool() for the network (below); the fp32 op is unchanged.
#include "ops.h"

void avgpool(const float* in, Shape s, float* out) {
  const size_t pixels = static_cast<size_t>(s.h) * s.w;
  for (int c = 0; c < s.c; c++) out[c] = 0.0f;
  for (size_t px = 0; px < pixels; px++) {
    const float* row = in + px * s.c;
    for (int c = 0; c < s.c; c++) out[c] += row[c];
  }
  const float scale = 1.0f / static_cast<float>(pixels);
  for (int c = 0; c < s.c; c++) out[c] *= scale;
}

// v13_bf16: the network's avgpool, from bf16 activations into fp32 features (fc stays fp32): the same loops, each
// value widened (exactly) as it is read.
void avgpool(const bf16_t* in, Shape s, float* out) {
  const size_t pixels = static_cast<size_t>(s.h) * s.w;
  for (int c = 0; c < s.c; c++) out[c] = 0.0f;
  for (size_t px = 0; px < pixels; px++) {
    const bf16_t* row = in + px * s.c;
    for (int c = 0; c < s.c; c++) out[c] += from_bf16(row[c]);
  }
  const float scale = 1.0f / static_cast<float>(pixels);
  for (int c = 0; c < s.c; c++) out[c] *= scale;
}
