// avgpool.cpp — global average pooling: HWC -> C (ResNet-50 pools 7x7x2048 down to 2048 before fc).
//
// Pixels are the outer loop and channels the inner one, so the inner loop reads contiguous values and vectorises,
// where a channel-outer order would read one value per cache line, 2048 x 49 times.
//
// The input is the last block's bf16 output; each value is widened (exactly) as it is read and summed in fp32, into
// the fp32 features that fc reads.
#include "ops.h"

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
